"""State of power: charge and discharge current limits over a horizon (Plett 2004), per cell.

For a constant current i (A, + = charging) held over the horizon dt_h, the filter's model
(:mod:`.soc_filter`: the fast RC pair and the slow diffusion pair, each relaxing with its own
time constant and taking the step through its own resistance) predicts the terminal voltage

    v(dt_h) = OCV(soc + dt_h i / (3600 Q)) + a v_rc + b v_diff
              + (R0 + R1 (1 - a) + r_diff (1 - b)) i,   a = exp(-dt_h / tau1),
                                                        b = exp(-dt_h / diffusion_time_s)

(:func:`predicted_voltage_v`). The largest |i| that keeps ``v`` inside the cell's voltage limits
is solved with the OCV replaced by its secant over the SoC swing (two fixed-point passes,
vectorised), then limited by the SoC window (soc_limit_min..soc_limit_max reachable within dt_h),
the cell's current limits, and temperature: zero outside the cell's charge / discharge
temperature window, multiplied by the optional derating table. Pack limits are the minimum over
cells. Every limit is a magnitude >= 0.

R0, R1 and r_diff are the caller's: the pack estimator passes its learnt R0 per cell, R1 as the
filter models it and the filter's learnt r_diff, all at the cell temperatures by the temperature
law in use (learnt or datasheet), so an aged cell gets lower limits. Without ``r1_ohm`` R1 is the
datasheet's by the datasheet law; without ``v_diff_v`` / ``r_diff_ohm`` there is no slow pair
(a 1-RC model).

Cost: every horizon and both directions are one stacked (2, horizons, n) array, so each numpy
call runs once for all of them; OCV(soc) is evaluated once; what depends only on the
temperatures (temperature windows, derating, the datasheet R1) is kept while they are the same
(by value); large stacks look the OCV up on its uniform grid (:class:`_UniformGrid`). The
numbers are those of a plain per-horizon formulation of the same model to 1e-9 A
(test/core/test_estimation_sop_cost.py).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..ocv import REFERENCE_TEMPERATURE_DEGC

if TYPE_CHECKING:
    from ..cell import CellSpec
    from .config import EstimatorConfig

FloatArray = NDArray[np.float64]
SMALL_SWING = 1e-4      # SoC swing below which the secant is taken over this forward step
# from this many points np.interp's binary search (~50 ns a point once the branch predictor no
# longer holds the pattern) costs more than locating them on a uniform grid (~20 numpy calls)
UNIFORM_LOOKUP_POINTS = 2048


class _UniformGrid:
    """np.interp on one strictly increasing, uniformly spaced grid, to the bit: each point's
    interval from its position times the spacing, corrected by the comparisons np.interp makes;
    then ``slope[j] (x - grid[j]) + value[j]`` as np.interp computes it.
    """

    def __init__(self, grid: FloatArray) -> None:
        self.grid = grid
        self.m = grid.size - 1
        self.low, self.high = float(grid[0]), float(grid[-1])
        self.per_step = self.m / (self.high - self.low)
        self._slopes: dict[int, tuple[FloatArray, FloatArray]] = {}   # id -> (values, slopes)

    @staticmethod
    def fits(grid: FloatArray) -> bool:
        """True for a grid of >= 3 strictly increasing, equally spaced points."""
        steps = np.diff(grid)
        return grid.size >= 3 and bool(np.all(steps > 0.0)) and \
            float(np.ptp(steps)) <= 1e-9 * float(np.mean(steps))

    def locate(self, x: FloatArray) -> tuple[NDArray[np.intp], FloatArray, NDArray[np.bool_]]:
        """(interval j in 0..m, x - grid[j] with x held inside the grid, NaN mask) per point."""
        held = np.fmin(np.fmax(x, self.low), self.high)          # NaN -> low (restored after)
        j = ((held - self.low) * self.per_step).astype(np.intp)
        np.minimum(j, self.m - 1, out=j)
        j -= self.grid[j] > held
        j += self.grid[j + 1] <= held                             # m: x at the last point
        return j, held - self.grid[j], np.isnan(x)

    def values(self, values: FloatArray, j: NDArray[np.intp], offset: FloatArray,
               nan: NDArray[np.bool_]) -> FloatArray:
        """np.interp(x, grid, values) of the points :meth:`locate` gave."""
        kept = self._slopes.get(id(values))
        if kept is None or kept[0] is not values:
            # np.interp's slopes; a 0 after the last point (j = m: x - grid[m] is 0 there)
            slopes = (values[1:] - values[:-1]) / (self.grid[1:] - self.grid[:-1])
            kept = self._slopes[id(values)] = (values, np.append(slopes, 0.0))
        out: FloatArray = kept[1][j] * offset + values[j]
        out[nan] = np.nan
        return out


_uniform: _UniformGrid | None = None        # of the last OCV table's grid (None: not uniform)


def _uniform_grid(grid: FloatArray) -> _UniformGrid | None:
    """The uniform lookup of ``grid`` (kept for the last grid), None if it is not uniform."""
    global _uniform
    if _uniform is None or _uniform.grid is not grid:
        _uniform = _UniformGrid(grid) if _UniformGrid.fits(grid) else None
    return _uniform


class _TemperatureTerms:
    """What the limits need of the temperatures alone, for one (cell, config, temperatures)."""

    def __init__(self, cell: CellSpec, config: EstimatorConfig, t: FloatArray) -> None:
        lim = cell.limits
        self.cell = cell
        self.config = config
        self.key = t.tobytes()
        self.r1_ohm = np.asarray(cell.r1_ohm * cell.r0_at(t) / cell.r0_ohm)
        charge_factor, discharge_factor = config.derating.factors(t)
        charge_ok = (t >= lim.charge_temperature_min_degc) & (t <= lim.charge_temperature_max_degc)
        discharge_ok = (t >= lim.discharge_temperature_min_degc) & \
            (t <= lim.discharge_temperature_max_degc)
        # (2, 1, n): factor inside the window, 0 outside (NaN temperatures are outside)
        self.scale = np.where(np.stack([charge_ok, discharge_ok]),
                              np.stack([charge_factor, discharge_factor]), 0.0)[:, None, :]
        # the entropic term only where the table has one; a NaN temperature's cells end as 0
        # through ``scale``, so an isothermal table needs no temperature term at all
        isothermal = not np.any(cell.ocv.docv_dt_v_per_degc)
        self.delta_t_degc: FloatArray | None = None if isothermal else \
            t - REFERENCE_TEMPERATURE_DEGC

    def matches(self, cell: CellSpec, config: EstimatorConfig, t: FloatArray) -> bool:
        """True if these terms are those of ``cell``, ``config`` and temperatures ``t``."""
        return self.cell is cell and self.config is config and self.key == t.tobytes()


_terms: _TemperatureTerms | None = None     # the last temperatures' terms (changed slowly)


def _temperature_terms(cell: CellSpec, config: EstimatorConfig,
                       t: FloatArray) -> _TemperatureTerms:
    """The temperature terms of the last call if the temperatures are the same, else new."""
    global _terms
    terms = _terms
    if terms is None or not terms.matches(cell, config, t):
        terms = _terms = _TemperatureTerms(cell, config, t)
    return terms


def horizon_limits(cell: CellSpec, config: EstimatorConfig, horizons_s: Sequence[float],
                   soc: ArrayLike, v_rc_v: FloatArray, r0_ohm: float | FloatArray,
                   capacity_ah: FloatArray, temperature_degc: ArrayLike,
                   r1_ohm: float | FloatArray | None = None,
                   v_diff_v: FloatArray | None = None,
                   r_diff_ohm: float | FloatArray | None = None,
                   tau1_s: float | FloatArray | None = None,
                   residual_v: FloatArray | None = None
                   ) -> list[tuple[FloatArray, FloatArray]]:
    """[(charge_a, discharge_a) per cell] for each horizon (s): magnitudes >= 0, NaN-safe (-> 0).

    ``soc`` 0..1, ``v_rc_v`` the fast RC voltages (V), ``r0_ohm`` / ``r1_ohm`` R0 / R1 at the
    cell temperatures (ohm; ``r1_ohm`` None: the datasheet R1 by the datasheet law),
    ``capacity_ah`` per cell, ``temperature_degc`` per cell (NaN: limits 0); ``v_diff_v`` /
    ``r_diff_ohm`` the slow pair's voltage (V) and resistance at the cell temperatures (ohm),
    relaxing with ``config.diffusion_time_s`` (None: no slow pair); ``tau1_s`` the fast pair's
    time constant at the cell temperatures (s, scalar or per cell; None: the cell's);
    ``residual_v`` the voltage the model leaves unexplained now (V per cell, + = the cell above
    the model), held over the horizon on the side it takes margin from (:func:`held_residual_v`).
    """
    soc = np.asarray(soc, dtype=float)
    t = np.asarray(temperature_degc, dtype=float)
    if t.shape != soc.shape:
        t = np.broadcast_to(t, soc.shape)
    n = soc.size
    lim = cell.limits
    terms = _temperature_terms(cell, config, t)
    r1 = terms.r1_ohm if r1_ohm is None else r1_ohm
    horizons = [float(h) for h in horizons_s]
    h = len(horizons)
    if tau1_s is None:
        a = np.array([math.exp(-dt / cell.tau1_s) for dt in horizons])[:, None]  # (h, 1)
    else:                                                                        # (h, n)
        a = np.exp(-np.array(horizons)[:, None] / np.asarray(tau1_s, dtype=float))
    resistance = r0_ohm + r1 * (1.0 - a)                 # ohm, seen by a step held dt_h
    relaxed = a * v_rc_v                                 # (h, n): what is left of v_rc at dt_h
    if v_diff_v is not None or r_diff_ohm is not None:
        b = np.array([math.exp(-dt / config.diffusion_time_s) for dt in horizons])[:, None]
        if r_diff_ohm is not None:
            resistance = resistance + r_diff_ohm * (1.0 - b)
        if v_diff_v is not None:
            relaxed = relaxed + b * v_diff_v
    coulomb = np.array(horizons)[:, None] / (3600.0 * np.asarray(capacity_ah))  # SoC per A
    ocv = cell.ocv
    grid, values = ocv.soc_grid, ocv.ocv_grid_v
    # the table spans exactly 0..1 (OcvTable.from_csv checks it): np.interp holds the end
    # values outside, so OcvTable.ocv's clip to 0..1 changes nothing and is skipped
    clip = not (grid[0] == 0.0 and grid[-1] == 1.0)
    delta_t = terms.delta_t_degc

    uniform = _uniform_grid(grid) if 2 * h * n >= UNIFORM_LOOKUP_POINTS else None

    def ocv_v(z: FloatArray) -> FloatArray:
        """OcvTable.ocv at the cell temperatures for any (..., n) SoC array."""
        if clip:
            z = np.minimum(np.maximum(z, 0.0), 1.0)
        if uniform is not None and z.size >= UNIFORM_LOOKUP_POINTS:
            j, offset, nan = uniform.locate(z)
            base = uniform.values(values, j, offset, nan)
            if delta_t is None:
                return base
            return base + uniform.values(ocv.docv_dt_v_per_degc, j, offset, nan) * delta_t
        base = np.interp(z, grid, values)
        if delta_t is None:
            return base
        return base + np.interp(z, grid, ocv.docv_dt_v_per_degc) * delta_t

    ocv_now = ocv_v(soc)
    # stacked (2, h, n): row 0 charge, row 1 discharge
    margin = np.empty((2, h, n))
    np.subtract(lim.voltage_max_v - ocv_now, relaxed, out=margin[0])
    np.subtract(ocv_now + relaxed, lim.voltage_min_v, out=margin[1])
    if residual_v is not None:
        res = np.nan_to_num(np.asarray(residual_v, dtype=float))
        margin[0] -= np.maximum(res, 0.0)
        margin[1] += np.minimum(res, 0.0)
    signed_coulomb = np.stack([coulomb, -coulomb])      # d soc per A of each row
    current_max = np.array([lim.charge_current_max_a, lim.discharge_current_max_a])[:, None, None]

    def per_amp(current: FloatArray) -> FloatArray:
        """V per A of the step held at ``current``: the OCV's secant over its SoC swing (forward
        over SMALL_SWING where the swing is tiny) times the swing per A, plus the resistance.
        """
        end = np.minimum(np.maximum(soc + signed_coulomb * current, 0.0), 1.0)
        dz = end - soc
        dz = np.where(np.abs(dz) < SMALL_SWING, SMALL_SWING, dz)
        out: FloatArray = np.maximum((ocv_v(soc + dz) - ocv_now) / dz, 0.0) * coulomb + resistance
        return out

    # two fixed-point passes, the first at the current limits: i = margin / per_amp(i)
    first = np.minimum(np.maximum(margin / per_amp(current_max), 0.0), current_max)
    at_first = per_amp(first)
    current: FloatArray = np.minimum(np.maximum(margin / at_first, 0.0), current_max)
    # where the OCV bends (the knees) the second pass overshoots the root: the voltage at it is
    # beyond the limit. There one false-position step between the passes (the first lies on the
    # safe side on a convex drop), else a pass from the overshoot (below the root on a convex one)
    # (where both passes agree, e.g. both at the current limit, the second is no overshoot)
    over = current != first
    if over.any():
        drop = per_amp(current) * current                # V the step takes of the margin
        over &= (drop > margin) & (current > 0.0)
    if over.any():
        drop_first = at_first * first
        bracket = over & (drop_first < margin) & (drop > drop_first)
        with np.errstate(divide='ignore', invalid='ignore'):
            step = np.where(bracket, first + (margin - drop_first) * (current - first)
                            / (drop - drop_first), current * margin / drop)
        np.copyto(current, np.maximum(step, 0.0), where=over)
    window = np.stack([np.maximum(config.soc_limit_max - soc, 0.0),
                       np.maximum(soc - config.soc_limit_min, 0.0)])[:, None, :]
    current = np.minimum(current, window / coulomb) * terms.scale
    np.copyto(current, 0.0, where=np.isnan(current))
    return [(current[0, k], current[1, k]) for k in range(h)]


def current_limits(cell: CellSpec, config: EstimatorConfig, horizon_s: float, soc: ArrayLike,
                   v_rc_v: FloatArray, r0_ohm: float | FloatArray, capacity_ah: FloatArray,
                   temperature_degc: ArrayLike, r1_ohm: float | FloatArray | None = None,
                   v_diff_v: FloatArray | None = None,
                   r_diff_ohm: float | FloatArray | None = None
                   ) -> tuple[FloatArray, FloatArray]:
    """(charge_a, discharge_a) per cell over ``horizon_s``: magnitudes >= 0, NaN-safe (-> 0)."""
    return horizon_limits(cell, config, (horizon_s,), soc, v_rc_v, r0_ohm, capacity_ah,
                          temperature_degc, r1_ohm, v_diff_v, r_diff_ohm)[0]


def predicted_voltage_v(cell: CellSpec, config: EstimatorConfig, horizon_s: float,
                        current_a: FloatArray, soc: ArrayLike, v_rc_v: FloatArray,
                        r0_ohm: float | FloatArray, capacity_ah: FloatArray,
                        temperature_degc: ArrayLike, r1_ohm: float | FloatArray | None = None,
                        v_diff_v: FloatArray | None = None,
                        r_diff_ohm: float | FloatArray | None = None,
                        tau1_s: float | FloatArray | None = None,
                        residual_v: FloatArray | None = None) -> FloatArray:
    """Terminal voltage (V) per cell after holding ``current_a`` (A, + = charging) for
    ``horizon_s`` (s), by the model the limits solve (arguments as :func:`horizon_limits`).
    """
    soc = np.asarray(soc, dtype=float)
    t = np.asarray(temperature_degc, dtype=float)
    i = np.asarray(current_a, dtype=float)
    a = math.exp(-horizon_s / cell.tau1_s) if tau1_s is None else \
        np.exp(-horizon_s / np.asarray(tau1_s, dtype=float))
    b = math.exp(-horizon_s / config.diffusion_time_s)
    r1 = cell.r1_ohm * cell.r0_at(t) / cell.r0_ohm if r1_ohm is None else r1_ohm
    resistance = r0_ohm + r1 * (1.0 - a)
    relaxed = a * np.asarray(v_rc_v, dtype=float)
    if r_diff_ohm is not None:
        resistance = resistance + r_diff_ohm * (1.0 - b)
    if v_diff_v is not None:
        relaxed = relaxed + b * np.asarray(v_diff_v, dtype=float)
    end = soc + horizon_s * i / (3600.0 * np.asarray(capacity_ah, dtype=float))
    out: FloatArray = np.asarray(cell.ocv.ocv(end, t) + relaxed + resistance * i, dtype=float)
    if residual_v is not None:
        out = out + held_residual_v(residual_v, i)
    return out


def held_residual_v(residual_v: ArrayLike, current_a: ArrayLike) -> FloatArray:
    """The unexplained voltage (V) the limits hold over a horizon for ``current_a`` (A, + =
    charging): only on the side that takes margin (below the model discharging, above it
    charging), so noise never widens a limit.
    """
    res = np.nan_to_num(np.asarray(residual_v, dtype=float))
    out: FloatArray = np.where(np.asarray(current_a) < 0.0, np.minimum(res, 0.0),
                               np.maximum(res, 0.0))
    return out


def pack_limits(charge_a: FloatArray, discharge_a: FloatArray) -> tuple[float, float]:
    """Pack limits of a series string: the minimum over cells (0 for no cells)."""
    if len(charge_a) == 0:
        return 0.0, 0.0
    return float(max(np.min(charge_a), 0.0)), float(max(np.min(discharge_a), 0.0))
