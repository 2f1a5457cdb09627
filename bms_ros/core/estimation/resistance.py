"""The temperature law of the cell resistances, learnt online (issue 14 item 5).

R(T) / R(25 degC) = exp(k (1/T - 1/298.15 K)) (Arrhenius, T in K, k = Ea / R in K). The
datasheet gives k (``CellSpec.r0_arrhenius_k``, often a generic guess); here it is fitted from
the R0 samples the :class:`~.soh.ResistanceEstimator` takes at current steps:

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
