"""SoC read from a cell voltage at a start, under an unknown load history, with its doubt (per
cell, vectorised); the doubt of an OCV known to +-noise (:func:`ocv_soc_std`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..ocv import FloatOrArray

if TYPE_CHECKING:
    from ..cell import CellSpec
    from .config import EstimatorConfig

FloatArray = NDArray[np.float64]


def soc_from_voltage(cell: CellSpec, config: EstimatorConfig, r0_ohm: FloatArray,
                     factor: float | FloatArray, voltage_v: FloatOrArray, current_a: FloatOrArray,
                     temperature_degc: FloatOrArray) -> tuple[Any, FloatArray, Any, Any]:
    """(soc, std, v_rc, v_diff) per cell from a terminal voltage under an unknown history.

    At rest current this is OCV. Under load the voltage holds R0 i and the polarisation of
    both RC pairs, which depends on how long the load has run (unknown): the fraction
    ``startup_polarisation`` of the settled polarisation (R1 i for the fast pair, r_diff i
    for the slow one) is assumed, and the doubt covers the rest and the R0 error. ``r0_ohm``
    at 25 degC, ``factor`` = R(T) / R(25 degC).
    """
    i = np.asarray(current_a, dtype=float)
    r0 = r0_ohm * factor
    share = config.startup_polarisation
    settled_rc = cell.r1_ohm * factor * i
    settled_diff = config.diffusion_resistance_ratio * cell.r1_ohm * factor * i
    if config.startup_polarisation_max > share:
        return _soc_from_range(cell, config, np.asarray(voltage_v, dtype=float) - r0 * i,
                               settled_rc, settled_diff, r0 * i, temperature_degc)
    v_rc, v_diff = share * settled_rc, share * settled_diff
    ocv = np.asarray(voltage_v, dtype=float) - r0 * i - v_rc - v_diff
    soc = cell.ocv.soc_from_ocv(ocv, temperature_degc)
    noise_v = config.rest_ocv_noise_v + (1.0 - share) * np.abs(
        settled_rc + settled_diff) + 0.3 * np.abs(r0 * i)
    return soc, ocv_soc_std(cell, ocv, noise_v, temperature_degc), v_rc, v_diff


def _soc_from_range(cell: CellSpec, config: EstimatorConfig, base_v: FloatArray,
                    settled_rc: FloatArray, settled_diff: FloatArray, r0_i_v: FloatArray,
                    temperature_degc: FloatOrArray) -> tuple[Any, FloatArray, Any, Any]:
    """The start's SoC when the polarisation beyond R0 i (``base_v`` = v - R0 i) may be any
    share ``startup_polarisation``..``startup_polarisation_max`` of the settled one: the SoC
    range those OCVs span (on a plateau most of it), its middle as the SoC and half its span
    as the doubt, not a point biased by one assumed polarisation; the RC states hold the
    polarisation that SoC implies (within the range), split as the settled values.
    """
    low, high = config.startup_polarisation, config.startup_polarisation_max
    settled = settled_rc + settled_diff
    inverse = cell.ocv.soc_from_ocv
    z_low = inverse(base_v - low * settled, temperature_degc)
    z_high = inverse(base_v - high * settled, temperature_degc)
    soc = 0.5 * (z_low + z_high)
    half = 0.5 * np.abs(z_high - z_low)
    ocv = cell.ocv.ocv(soc, temperature_degc)
    safe = np.where(np.abs(settled) > 1e-9, settled, 1.0)
    s = np.where(np.abs(settled) > 1e-9, np.clip((base_v - ocv) / safe, low, high), low)
    noise_v = config.rest_ocv_noise_v + 0.3 * np.abs(r0_i_v)
    std = np.clip(np.hypot(half, ocv_soc_std(cell, ocv, noise_v, temperature_degc)), 0.005, 0.5)
    return soc, std, s * settled_rc, s * settled_diff


def ocv_soc_std(cell: CellSpec, ocv_v: FloatArray, noise_v: FloatArray,
                temperature_degc: FloatOrArray) -> FloatArray:
    """SoC doubt of an OCV known to +-noise_v: half the SoC span the inverse table gives
    (on a plateau a few mV span tens of %, which a local slope at one point would hide).
    """
    inverse = cell.ocv.soc_from_ocv
    span = inverse(ocv_v + noise_v, temperature_degc) - inverse(ocv_v - noise_v,
                                                                temperature_degc)
    out: FloatArray = np.clip(0.5 * span, 0.005, 0.5)
    return out
