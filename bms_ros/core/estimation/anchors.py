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

EXTRAPOLATE_MAX_SOC = 0.05  # an OCV anchor beyond the table's ends: at most this far beyond
EXTRAPOLATE_DOUBT = 0.5     # and doubted by this share of how far beyond it was read
BAND_LINEAR_RATIO = 1.5     # an OCV reading whose SoC band is wider than this x noise / slope
                            # (a plateau beside a step) is no capacity anchor


def push_capacity(soc_filter: SocFilter, capacity: CapacityEstimator, changed: BoolArray) -> None:
    """The capacity estimator changed the cells in ``changed``: the filter's mirror follows,
    and the SoC with it.

    The filter's SoC was counted with the old capacity: its error holds share x (error of
    capacity_inverse), share = cov(SoC, capacity_inverse) / var(capacity_inverse). A new
    capacity is a measurement of capacity_inverse, so (as a joint Kalman update would) the SoC
    moves by share x the change of capacity_inverse and its doubt loses share^2 x the capacity
    doubt removed; the filter then drops the correlation (``set_capacity``), keeping what is left
    of it inside the SoC doubt.
    """
    if not changed.any():
        return
    f = soc_filter
    pqq_old = f.P[:, QINV, QINV].copy()
    share = f.P[:, SOC, QINV] / np.maximum(pqq_old, 1e-12)
    qinv_old = f.x[:, QINV].copy()
    f.set_capacity(capacity.capacity_ah, capacity.std_ah, changed, capacity.offset_sensitivity_h)
    dq = f.x[:, QINV] - qinv_old
    removed = np.maximum(pqq_old - f.P[:, QINV, QINV], 0.0)
    f.x[changed, SOC] += (share * dq)[changed]
    f.P[changed, SOC, SOC] = np.maximum(f.P[changed, SOC, SOC] - (share ** 2 * removed)[changed],
                                        1e-8)


def soc_of_ocv(cell: CellSpec, ocv_v: FloatOrArray,
               temperature_degc: FloatOrArray) -> tuple[FloatArray, FloatArray]:
    """SoC whose OCV at this temperature is ``ocv_v`` (V), beyond the table's ends too, and the
    part of it that is extrapolated (signed; 0 inside the table).

    Inside the table it is the table's inverse at each cell's temperature
    (``OcvTable.soc_from_ocv``; flat runs read at their middle). What that inverse does not do,
    which moved capacity anchors the wrong way on the matrix: it stops at 0 and 1, while a
    relaxed cell can be beyond them (a CC-CV charge at 45 degC ends above the table's 100 %:
    Mohtat2020 reads 1.000 at a true 1.017). Beyond an end the SoC is extrapolated with the
    table's end slope (2 % secant), at most ``EXTRAPOLATE_MAX_SOC``.
    """
    table = cell.ocv
    v = np.asarray(ocv_v, dtype=float)
    temp = np.broadcast_to(np.asarray(temperature_degc, dtype=float), v.shape)
    z = np.asarray(table.soc_from_ocv(v, temp), dtype=float)
    above = (v - table.ocv(1.0, temp)) / table.secant_slope(1.0, 0.01)
    below = (v - table.ocv(0.0, temp)) / table.secant_slope(0.0, 0.01)
    beyond = np.where(above > 0.0, above, np.where(below < 0.0, below, 0.0))
    beyond = np.clip(np.nan_to_num(beyond), -EXTRAPOLATE_MAX_SOC, EXTRAPOLATE_MAX_SOC)
    known = np.isfinite(v) & np.isfinite(temp)
    return np.where(known, z + beyond, np.nan), beyond


def ocv_band_reading(cell: CellSpec, ocv_v: FloatOrArray, noise_v: FloatOrArray,
                     temperature_degc: FloatOrArray, sure_std: float = 0.0,
                     vague_std: float = np.inf
                     ) -> tuple[FloatArray, FloatArray, FloatArray, BoolArray]:
    """SoC read from an OCV of doubt ``noise_v`` (V, one sigma) and its doubt, honest where the
    OCV is not linear over that doubt: (SoC beyond the table's ends too, its std, the part
    extrapolated beyond them (signed), and whether it is a well-conditioned capacity anchor).

    The OCV is within OCV -+ noise, so the SoC within SoC(OCV - noise)..SoC(OCV + noise): the
    doubt is half that band's width, at least noise / slope (2 % secant) at the point read
    (:func:`soc_of_ocv`). Where the OCV is linear over the band the two agree; on LFP's
    plateau next to a step they do not: 3.5 mV below the plateau's 3.314 V at 90 % reads 81 %
    on the 75-85 % step with 5 % doubt (that step's slope), while the band spans 78-95 %. Such a
    reading (band wider than ``BAND_LINEAR_RATIO`` x noise / slope, and than ``sure_std``) is
    not Gaussian, and one doubted more than ``vague_std`` (the plateau itself) says little:
    neither is a well-conditioned point (the last element False), no capacity anchor (as
    one each moved the capacity 5 % and 1 % the wrong way).
    """
    table = cell.ocv
    v = np.asarray(ocv_v, dtype=float)
    noise = np.broadcast_to(np.asarray(noise_v, dtype=float), v.shape)
    temp = np.broadcast_to(np.asarray(temperature_degc, dtype=float), v.shape)
    point, beyond = soc_of_ocv(cell, v, temp)
    inside = np.clip(point, 0.0, 1.0)
    linear = noise / np.maximum(table.secant_slope(inside, 0.01), 1e-3)
    low = np.asarray(table.soc_from_ocv(v - noise, temp), dtype=float)
    high = np.asarray(table.soc_from_ocv(v + noise, temp), dtype=float)
    band = beyond == 0.0
    half = 0.5 * (high - low)
    std = np.where(band, np.maximum(half, linear), linear)
    linear_band = ~band | (half <= BAND_LINEAR_RATIO * linear) | (half <= sure_std)
    return point, std, beyond, linear_band & (std <= vague_std)


def anchor_capacity(soc_filter: SocFilter, capacity: CapacityEstimator, soc: FloatArray,
                    soc_std: FloatOrArray, cells: BoolArray, ocv_v: FloatOrArray | None = None,
                    temperature_degc: FloatOrArray = 25.0,
                    reading: tuple[FloatArray, FloatArray, FloatArray, BoolArray] | None = None
                    ) -> None:
    """A SoC anchor (OCV or end of charge) of the cells in mask, after the filter took it:
    the capacity estimator's anchor, the filter's mirror, the pairs' reference share.

    ``ocv_v``: the voltage read as OCV (V) at ``temperature_degc``, if the anchor is one: the
    capacity estimator (its anchor and the pairs' reference) then reads the SoC with
    :func:`soc_of_ocv` (at the cell's temperature, beyond the table's ends) instead of the
    filter's reading. Why the pairs too: from an anchor the filter keeps little of the anchor's
    error by the next turning point (less than its share / counted, 0.26-0.4 on the matrix), so
    the better reading is the better reference.
    """
    soc_capacity, std_capacity = soc, soc_std
    if reading is not None:
        # the OCV's own reading (:func:`ocv_band_reading`), the extrapolation doubted
        soc_capacity, band_std, beyond, conditioned = reading
        std_capacity = np.hypot(band_std, EXTRAPOLATE_DOUBT * beyond)
        cells = cells & conditioned
    elif ocv_v is not None:
        soc_capacity, beyond = soc_of_ocv(capacity.cell, ocv_v, temperature_degc)
        # the OCV beyond the table is not known: doubt a share of the extrapolation
        std_capacity = np.hypot(np.asarray(soc_std, dtype=float), EXTRAPOLATE_DOUBT * beyond)
    push_capacity(soc_filter, capacity, capacity.anchor(soc_capacity, std_capacity, cells))
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
