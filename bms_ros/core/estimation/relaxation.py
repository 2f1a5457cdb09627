"""Rest detection and relaxation tracking of a string (per cell where it is a voltage).

:class:`RestTracker` owns the time at rest, whether the present rest was already used for an
OCV anchor, and two low-passes of the voltage at rest from which the relaxation still to come
follows. The pack estimator tells it each step whether the (offset-corrected) pack current was
at rest, and asks it for the relaxation to add to an anchor's OCV and to the filter's doubt.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from .config import EstimatorConfig

FloatArray = NDArray[np.float64]

FAST_S = 30.0          # fast low-pass of the voltage at rest (s)
SLOW_MIN_S = 90.0      # slow low-pass at least this (s)
SLOW_FRACTION = 0.4    # slow low-pass = this x relaxation_time_s (T = 300 s: 120 s)


class RestTracker:
    """Time at rest (s), the once-per-rest anchor flag and the relaxation at rest per cell."""

    def __init__(self, n_cells: int, config: EstimatorConfig) -> None:
        self.n = int(n_cells)
        self.config = config
        self.rest_s = 0.0
        self.anchored = False                  # this rest was used for an OCV anchor
        self._ema: tuple[FloatArray, FloatArray] | None = None  # voltage low-passes at rest
        # sign of the current before this rest (+ = charging, 0: unknown): the voltage relaxes
        # the other way, up after a discharge and down after a charge
        self.load_sign = 0.0
        # the measured pack current over this rest (A s, s, samples): its mean is the
        # current sensor's offset if the current is really zero (rest_current_calibration)
        self.current_as = 0.0
        self.current_s = 0.0
        self.current_samples = 0
        # the drift's low-passes: 30 s (the rest's sample period) and a slow one that scales
        # with the relaxation it measures (0.4 T, at least 90 s), so the difference's signal,
        # a exp(-t / T) (T / (T - slow) - T / (T - 30)), stays well above the sensor's noise
        tau = config.relaxation_time_s
        self.slow_s = max(SLOW_FRACTION * tau, SLOW_MIN_S)
        self.settle_s = max(self.slow_s, 120.0)   # rest before the low-passes are read

    @property
    def at_rest(self) -> bool:
        """True once the current stayed at rest for ``rest_time_s``."""
        return self.rest_s >= self.config.rest_time_s

    def step(self, resting: bool, voltage_v: FloatArray, dt_s: float,
             load_sign: float = 0.0, current_a: float = float('nan')) -> None:
        """One step of ``dt_s`` (s): ``resting`` if the pack current was at rest, with the
        cell voltages (V) measured; ``load_sign`` the sign of the current under load (+ =
        charging, 0: unknown); ``current_a`` the measured pack current (A, offset included).
        """
        if resting:
            if self.rest_s == 0.0:
                self._ema = (voltage_v.copy(), voltage_v.copy())
                self.current_as = self.current_s = 0.0
                self.current_samples = 0
            self.rest_s += dt_s
            self._track(voltage_v, dt_s)
            if np.isfinite(current_a):
                self.current_as += current_a * dt_s
                self.current_s += dt_s
                self.current_samples += 1
        else:
            self.rest_s = 0.0
            self.anchored = False
            self.load_sign = load_sign

    def mean_current_a(self) -> float:
        """Mean measured pack current over this rest (A; NaN before a sample)."""
        return self.current_as / self.current_s if self.current_s > 0.0 else float('nan')

    def _track(self, voltage_v: FloatArray, dt_s: float) -> None:
        """Two low-passes of the voltage at rest (30 s and ``slow_s``): for a voltage drifting at
        r V/s they differ by r x (slow_s - 30 s), so their difference is a drift rate robust to
        the sensor's noise and 1 mV steps.
        """
        assert self._ema is not None
        fast, slow = self._ema
        v = np.where(np.isfinite(voltage_v), voltage_v, fast)
        fast += (1.0 - np.exp(-dt_s / FAST_S)) * (v - fast)
        slow += (1.0 - np.exp(-dt_s / self.slow_s)) * (v - slow)

    def relaxation_v(self, early: bool = False) -> FloatArray:
        """Relaxation still to come at rest per cell (V, signed), taking the relaxation as
        exponential with time constant T = ``relaxation_time_s``: for V = OCV - a exp(-t / T)
        the two low-passes differ by a exp(-t / T) (T / (T - slow) - T / (T - 30)), so what is
        left follows from their difference (for a short T: drift rate x T); 0 before the slow
        low-pass's time constant at rest, at least two minutes (``early``: from the rest's
        start, the low-passes still settling, so an underestimate) or with T = 0. Only the way
        the rest relaxes (up after a discharge, down after a charge): the other sign is the
        sensor's noise in the drift (2 mV samples every 30 s give +-3 mV; on LFP's plateau
        -2.3 mV read 90 % as 85 %).
        """
        tau = self.config.relaxation_time_s
        slow_s = self.slow_s
        if self._ema is None or (self.rest_s < self.settle_s and not early) or tau <= 0.0:
            return np.zeros(self.n)
        fast, slow = self._ema
        k = tau / (tau - slow_s) - tau / (tau - FAST_S) if tau > 2.0 * slow_s \
            else (slow_s - FAST_S) / tau
        out: FloatArray = np.nan_to_num((fast - slow) / k)
        if self.load_sign < 0.0:
            out = np.maximum(out, 0.0)
        elif self.load_sign > 0.0:
            out = np.minimum(out, 0.0)
        return out

    def recent_voltage_v(self) -> FloatArray:
        """The voltage at rest over its last ~30 s per cell (V; the fast low-pass; NaN before a
        rest): what a reading after the rest has ended takes, not one noisy sample.
        """
        if self._ema is None:
            return np.full(self.n, np.nan)
        return self._ema[0].copy()

    def ocv_v(self, voltage_v: FloatArray) -> FloatArray:
        """OCV at rest per cell (V): the slow low-pass of the voltage plus what is left of its
        relaxation (for V = OCV - a exp(-t / T) a low-pass of time constant tau lags the OCV by
        a exp(-t / T) T / (T - tau)), not one sample: the sensor's noise (2 mV on the matrix)
        is 0.4 points of SoC on LFP's steps and 10-20 on its plateau. Before the slow
        low-pass has settled, or with no ``relaxation_time_s`` (T), ``voltage_v`` plus
        :meth:`relaxation_v`.
        """
        tau = self.config.relaxation_time_s
        if self._ema is None or self.rest_s < self.settle_s or tau <= 0.0:
            return voltage_v + self.relaxation_v()
        lag = tau / (tau - self.slow_s) if tau > 2.0 * self.slow_s else 1.0
        out: FloatArray = np.where(np.isfinite(voltage_v),
                                   self._ema[1] + lag * self.relaxation_v(), voltage_v)
        return out

    def doubt_v(self) -> FloatArray:
        """Doubt of the voltage as OCV at rest (V per cell): the drift x
        ``relaxation_doubt_time_s`` (0: ``relaxation_time_s``), since a diffusion tail relaxes
        longer than the exponential the anchor's correction assumes; 0 when not at rest. From
        the rest's start: in its first two minutes the voltage relaxes fastest (LFP's knee:
        240 mV to go 60 s in), and read as OCV with no doubt it dragged the SoC 0.7 points.
        """
        cfg = self.config
        if self.rest_s <= 0.0 or cfg.relaxation_time_s <= 0.0:
            return np.zeros(self.n)
        factor = max(cfg.relaxation_doubt_time_s / cfg.relaxation_time_s, 1.0)
        out: FloatArray = factor * np.abs(self.relaxation_v(early=True))
        return out
