"""OCV hysteresis per cell: a one-state model of the gap between charge and discharge OCV.

LFP (and silicon) cells rest at a higher OCV after a charge than after a discharge at the same
SoC: 10-30 mV between the branches on LFP/graphite, held for hours at rest. On LFP's plateau
(0.02-0.1 V per unit SoC) a rest read without it is 10-50 points off. The cell file gives the
branches' half gap M (``ocv_hysteresis.half_gap_v``) and how fast the state follows the charge
passed (``rate_per_soc``, gamma); the relaxed OCV is

    OCV(soc, T) + M h,   h' = h + (sign(i) - h) (1 - exp(-gamma |i| dt / (3600 Q)))

(Plett's one-state hysteresis, h in -1..1: +1 after a charge, -1 after a discharge; at rest h
holds). The estimator takes ``voltage_v()`` off every measured voltage, and doubts what is left:
an unknown start (h anywhere, doubt M), fading as charge passes one way; M itself known only to
``hysteresis_doubt`` of its value; and the rate known only within a factor of
``hysteresis_rate_factor`` (config): h run at rate x and / that factor too, the doubt reaching
as far as they do (a real cell's rate differs between charge and discharge and along the SoC).
No such section: M = 0, nothing changes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from ..cell import CellSpec
    from .config import EstimatorConfig

FloatArray = NDArray[np.float64]


class OcvHysteresis:
    """The hysteresis state h per cell and its doubt (a fraction of the half gap)."""

    def __init__(self, cell: CellSpec, n_cells: int, config: EstimatorConfig) -> None:
        self.half_gap_v = float(cell.hysteresis_v)
        self.rate_per_soc = float(cell.hysteresis_rate)
        self.capacity_ah = cell.capacity_ah
        self.model_doubt = float(config.hysteresis_doubt)
        self.rate_factor = float(config.hysteresis_rate_factor)
        self.h = np.zeros(n_cells)
        self.unknown = np.ones(n_cells)      # share of h not yet set by the charge passed
        # h at the rate x and / rate_factor: how far a wrong rate would have taken it
        self.h_fast = np.zeros(n_cells)
        self.h_slow = np.zeros(n_cells)
        self._doubt_v: FloatArray | None = None     # doubt_v() of the present step

    @property
    def active(self) -> bool:
        """The cell file gives a hysteresis (half gap above 0)."""
        return self.half_gap_v > 0.0

    def step(self, dt_s: float, current_a: FloatArray) -> None:
        """Follow the charge of one step (true current per cell, A, + = charging)."""
        if not self.active or dt_s <= 0.0:
            return
        i = np.asarray(current_a, dtype=float)
        soc_passed = np.abs(i) * dt_s / (3600.0 * self.capacity_ah)
        target = np.sign(i)
        self._doubt_v = None
        k = _approach(self.h, target, self.rate_per_soc, soc_passed)
        self.unknown *= 1.0 - k
        if self.rate_factor > 1.0:
            _approach(self.h_fast, target, self.rate_per_soc * self.rate_factor, soc_passed)
            _approach(self.h_slow, target, self.rate_per_soc / self.rate_factor, soc_passed)

    def restore(self, h: FloatArray, unknown: FloatArray, h_fast: FloatArray,
                h_slow: FloatArray) -> None:
        """Persisted states (validated by the caller: stored_state)."""
        self.h, self.unknown = h.copy(), unknown.copy()
        self.h_fast, self.h_slow = h_fast.copy(), h_slow.copy()
        self._doubt_v = None

    def voltage_v(self) -> FloatArray:
        """M h per cell (V): what the OCV lies above the table's now."""
        out: FloatArray = self.half_gap_v * self.h
        return out

    def doubt_v(self) -> FloatArray:
        """The doubt of ``voltage_v`` per cell (V): the unknown part of h (a start with no
        history), the half gap's (``hysteresis_doubt`` x M |h|) and the rate's (how far h at
        a rate x or / ``hysteresis_rate_factor`` lies from h), in quadrature.
        """
        if self._doubt_v is None:
            rate_h = np.maximum(np.abs(self.h_fast - self.h), np.abs(self.h_slow - self.h)) \
                if self.rate_factor > 1.0 else 0.0
            self._doubt_v = self.half_gap_v * np.sqrt(
                self.unknown ** 2 + (self.model_doubt * self.h) ** 2 + rate_h ** 2)
        return self._doubt_v


def _approach(h: FloatArray, target: FloatArray, rate_per_soc: float,
              soc_passed: FloatArray) -> FloatArray:
    """Move ``h`` (in place) toward ``target`` by 1 - exp(-rate x the SoC passed); returns
    that share.
    """
    k: FloatArray = -np.expm1(-rate_per_soc * soc_passed)
    h += k * (target - h)
    return k
