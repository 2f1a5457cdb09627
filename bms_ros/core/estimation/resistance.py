"""R0 per cell and the temperature law of the cell resistances, both learnt online.

:class:`ResistanceEstimator`: the part of the terminal voltage the model leaves to the ohmic
drop, ``y = v - OCV(soc) - v_rc - v_diff``, is differenced between consecutive samples (the
previous one from the corrected state), so slowly varying errors (SoC, OCV, current offset)
cancel: ``dy = R0(T) di``. R0 normalised to 25 degC (divided by the cell's Arrhenius factor) is
fitted by a scalar recursive least squares per cell with forgetting, on steps where ``|di|`` is
large enough to carry information. It owns R0 and the :class:`TemperatureLaw` object, which
the SoC filter reads for R1 and r_diff too.

:class:`TemperatureLaw` (issue 14 item 5):

R(T) / R(25 degC) = exp(k (1/T - 1/298.15 K)) (Arrhenius, T in K, k = Ea / R in K). The
datasheet gives k (``CellSpec.r0_arrhenius_k``, often a generic guess); here it is fitted from
the R0 samples the :class:`ResistanceEstimator` takes at current steps:

    ln R0_c(T) = ln R0_c(25 degC) + k x,      x = 1/T - 1/298.15 K

with one intercept per cell (its ageing) and one slope k for the pack (all cells share the
chemistry). Each sample is a point (x, ln(dV/dI)) weighted by (dI / 1 C)^2; the sums are
exponentially forgotten per sample (``r0_law_forgetting``) and centred per cell, so a cell's
own ageing never reads as temperature. The slope is the Bayesian least-squares one with the
datasheet k as its prior (std ``r0_law_activation_std_k``, one sample's ln-noise
``r0_law_noise``), kept inside ``r0_law_activation_min_k .. _max_k``, and used only once the
temperatures seen span enough (weighted std >= ``r0_law_min_span_degc``); before that, and with
``r0_law_learn`` off, the datasheet law holds unchanged.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..cell import arrhenius_factor
from ..ocv import FloatOrArray

if TYPE_CHECKING:
    from ..cell import CellSpec
    from .config import EstimatorConfig

FloatArray = NDArray[np.float64]

KELVIN = 273.15
T_REF_K = 298.15
TEMPERATURE_MIN_DEGC = -40.0    # a sample outside this window is a sensor fault, not a point
TEMPERATURE_MAX_DEGC = 90.0
# a sphere's surface under a constant flux from rest: bulk - surface SoC = (2/3) dSoC/dt x
# sqrt(tau_D t / pi), tau_D = R^2 / D = beta1^2 x the slowest mode's time constant (the slow
# pair's diffusion_time_s); per 1 C (dSoC/dt = 1/3600 s) and per sqrt(tau_D t)
SURFACE_JUMP_PER_C_SQRT_S = 2.0 / 3.0 / 3600.0 / math.sqrt(math.pi)
SPHERE_DIFFUSION_RATIO = 4.4934 ** 2   # beta1^2, beta1 the first root of tan b = b


class TemperatureLaw:
    """k = Ea / R (K) of the pack, learnt from R0 samples at their temperatures."""

    def __init__(self, cell: CellSpec, n_cells: int, config: EstimatorConfig) -> None:
        self.cell = cell
        self.config = config
        self.n = int(n_cells)
        self.datasheet_k = float(cell.r0_arrhenius_k)
        self._cached: tuple[np.ndarray, float, FloatOrArray] | None = None
        self.activation_k = self.datasheet_k
        self.reset()

    def reset(self) -> None:
        """Forget every sample: the datasheet law again."""
        n = self.n
        self.sum_w = np.zeros(n)         # per cell: forgotten sums of w, w x, w y, w x^2, w x y
        self.sum_x = np.zeros(n)
        self.sum_y = np.zeros(n)
        self.sum_xx = np.zeros(n)
        self.sum_xy = np.zeros(n)
        self.samples = 0
        self.activation_k = self.datasheet_k

    @property
    def learnt(self) -> bool:
        """True while the fitted slope (not the datasheet's) is in use."""
        return self.span_degc() >= self.config.r0_law_min_span_degc

    def factor(self, temperature_degc: ArrayLike) -> FloatOrArray:
        """R(T) / R(25 degC) of the present law (1 at 25 degC)."""
        # asked several times a step with the same temperature array: keep the last one
        cached = self._cached
        if cached is not None and cached[0] is temperature_degc and cached[1] == self.activation_k:
            return cached[2]
        value = arrhenius_factor(temperature_degc, self.activation_k)
        if isinstance(temperature_degc, np.ndarray) and not temperature_degc.flags.writeable:
            # only a read-only array: one changed in place would read a stale factor
            self._cached = (temperature_degc, self.activation_k, value)
        return value

    def span_degc(self) -> float:
        """Weighted standard deviation of the sample temperatures about each cell's mean (K)."""
        w = self.sum_w
        total = float(w.sum())
        if total <= 0.0:
            return 0.0
        sxx = self._centred(self.sum_xx, self.sum_x, self.sum_x)
        mean_x = float(self.sum_x.sum()) / total
        # dx/dT = -1/T^2: a spread of x is a spread of T times T^2
        t_k = 1.0 / (mean_x + 1.0 / T_REF_K)
        return float(np.sqrt(max(sxx, 0.0) / total)) * t_k * t_k

    def _centred(self, s_ab: FloatArray, s_a: FloatArray, s_b: FloatArray) -> float:
        """Sum over cells of the per-cell centred cross sum (cells without weight: 0)."""
        w = self.sum_w
        ok = w > 0.0
        return float(np.sum(np.where(ok, s_ab - s_a * s_b / np.where(ok, w, 1.0), 0.0)))

    def observe(self, temperature_degc: ArrayLike, r0_sample_ohm: ArrayLike, step_a: ArrayLike,
                use: NDArray[np.bool_]) -> FloatOrArray | None:
        """R0 samples (ohm, at their temperature, degC) of the cells in ``use`` from current
        steps ``step_a`` (A). Returns the ratio new factor / old factor per cell at
        ``temperature_degc`` (1 where the law did not change), so normalised values can follow.
        """
        cfg = self.config
        t = np.asarray(temperature_degc, dtype=float)
        r = np.asarray(r0_sample_ohm, dtype=float)
        use = np.asarray(use, dtype=bool) & np.isfinite(t) & np.isfinite(r) & (r > 0.0) \
            & (t >= TEMPERATURE_MIN_DEGC) & (t <= TEMPERATURE_MAX_DEGC)
        if not cfg.r0_law_learn or not use.any():
            return None
        x = 1.0 / (np.where(use, t, 25.0) + KELVIN) - 1.0 / T_REF_K
        y = np.log(np.where(use, r, 1.0))
        w = np.where(use, (np.asarray(step_a, dtype=float) / self.cell.capacity_ah) ** 2, 0.0)
        lam = np.where(use, cfg.r0_law_forgetting, 1.0)
        for name, value in (('sum_w', w), ('sum_x', w * x), ('sum_y', w * y),
                            ('sum_xx', w * x * x), ('sum_xy', w * x * y)):
            s = getattr(self, name)
            s *= lam
            s += value
        self.samples += int(use.sum())
        old_k = self.activation_k
        self.activation_k = self._fit()
        if self.activation_k == old_k:
            return None
        return self.factor(t) / arrhenius_factor(t, old_k)

    def _fit(self) -> float:
        """The slope in use: datasheet until the span is informative, else the posterior."""
        cfg = self.config
        if not self.learnt:
            return self.datasheet_k
        sxx = self._centred(self.sum_xx, self.sum_x, self.sum_x)
        sxy = self._centred(self.sum_xy, self.sum_x, self.sum_y)
        prior = (cfg.r0_law_noise / cfg.r0_law_activation_std_k) ** 2
        k = (prior * self.datasheet_k + sxy) / (prior + sxx)
        return float(np.clip(k, cfg.r0_law_activation_min_k, cfg.r0_law_activation_max_k))

    # ------------------------------------------------------------- persistence
    def state(self) -> dict[str, float | list[list[float]]]:
        """The learnt sums as plain lists (persisted with the other learnt state)."""
        return {'r0_law_activation_k': float(self.activation_k),
                'r0_law_sums': [[float(v) for v in s] for s in (
                    self.sum_w, self.sum_x, self.sum_y, self.sum_xx, self.sum_xy)]}

    def restore(self, sums: list[FloatArray] | list[list[float]]) -> None:
        """Restore the sums (5 lists of n finite values, weights >= 0) and refit."""
        arrays = [np.asarray(s, dtype=float) for s in sums]
        self.sum_w, self.sum_x, self.sum_y, self.sum_xx, self.sum_xy = (a.copy() for a in arrays)
        self.activation_k = self._fit()


class ResistanceEstimator:
    """Per-cell R0 (ohm, at 25 degC) from current steps; RLS with forgetting."""

    def __init__(self, cell: CellSpec, n_cells: int, config: EstimatorConfig) -> None:
        self.cell = cell
        self.config = config
        self.n = int(n_cells)
        self.r0_ohm = np.full(self.n, cell.r0_ohm)
        # RLS "covariance": the prior counts like ten 1 C steps
        self.p0 = 0.1 / cell.capacity_ah ** 2
        self.p = np.full(self.n, self.p0)
        self.min_step_a = config.r0_min_step_c * cell.capacity_ah
        self._last_y = np.full(self.n, np.nan)
        self._last_i = np.full(self.n, np.nan)
        self.samples = np.zeros(self.n, dtype=np.int64)
        self.law = TemperatureLaw(cell, self.n, config)
        # surface SoC jump per A after dt = 1 s of a step (see update); x sqrt(dt)
        self.surface_jump_per_a = config.r0_surface_doubt * SURFACE_JUMP_PER_C_SQRT_S * math.sqrt(
            SPHERE_DIFFUSION_RATIO * config.diffusion_time_s) / cell.capacity_ah
        # new / old law factor of this step's samples (remember())
        self._rescale: FloatOrArray | None = None

    def set(self, r0_ohm: ArrayLike) -> None:
        """Restore values (persisted state); keeps them within bounds."""
        r0 = np.broadcast_to(np.asarray(r0_ohm, dtype=float), (self.n,))
        self.r0_ohm = np.clip(np.where(np.isfinite(r0), r0, self.cell.r0_ohm),
                              self.config.r0_min_ratio * self.cell.r0_ohm,
                              self.config.r0_max_ratio * self.cell.r0_ohm)
        self.p = np.full(self.n, self.p0)

    def at(self, temperature_degc: ArrayLike) -> FloatOrArray:
        """R0 at the cell temperatures (ohm), by the present (learnt or datasheet) law."""
        return self.r0_ohm * self.law.factor(temperature_degc)

    def break_sequence(self) -> None:
        """Forget the previous sample (after a gap, a reset or a rejected measurement)."""
        self._last_y[:] = np.nan
        self._last_i[:] = np.nan

    def update(self, ohmic_v: ArrayLike, current_a: ArrayLike, factor: FloatOrArray,
               valid: ArrayLike, temperature_degc: ArrayLike | None = None,
               slope_v: Callable[[], FloatArray] | None = None, dt_s: float = 1.0) -> None:
        """One sample: ``ohmic_v`` = v - OCV - v_rc - v_diff per cell from the filter's
        prediction (V), cell current (A, + = charging), ``factor`` = R0(T) / R0(25 degC) per
        cell (of :attr:`law`), ``temperature_degc`` the cells' temperatures (None or NaN: no
        point for the temperature law), ``slope_v`` gives dOCV/dSoC per cell (V per unit SoC;
        asked only at a step), ``dt_s`` the time since the previous sample (s). Call
        :meth:`remember` after the filter's update so the next difference is taken against the
        corrected state.
        """
        self._rescale = None
        current_a = np.broadcast_to(np.asarray(current_a, dtype=float), (self.n,))
        y = np.where(valid, np.asarray(ohmic_v, dtype=float) / factor, np.nan)
        di = current_a - self._last_i
        dy = y - self._last_y
        use = np.isfinite(dy) & np.isfinite(di) & (np.abs(di) >= self.min_step_a)
        if not use.any():
            return
        lam = self.config.r0_forgetting
        residual = dy - self.r0_ohm * di
        # an outlier (e.g. a step not seen by the voltage sampler) must not pull R0 away
        use &= np.abs(residual) < 3.0 * self.cell.r0_ohm * np.abs(di) + 0.02
        # the step also moves the particles' surface SoC by di x jump x sqrt(dt) (a sphere's
        # short-time response), read through the OCV's slope: small where the OCV is flat, R0's
        # size in a knee, where it is no resistance; that share is the observation's doubt
        # against the voltage's own (the RLS's unit noise)
        if slope_v is not None and self.surface_jump_per_a > 0.0:
            doubt_v = slope_v() * (self.surface_jump_per_a * math.sqrt(dt_s)) * di
            # the voltage's own doubt of a difference of two samples: sqrt(2) x its noise
            weight = 1.0 / (1.0 + 0.5 * (doubt_v / self.config.voltage_noise_v) ** 2)
        else:
            weight = 1.0
        k = self.p * di / (lam / weight + di * di * self.p)
        r0 = self.r0_ohm + np.where(use, k * residual, 0.0)
        self.p = np.where(use, np.minimum((self.p - k * di * self.p) / lam, self.p0), self.p)
        self.r0_ohm = np.clip(r0, self.config.r0_min_ratio * self.cell.r0_ohm,
                              self.config.r0_max_ratio * self.cell.r0_ohm)
        self.samples += use
        if temperature_degc is not None:
            # the sample at its temperature: dV / dI (ohm) = normalised slope x factor
            raw = np.where(use, dy / np.where(use, di, 1.0), np.nan) * factor
            # a knee's step weighs on the law as on R0 (its doubt, above)
            ratio = self.law.observe(temperature_degc, raw, di * np.sqrt(weight), use)
            if ratio is not None:
                # the law moved: the normalised values follow so that R0(T) stays as measured
                self.r0_ohm = np.clip(self.r0_ohm / ratio, self.config.r0_min_ratio
                                      * self.cell.r0_ohm, self.config.r0_max_ratio
                                      * self.cell.r0_ohm)
                self._rescale = ratio

    def remember(self, ohmic_v: ArrayLike, current_a: ArrayLike, factor: FloatOrArray,
                 valid: ArrayLike) -> None:
        """The sample's ohmic part from the corrected state, the reference of the next step
        (``factor`` = R0(T) / R0(25 degC) per cell).
        """
        if self._rescale is not None:
            factor = factor * self._rescale       # the law changed in this step's update
        self._last_y = np.where(valid, np.asarray(ohmic_v, dtype=float) / factor, np.nan)
        self._last_i = np.broadcast_to(np.asarray(current_a, dtype=float), (self.n,)).copy()
