"""State of power: charge and discharge current limits over a horizon (Plett 2004), per cell.

For a constant current held over the horizon dt_h, the 1-RC model predicts the terminal voltage

    v(dt_h) = OCV(soc + dt_h i / (3600 Q)) + a v_rc + (R1 (1 - a) + R0) i,   a = exp(-dt_h / tau1)

(i + = charging). The largest |i| that keeps ``v`` inside the cell's voltage limits is solved
with the OCV replaced by its secant over the SoC swing (two fixed-point passes, vectorised), then
limited by the SoC window (soc_limit_min..soc_limit_max reachable within dt_h), the cell's
current limits, and temperature: zero outside the cell's charge / discharge temperature window,
multiplied by the optional derating table. Pack limits are the minimum over cells. Every limit
is a magnitude >= 0.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from ..cell import CellSpec
    from ..ocv import OcvTable
    from .config import EstimatorConfig

FloatArray = NDArray[np.float64]


def _secant_slope(ocv: OcvTable, soc: FloatArray, soc_end: FloatArray,
                  temperature_degc: FloatArray) -> FloatArray:
    """(OCV(soc_end) - OCV(soc)) / (soc_end - soc), the local slope where the swing is tiny."""
    dz = soc_end - soc
    small = np.abs(dz) < 1e-4
    dz_safe = np.where(small, 1e-4, dz)
    secant = (ocv.ocv(soc + dz_safe, temperature_degc) - ocv.ocv(soc, temperature_degc)) / dz_safe
    return np.maximum(secant, 0.0)


def current_limits(cell: CellSpec, config: EstimatorConfig, horizon_s: float, soc: ArrayLike,
                   v_rc_v: FloatArray, r0_ohm: float | FloatArray, capacity_ah: FloatArray,
                   temperature_degc: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """(charge_a, discharge_a) per cell over ``horizon_s``: magnitudes >= 0, NaN-safe (-> 0)."""
    soc = np.asarray(soc, dtype=float)
    t = np.asarray(temperature_degc, dtype=float)
    lim = cell.limits
    a = np.exp(-horizon_s / cell.tau1_s)
    r1 = cell.r1_ohm * cell.r0_at(t) / cell.r0_ohm
    resistance = r0_ohm + r1 * (1.0 - a)                 # ohm, seen by a step held dt_h
    coulomb = horizon_s / (3600.0 * capacity_ah)         # SoC per A over the horizon
    ocv_now = cell.ocv.ocv(soc, t)
    relaxed = a * v_rc_v
    charge = np.full_like(soc, lim.charge_current_max_a)
    discharge = np.full_like(soc, lim.discharge_current_max_a)
    # charge and discharge side by side: one OCV evaluation per pass for both
    soc2 = np.concatenate([soc, soc])
    t2 = np.concatenate([t, t])
    for _ in range(2):
        end = np.clip(np.concatenate([soc + coulomb * charge, soc - coulomb * discharge]), 0, 1)
        slope = _secant_slope(cell.ocv, soc2, end, t2)
        s_c, s_d = slope[:soc.size], slope[soc.size:]
        charge = (lim.voltage_max_v - ocv_now - relaxed) / (s_c * coulomb + resistance)
        discharge = (ocv_now + relaxed - lim.voltage_min_v) / (s_d * coulomb + resistance)
        charge = np.clip(charge, 0.0, lim.charge_current_max_a)
        discharge = np.clip(discharge, 0.0, lim.discharge_current_max_a)
    charge = np.minimum(charge, np.maximum(config.soc_limit_max - soc, 0.0) / coulomb)
    discharge = np.minimum(discharge, np.maximum(soc - config.soc_limit_min, 0.0) / coulomb)
    charge_factor, discharge_factor = config.derating.factors(t)
    charge_ok = (t >= lim.charge_temperature_min_degc) & (t <= lim.charge_temperature_max_degc)
    discharge_ok = (t >= lim.discharge_temperature_min_degc) & \
        (t <= lim.discharge_temperature_max_degc)
    charge = np.where(charge_ok, charge * charge_factor, 0.0)
    discharge = np.where(discharge_ok, discharge * discharge_factor, 0.0)
    return np.nan_to_num(charge, nan=0.0), np.nan_to_num(discharge, nan=0.0)


def pack_limits(charge_a: FloatArray, discharge_a: FloatArray) -> tuple[float, float]:
    """Pack limits of a series string: the minimum over cells (0 for no cells)."""
    if len(charge_a) == 0:
        return 0.0, 0.0
    return float(max(np.min(charge_a), 0.0)), float(max(np.min(discharge_a), 0.0))
