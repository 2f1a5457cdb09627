"""Signals the limits are checked on, extracted from one pack measurement (vectorised over cells).

Per limit id: ``(values, gate)`` for a threshold limit (``gate`` False where the limit does not
apply, None = always) or ``(values, violated, cleared, known)`` masks of shape (1, channels)
for a yes/no flag or plausibility window. Also keeps what the signals need from earlier
measurements: arrival times for the stale check and the temperature history for the rise rate.
"""
from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .limits import STALE_GROUPS

if TYPE_CHECKING:
    from ..measurement import Measurement
    from .limits import ProtectionConfig, RangeLimit

# (values, gate) of a threshold limit or (values, violated, cleared, known) of a flag or window
Signal = tuple[Any, ...]


class SignalExtractor:
    """Turns measurements into per-limit signals; time ``now_s`` in seconds (monotonic)."""

    def __init__(self, config: ProtectionConfig, cells_series: int, temperature_sensors: int,
                 now_s: float = 0.0) -> None:
        self.config = config
        self.cells_series = int(cells_series)
        self.temperature_sensors = int(temperature_sensors)
        self.measured = False             # a well-formed measurement has arrived since start
        self.first_measurement_s: float | None = None
        self.last_arrival_s = now_s
        self.group_fresh_s = np.full(len(STALE_GROUPS), np.nan)
        self.temperature_history: deque[tuple[float, NDArray[np.float64]]] = deque()
        self.cells_v = np.full(self.cells_series, np.nan)          # last valid values (NaN: not)
        self.temperatures_degc = np.full(self.temperature_sensors, np.nan)
        self.pack_v = math.nan

    def malformed(self, m: Measurement) -> str:
        """Why ``m`` cannot be checked ('' = it can): wrong array lengths."""
        expect = {'cell_voltages_v': self.cells_series, 'cell_voltage_valid': self.cells_series,
                  'temperatures_degc': self.temperature_sensors,
                  'temperature_valid': self.temperature_sensors}
        for name, length in expect.items():
            got = len(getattr(m, name))
            if got != length:
                return f'{name} has {got} values, expected {length}'
        return ''

    def accept(self, m: Measurement, now_s: float) -> None:
        """Record the arrival of a well-formed measurement (for the stale check)."""
        self.measured = True
        if self.first_measurement_s is None:
            self.first_measurement_s = now_s
        self.last_arrival_s = now_s
        flags = (m.cell_voltages_stale, m.temperatures_stale, m.current_stale)
        for group, stale in enumerate(flags):
            if not stale:
                self.group_fresh_s[group] = now_s

    def compute(self, m: Measurement, now_s: float) -> dict[str, Signal]:
        """Per limit id: (values, gate) for thresholds, (values, violated, cleared, known) else."""
        cells_raw = np.asarray(m.cell_voltages_v, dtype=float)
        cells_ok = np.asarray(m.cell_voltage_valid, dtype=bool) & np.isfinite(cells_raw)
        cells = np.where(cells_ok, cells_raw, np.nan)
        temps_raw = np.asarray(m.temperatures_degc, dtype=float)
        temps_ok = np.asarray(m.temperature_valid, dtype=bool) & np.isfinite(temps_raw)
        temps = np.where(temps_ok, temps_raw, np.nan)
        current = float(m.pack_current_a)
        current_ok = math.isfinite(current) and not m.current_stale
        current = current if current_ok else math.nan
        pack_v = float(m.pack_voltage_v)
        self.cells_v, self.temperatures_degc, self.pack_v = cells, temps, pack_v

        # charge temperature limits apply while charging; an unknown current counts as charging
        charging = not (current <= self.config.charge_detect_current_a)
        rate = self._rise_rate(temps, now_s)
        cell_spread = (np.nanmax(cells) - np.nanmin(cells)) if cells_ok.sum() >= 2 else math.nan
        temp_spread = (np.nanmax(temps) - np.nanmin(temps)) if temps_ok.sum() >= 2 else math.nan
        mismatch = (abs(cells.sum() - pack_v) if cells_ok.all() and math.isfinite(pack_v)
                    else math.nan)
        voltage_range = cast('RangeLimit', self.config.limit('cell_voltage_out_of_range'))
        temperature_range = cast('RangeLimit', self.config.limit('temperature_out_of_range'))
        return {
            'cell_overvoltage': (cells, None),
            'cell_undervoltage': (cells, None),
            'pack_overvoltage': (pack_v, None),
            'pack_undervoltage': (pack_v, None),
            'charge_overcurrent': (max(current, 0.0) if current_ok else math.nan, None),
            'discharge_overcurrent': (max(-current, 0.0) if current_ok else math.nan, None),
            'charge_overtemperature': (temps, charging),
            'charge_undertemperature': (temps, charging),
            'discharge_overtemperature': (temps, None),
            'discharge_undertemperature': (temps, None),
            'cell_voltage_spread': (cell_spread, None),
            'temperature_spread': (temp_spread, None),
            'temperature_rise_rate': (rate, None),
            'stale_measurement': self.stale(now_s),
            'pack_voltage_mismatch': (mismatch, None),
            'cell_voltage_invalid': self._flag(cells_raw, ~cells_ok, now_s),
            'cell_voltage_out_of_range': _range(cells_raw, cells_ok, voltage_range),
            'temperature_invalid': self._flag(temps_raw, ~temps_ok, now_s),
            'temperature_out_of_range': _range(temps_raw, temps_ok, temperature_range),
            'current_invalid': self._flag(np.array([m.pack_current_a], dtype=float),
                                          np.array([not math.isfinite(m.pack_current_a)]), now_s),
            'pack_voltage_invalid': self._flag(np.array([pack_v]),
                                               np.array([not math.isfinite(pack_v)]), now_s),
        }

    def stale(self, now_s: float) -> Signal:
        """Ages (s) of: the last measurement message, then each group of STALE_GROUPS.

        Unknown (NaN, no decision) before the first measurement; a group that was never fresh
        is unknown during the start-up grace and ages from the first measurement after it. A
        group that has been fresh counts at once, grace or not: the contactors may already be
        closed (a DRIVE request a second after start), and a group that stops then must trip.
        """
        if self.first_measurement_s is None:
            return (np.full(1 + len(STALE_GROUPS), np.nan), None)
        never = np.isnan(self.group_fresh_s)
        groups = now_s - np.where(never, self.first_measurement_s, self.group_fresh_s)
        if self.in_grace(now_s):
            groups = np.where(never, np.nan, groups)
        return (np.concatenate(([now_s - self.last_arrival_s], groups)), None)

    def in_grace(self, now_s: float) -> bool:
        """True while the driver may still be filling its first complete measurement."""
        return (self.first_measurement_s is None
                or now_s - self.first_measurement_s < self.config.startup_grace_s)

    def clamp_to(self, now_s: float) -> None:
        """Times recorded "in the future" (the clock went back) are moved to now."""
        self.last_arrival_s = min(self.last_arrival_s, now_s)
        self.group_fresh_s = np.where(self.group_fresh_s > now_s, now_s, self.group_fresh_s)
        if self.first_measurement_s is not None:
            self.first_measurement_s = min(self.first_measurement_s, now_s)

    def _flag(self, values: NDArray[np.float64], bad: ArrayLike, now_s: float) -> Signal:
        """Masks of a yes/no plausibility flag; during the start-up grace a bad flag is unknown."""
        bad = np.asarray(bad, dtype=bool)[None, :]
        known = ~bad if self.in_grace(now_s) else np.ones_like(bad)
        return (values, bad & known, ~bad, known)

    def _rise_rate(self, temps: NDArray[np.float64], now_s: float) -> NDArray[np.float64]:
        """Temperature rise rate per sensor (degC/s) over the configured window; NaN if short."""
        window = self.config.temperature_rate_window_s
        history = self.temperature_history
        if history and now_s <= history[-1][0]:
            history.clear()   # the clock went back (or stood still): start the window again
        history.append((now_s, temps))
        while len(history) > 2 and now_s - history[1][0] >= window:
            history.popleft()
        then_s, then = history[0]
        if now_s - then_s < 0.5 * window:
            return np.full(temps.shape, np.nan)
        return (temps - then) / (now_s - then_s)


def _range(values: NDArray[np.float64], ok: NDArray[np.bool_], limit: RangeLimit) -> Signal:
    """Masks of a plausibility window: a valid value outside [minimum, maximum] is violated."""
    with np.errstate(invalid='ignore'):
        outside = ok & ((values < limit.minimum) | (values > limit.maximum))
    return (values, outside[None, :], (ok & ~outside)[None, :], ok[None, :])
