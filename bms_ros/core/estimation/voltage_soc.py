"""SoC read from a cell voltage at a start, under an unknown load history, with its doubt (per
cell, vectorised); the doubt of an OCV known to +-noise (:func:`ocv_soc_std`).
"""
from __future__ import annotations

import math
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
                     temperature_degc: FloatOrArray,
                     spread_v: FloatOrArray = 0.0) -> tuple[Any, FloatArray, Any, Any]:
    """(soc, std, v_rc, v_diff) per cell from a terminal voltage under an unknown history.

    At rest current this is OCV. Under load the voltage holds R0 i and the polarisation of
    both RC pairs, which depends on how long the load has run (unknown): the fraction
    ``startup_polarisation`` of the settled polarisation (R1 i for the fast pair, r_diff i
    for the slow one) is assumed, and the doubt covers the rest and the R0 error. ``r0_ohm``
    at 25 degC, ``factor`` = R(T) / R(25 degC). ``spread_v``: the OCV may lie this far either
    way of the table's too (an unknown hysteresis state, :mod:`.hysteresis`).
    """
    i = np.asarray(current_a, dtype=float)
    r0 = r0_ohm * factor
    share = config.startup_polarisation
    settled_rc = cell.r1_ohm * factor * i
    settled_diff = config.diffusion_resistance_ratio * cell.r1_ohm * factor * i
    if config.startup_polarisation_max > share:
        return _soc_from_range(cell, config, np.asarray(voltage_v, dtype=float) - r0 * i,
                               settled_rc, settled_diff, r0 * i, temperature_degc, spread_v)
    v_rc, v_diff = share * settled_rc, share * settled_diff
    ocv = np.asarray(voltage_v, dtype=float) - r0 * i - v_rc - v_diff
    soc = cell.ocv.soc_from_ocv(ocv, temperature_degc)
    noise_v = config.rest_ocv_noise_v + (1.0 - share) * np.abs(
        settled_rc + settled_diff) + 0.3 * np.abs(r0 * i) + np.abs(spread_v)
    return soc, ocv_soc_std(cell, ocv, noise_v, temperature_degc), v_rc, v_diff


def _soc_from_range(cell: CellSpec, config: EstimatorConfig, base_v: FloatArray,
                    settled_rc: FloatArray, settled_diff: FloatArray, r0_i_v: FloatArray,
                    temperature_degc: FloatOrArray,
                    spread_v: FloatOrArray = 0.0) -> tuple[Any, FloatArray, Any, Any]:
    """The start's SoC when the polarisation beyond R0 i (``base_v`` = v - R0 i) may be any
    share ``startup_polarisation``..``startup_polarisation_max`` of the settled one: the SoC
    range those OCVs span (on a plateau most of it), its middle as the SoC and half its span
    as the doubt, not a point biased by one assumed polarisation; the RC states hold the
    polarisation that SoC implies (within the range), split as the settled values.
    """
    z_low, z_high = _range(cell, config, base_v, settled_rc + settled_diff, temperature_degc,
                           spread_v)
    soc = 0.5 * (z_low + z_high)
    half = 0.5 * (z_high - z_low)
    ocv = np.asarray(cell.ocv.ocv(soc, temperature_degc), dtype=float)
    noise_v = config.rest_ocv_noise_v + 0.3 * np.abs(r0_i_v)
    std = np.clip(np.hypot(half, ocv_soc_std(cell, ocv, noise_v, temperature_degc)), 0.005, 0.5)
    v_rc, v_diff = _polarisation(cell, config, soc, base_v, settled_rc, settled_diff,
                                 temperature_degc)
    return soc, std, v_rc, v_diff


def _range(cell: CellSpec, config: EstimatorConfig, base_v: FloatArray, settled_v: FloatArray,
           temperature_degc: FloatOrArray,
           spread_v: FloatOrArray = 0.0) -> tuple[FloatArray, FloatArray]:
    """(lowest, highest) SoC per cell whose OCV is ``base_v`` minus a share
    ``startup_polarisation``..``startup_polarisation_max`` of the settled polarisation, and
    up to ``spread_v`` either way.
    """
    inverse = cell.ocv.soc_from_ocv
    v_a = base_v - config.startup_polarisation * settled_v
    v_b = base_v - config.startup_polarisation_max * settled_v
    spread = np.abs(np.asarray(spread_v, dtype=float))
    z_a = np.asarray(inverse(np.minimum(v_a, v_b) - spread, temperature_degc), dtype=float)
    z_b = np.asarray(inverse(np.maximum(v_a, v_b) + spread, temperature_degc), dtype=float)
    return np.minimum(z_a, z_b), np.maximum(z_a, z_b)


def _polarisation(cell: CellSpec, config: EstimatorConfig, soc: FloatArray, base_v: FloatArray,
                  settled_rc: FloatArray, settled_diff: FloatArray,
                  temperature_degc: FloatOrArray) -> tuple[FloatArray, FloatArray]:
    """(v_rc, v_diff) per cell: the polarisation the SoC implies (clipped to the range),
    split as the settled values.
    """
    low, high = config.startup_polarisation, config.startup_polarisation_max
    settled = settled_rc + settled_diff
    ocv = cell.ocv.ocv(soc, temperature_degc)
    some = np.abs(settled) > 1e-9
    s = np.where(some, np.clip((base_v - ocv) / np.where(some, settled, 1.0), low, high), low)
    return s * settled_rc, s * settled_diff


def prior_within_range(cell: CellSpec, config: EstimatorConfig, r0_ohm: FloatArray,
                       factor: float | FloatArray, voltage_v: FloatArray, current_a: FloatArray,
                       temperature_degc: FloatOrArray, soc: FloatArray, soc_var: FloatArray,
                       spread_v: FloatOrArray = 0.0
                       ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """A SoC given before a start under load (``soc``, ``soc_var``: a state file, set_soc,
    ``--initial-soc``) and the range the voltage allows (``startup_polarisation``..
    ``startup_polarisation_max``, :func:`soc_from_voltage`): the prior truncated to that range.
    Returns (soc_measured, soc_noise) of the SoC measurement that gives that posterior, and
    the (v_rc, v_diff) it implies.
    """
    i = np.asarray(current_a, dtype=float)
    r0_i = r0_ohm * factor * i
    settled_rc = cell.r1_ohm * factor * i
    settled_diff = config.diffusion_resistance_ratio * cell.r1_ohm * factor * i
    base = np.asarray(voltage_v, dtype=float) - r0_i
    low, high = _range(cell, config, base, settled_rc + settled_diff, temperature_degc,
                       spread_v)
    mean, var = _truncated_normal(soc, soc_var, low, high)
    # the measurement (z, r) whose Kalman update takes (soc, soc_var) to (mean, var)
    var = np.minimum(var, 0.999 * soc_var)
    noise2 = soc_var * var / (soc_var - var)
    measured = soc + (mean - soc) * (soc_var + noise2) / soc_var
    v_rc, v_diff = _polarisation(cell, config, mean, base, settled_rc, settled_diff,
                                 temperature_degc)
    return measured, np.sqrt(noise2), v_rc, v_diff


def _truncated_normal(mean: FloatArray, var: FloatArray, low: FloatArray, high: FloatArray
                      ) -> tuple[FloatArray, FloatArray]:
    """Mean and variance of N(mean, var) truncated to low..high, per cell (a prior far outside
    the range: the nearer edge, with the doubt of 1 % of SoC).
    """
    std = np.sqrt(np.maximum(var, 1e-12))
    a, b = (low - mean) / std, (high - mean) / std
    pdf_a, pdf_b = np.exp(-0.5 * a * a), np.exp(-0.5 * b * b)
    pdf_a, pdf_b = pdf_a / math.sqrt(2.0 * math.pi), pdf_b / math.sqrt(2.0 * math.pi)
    erf = np.frompyfunc(math.erf, 1, 1)
    mass = 0.5 * (np.asarray(erf(b / math.sqrt(2.0)), dtype=float)
                  - np.asarray(erf(a / math.sqrt(2.0)), dtype=float))
    ok = mass > 1e-9
    z = np.where(ok, mass, 1.0)
    ratio = (pdf_a - pdf_b) / z
    out_mean = np.where(ok, mean + std * ratio, np.where(mean < low, low, high))
    spread = 1.0 + (np.where(np.isfinite(a), a, 0.0) * pdf_a
                    - np.where(np.isfinite(b), b, 0.0) * pdf_b) / z - ratio ** 2
    out_var = np.where(ok, var * np.maximum(spread, 1e-6), 1e-4)
    return out_mean, out_var


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
