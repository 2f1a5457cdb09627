"""Open-circuit voltage tables: OCV(SoC, T) and its inverse, vectorised over cells.

A table file is CSV with a header: ``soc,ocv_v`` and optionally ``docv_dt_v_per_degc``
(the entropic coefficient), so that OCV(z, T) = OCV_25(z) + dOCV/dT(z) * (T - 25 degC).
SoC is 0..1 and strictly increasing; OCV must be non-decreasing in SoC.
"""
from __future__ import annotations

import os

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .config import csv_columns, load_csv
from .errors import ConfigError

# a value of a function of SoC or temperature: a float for a scalar argument, else an array
FloatOrArray = float | NDArray[np.float64]

REFERENCE_TEMPERATURE_DEGC = 25.0
_INVERSE_CHUNK = 4096  # elements per pass of the inverse with an entropic term (n x knots)


class OcvTable:
    """OCV as a function of SoC (0..1) and temperature (degC); linear interpolation."""

    def __init__(self, soc: ArrayLike, ocv_v: ArrayLike,
                 docv_dt_v_per_degc: ArrayLike | None = None, source: str = '') -> None:
        self.soc_grid = np.asarray(soc, dtype=float)
        self.ocv_grid_v = np.asarray(ocv_v, dtype=float)
        self.docv_dt_v_per_degc = (np.zeros_like(self.soc_grid) if docv_dt_v_per_degc is None
                                   else np.asarray(docv_dt_v_per_degc, dtype=float))
        self.source = source
        self._slope = np.gradient(self.ocv_grid_v, self.soc_grid)
        # most tables have no entropic column: skip its interpolation (a hot path of the filter)
        self._isothermal = not np.any(self.docv_dt_v_per_degc)
        self._secants: dict[float, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
        # the inverse of an isothermal table, once: flat runs collapsed to their middle SoC
        volts = np.unique(self.ocv_grid_v)
        self._inverse = (volts, np.array([self.soc_grid[self.ocv_grid_v == v].mean()
                                          for v in volts]))
        # SoC summed over the grid up to each knot: the mean SoC of a run of knots in O(1)
        self._soc_cumsum = np.concatenate([[0.0], np.cumsum(self.soc_grid)])

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> OcvTable:
        """Load a table; raise ConfigError naming the file and the bad row or column."""
        path = os.fspath(path)
        rows = load_csv(path, 'soc,ocv_v')
        for column in ('soc', 'ocv_v'):
            if column not in rows[0]:
                raise ConfigError(path, column, 'missing column (expected header soc,ocv_v)')
        has_dt = 'docv_dt_v_per_degc' in rows[0]
        columns = csv_columns(path, rows, ('soc', 'ocv_v', 'docv_dt_v_per_degc') if has_dt
                              else ('soc', 'ocv_v'))
        soc = columns['soc']
        ocv = columns['ocv_v']
        if len(soc) < 2:
            raise ConfigError(path, 'soc', 'expected at least 2 rows')
        if np.any(np.diff(soc) <= 0):
            raise ConfigError(path, 'soc', 'expected strictly increasing SoC')
        if soc[0] > 0.0 or soc[-1] < 1.0 or soc[0] < 0.0 or soc[-1] > 1.0:
            raise ConfigError(path, 'soc', 'expected SoC to span exactly 0..1')
        if np.any(np.diff(ocv) < 0):
            raise ConfigError(path, 'ocv_v', 'expected OCV non-decreasing with SoC')
        source = ''
        with open(path, encoding='utf-8') as stream:
            source = ' '.join(line[1:].strip() for line in stream if line.startswith('#'))
        return cls(soc, ocv, columns['docv_dt_v_per_degc'] if has_dt else None,
                   source=source)

    def ocv(self, soc: FloatOrArray,
            temperature_degc: ArrayLike = REFERENCE_TEMPERATURE_DEGC) -> FloatOrArray:
        """OCV in volts; SoC is clipped to 0..1."""
        z = np.minimum(np.maximum(soc, 0.0), 1.0)      # np.clip without its wrapper overhead
        base = np.interp(z, self.soc_grid, self.ocv_grid_v)
        dt = 0.0 if self._isothermal else np.interp(z, self.soc_grid, self.docv_dt_v_per_degc)
        return base + dt * (np.asarray(temperature_degc, dtype=float) - REFERENCE_TEMPERATURE_DEGC)

    def secant_slope(self, soc: FloatOrArray, half_width: float) -> FloatOrArray:
        """(OCV(lo + 2 w) - OCV(lo)) / 2 w with lo = SoC - w kept inside 0..1 - 2 w, at the
        reference temperature, in volts per unit SoC: a slope that does not stall on a table's
        kinks. Piecewise linear in SoC with knots at the grid and the grid -+ w, so it is
        tabulated once per width and interpolated (equal to the direct formula to rounding).
        """
        table = self._secants.get(half_width)
        if table is None:
            w = float(half_width)
            knots = np.unique(np.clip(np.concatenate(
                [self.soc_grid + w, self.soc_grid - w, [w, 1.0 - w]]), w, 1.0 - w))
            lo = knots - w
            values = (np.interp(lo + 2 * w, self.soc_grid, self.ocv_grid_v)
                      - np.interp(lo, self.soc_grid, self.ocv_grid_v)) / (2 * w)
            table = self._secants[half_width] = (knots, values)
        return np.interp(soc, *table)

    def slope(self, soc: FloatOrArray) -> FloatOrArray:
        """dOCV/dSoC in volts per unit SoC (at the reference temperature)."""
        return np.interp(np.clip(soc, 0.0, 1.0), self.soc_grid, self._slope)

    def soc_from_ocv(self, ocv_v: ArrayLike,
                     temperature_degc: ArrayLike = REFERENCE_TEMPERATURE_DEGC) -> FloatOrArray:
        """Inverse of :meth:`ocv` at each element's own temperature: the SoC (clipped to 0..1)
        whose OCV is ``ocv_v`` (V); on a flat run of the table its middle. NaN in, NaN out.
        """
        v = np.asarray(ocv_v, dtype=float)
        t = np.asarray(temperature_degc, dtype=float)
        if self._isothermal:
            # the temperature changes nothing, but a NaN one still reads NaN. As before this
            # interpolates between collapsed flat runs (from a run's middle, not its end: not
            # the exact inverse next to a flat run; no shipped table has one)
            return np.clip(np.interp(v + 0.0 * t, *self._inverse), 0.0, 1.0)
        shape = np.broadcast_shapes(v.shape, t.shape)
        v_flat = np.broadcast_to(v, shape).reshape(-1)
        t_flat = np.broadcast_to(t, shape).reshape(-1)
        z = np.empty(v_flat.shape)
        for start in range(0, v_flat.size, _INVERSE_CHUNK):
            part = slice(start, start + _INVERSE_CHUNK)
            z[part] = self._soc_from_ocv_at(v_flat[part], t_flat[part])
        out = z.reshape(shape)
        return out[()] if out.ndim == 0 else out

    def _soc_from_ocv_at(self, v: NDArray[np.float64],
                         t: NDArray[np.float64]) -> NDArray[np.float64]:
        """The inverse for 1-d ``v`` (V) and ``t`` (degC): OCV(z, T) is piecewise linear in z
        with the table's knots, so each element's knots at its own temperature are inverted
        exactly (no correction at one SoC: the entropic coefficient varies with SoC).
        """
        g = self.soc_grid
        knots = self.ocv_grid_v + self.docv_dt_v_per_degc * (
            t[:, None] - REFERENCE_TEMPERATURE_DEGC)
        # far from 25 degC a table can fall with SoC (Mohtat2020 below about -12 degC): read
        # the first SoC that reaches the OCV (the inverse of its rising envelope)
        rising = np.maximum.accumulate(knots, axis=1)
        below = (rising < v[:, None]).sum(axis=1)      # the first knot at or above the OCV
        upto = (rising <= v[:, None]).sum(axis=1)
        # on a knot (or on a flat run of knots): their mean SoC
        on_knot = upto > below
        run_soc = (self._soc_cumsum[upto] - self._soc_cumsum[below]) / np.maximum(upto - below, 1)
        # else between knots k - 1 (below the OCV) and k (above it); beyond an end clipped to 0..1
        k = np.clip(below, 1, g.size - 1)
        rows = np.arange(v.size)
        v_lo, v_hi = knots[rows, k - 1], knots[rows, k]
        rise = v_hi - v_lo
        share = np.clip((v - v_lo) / np.where(rise > 0.0, rise, 1.0), 0.0, 1.0)
        between = g[k - 1] + share * (g[k] - g[k - 1])
        return np.clip(np.where(on_knot, run_soc, between), 0.0, 1.0)
