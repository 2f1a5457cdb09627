"""Where the filter's SoC meets the capacity estimator: capacity anchors, SoC pairs, end of charge.

The capacity of each cell has one owner, :class:`~.soh.CapacityEstimator` (value, variance and
the sums counted between anchors). The SoC filter holds a mirror of it (capacity_inverse, a
consider-state, for its correlations) that only :func:`push_capacity` writes, after the owner
changed. The functions here are that one direction of the flow: the filter's confident SoC
points go to the capacity estimator, the changed capacity comes back to the filter.
:class:`EndOfCharge` detects the end-of-charge anchor (a cell held at the cut-off voltage
with its current tapered), once per charge.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from ..ocv import FloatOrArray
from .soc_filter import QINV, SOC

if TYPE_CHECKING:
    from ..cell import CellSpec
    from .config import EstimatorConfig
    from .soc_filter import SocFilter
    from .soh import CapacityEstimator

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def push_capacity(soc_filter: SocFilter, capacity: CapacityEstimator, changed: BoolArray) -> None:
    """The capacity estimator changed the cells in ``changed``: the filter's mirror follows."""
    if changed.any():
        soc_filter.set_capacity(capacity.capacity_ah, capacity.std_ah, changed,
                                capacity.offset_sensitivity_h)


def anchor_capacity(soc_filter: SocFilter, capacity: CapacityEstimator, soc: FloatArray,
                    soc_std: FloatOrArray, cells: BoolArray) -> None:
    """A SoC anchor (OCV or end of charge) of the cells in mask, after the filter took it:
    the capacity estimator's anchor, the filter's mirror, the pairs' reference share.
    """
    push_capacity(soc_filter, capacity, capacity.anchor(soc, soc_std, cells))
    capacity.fill_pair_share(soc_filter.P[:, SOC, QINV], soc_filter.P[:, QINV, QINV])


def offer_soc_pair(soc_filter: SocFilter, capacity: CapacityEstimator, cell: CellSpec,
                   config: EstimatorConfig, valid: BoolArray, cell_current_a: FloatArray) -> None:
    """Offer the capacity estimator the cells whose filtered SoC is sure (variance small
    after the voltage has spoken where the OCV is steep, at a moderate current): see
    :meth:`.soh.CapacityEstimator.pair`.
    """
    cfg = config
    f = soc_filter
    var = f.P[:, SOC, SOC]
    sure = valid & f.initialised & (var <= cfg.capacity_pair_soc_std ** 2) & (
        np.abs(cell_current_a - f.current_offset_a)
        <= cfg.capacity_pair_max_current_c * cell.capacity_ah)
    if not sure.any():
        return
    soc = f.soc
    sure &= (soc >= cfg.capacity_pair_soc_min) & (soc <= cfg.capacity_pair_soc_max) & (
        f.ocv_slope(soc) >= cfg.capacity_pair_min_slope_v)
    changed = capacity.pair(f.soc.copy(), var.copy(), sure,
                            soc_capacity_cov=f.P[:, SOC, QINV].copy(),
                            capacity_inverse=f.x[:, QINV].copy(),
                            capacity_inverse_var=f.P[:, QINV, QINV].copy())
    push_capacity(f, capacity, changed)


class EndOfCharge:
    """End-of-charge anchor detection: a cell held at the charge cut-off voltage while its
    current has tapered to ``full_charge_current_c`` (the CV phase ending) is full. Once per
    charge (again after a discharge).
    """

    def __init__(self, cell: CellSpec, n_cells: int, config: EstimatorConfig) -> None:
        self.cell = cell
        self.config = config
        self.anchors = 0                                    # end-of-charge anchors taken
        self.anchored = np.zeros(int(n_cells), dtype=bool)  # once per charge

    def full(self, voltage_v: FloatArray, true_current_a: FloatArray,
             valid: BoolArray) -> BoolArray:
        """The cells full now and not yet anchored in this charge (A, offset-corrected)."""
        cfg = self.config
        c_a = self.cell.capacity_ah
        i = true_current_a
        self.anchored &= ~(i < -cfg.rest_current_c * c_a)
        out: BoolArray = valid & ~self.anchored & (i > 0.0) \
            & (i <= cfg.full_charge_current_c * c_a) \
            & (voltage_v >= self.cell.limits.voltage_max_v - cfg.full_charge_voltage_margin_v)
        return out

    def taken(self, cells: BoolArray) -> None:
        """The anchor was taken on the cells in mask."""
        self.anchored |= cells
        self.anchors += 1
