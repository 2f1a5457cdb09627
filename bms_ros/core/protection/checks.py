"""Vectorised limit checks over one pack measurement, returning protection events.

:class:`Protection` holds the debounce state of every limit and the latched trips. It reports
and never acts: each call returns the events raised or cleared by that call; the pack supervisor
decides what to do with them. Time is always passed in as ``now_s`` (seconds, monotonic).
"""
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..measurement import Measurement as Measurement   # re-exported: evaluate() takes one
from .debounce import InverseTimeIntegrator, LevelMonitor, threshold_masks
from .latch import CORRUPT_ID, LatchedTrip, TripLatch
from .limits import (CATALOG_BY_ID, LEVEL_NAMES, LEVEL_OK, LEVEL_TRIP, STALE_GROUPS, FlagLimit,
                     RangeLimit, TimeCurrentLimit)

log = logging.getLogger(__name__)

DECIMALS = {'V': 3, 'A': 1, 'degC': 1, 'degC/s': 2, 's': 2}


@dataclass
class Event:
    """A limit raised or cleared; fields as bms_interfaces/ProtectionEvent."""

    limit_id: str
    level: int
    index: int           # cell or sensor index; -1 = whole pack (see docs/protection.md)
    value: float
    threshold: float
    unit: str
    active: bool
    latched: bool
    message: str
    stamp_s: float = 0.0


@dataclass
class Status:
    """Every active warning, alarm and latched trip, and the derated current limits (A, >= 0)."""

    max_level: int
    trip_latched: bool
    active: list
    charge_current_limit_a: float
    discharge_current_limit_a: float
    measurements_rejected: int


@dataclass
class ResetResult:
    """Answer to a reset request; ``still_latched`` lists limit ids that stay latched."""

    success: bool
    message: str
    still_latched: list = field(default_factory=list)
    cleared: list = field(default_factory=list)   # the LatchedTrip objects this reset removed


def _fmt(value, unit):
    if value is None or not math.isfinite(value):
        return 'NaN'
    return f'{value:.{DECIMALS.get(unit, 3)}f}'


class Protection:
    """Limit checks of one pack with debounce, hysteresis, time-current and latched trips."""

    def __init__(self, config, cells_series, temperature_sensors, latch=None, now_s=0.0):
        self.config = config
        self.cells_series = int(cells_series)
        self.temperature_sensors = int(temperature_sensors)
        self.latch = latch if latch is not None else TripLatch(None)
        self.measurements_rejected = 0
        self._channels = {'cell': self.cells_series, 'sensor': self.temperature_sensors,
                          'pack': 1, 'group': 1 + len(STALE_GROUPS)}
        self._monitors = {}
        self._values = {}      # limit_id -> last values per channel (for status and messages)
        self._present = {}     # limit_id -> trip condition present per channel (for reset)
        self._integrators = {}
        for limit in config.limits:
            n = self._channels[CATALOG_BY_ID[limit.limit_id].scope]
            self._monitors[limit.limit_id] = LevelMonitor(len(limit.levels), n, limit.debounce_s,
                                                          limit.release_s)
            self._values[limit.limit_id] = np.full(n, np.nan)
            if isinstance(limit, TimeCurrentLimit):
                self._integrators[limit.limit_id] = InverseTimeIntegrator(limit)
        self._latch_dirty = bool(self.latch.load_problem)  # rewrite a corrupt file at once
        self._measured = False
        self._first_measurement_s = None
        self._last_arrival_s = now_s
        self._group_fresh_s = np.full(len(STALE_GROUPS), np.nan)
        self._temperature_history = deque()
        self._estimate = None  # (charge_a, discharge_a, now_s) of the last state-of-power estimate
        self._signals = {}
        self._last_cells_v = np.full(self.cells_series, np.nan)
        self._last_temperatures_degc = np.full(self.temperature_sensors, np.nan)
        self._last_pack_v = math.nan
        for trip in self.latch.trips.values():
            trip.clear_since_s = now_s if trip.limit_id == CORRUPT_ID else None

    # ------------------------------------------------------------------ inputs

    def evaluate(self, measurement, now_s):
        """Check every limit against one measurement; return the events it raised or cleared.

        A malformed measurement (wrong array lengths) is rejected and counted: it returns no
        events and does not count as a fresh measurement for the stale check.
        """
        problem = self._malformed(measurement)
        if problem:
            self.measurements_rejected += 1
            if self.measurements_rejected <= 10 or self.measurements_rejected % 100 == 0:
                log.warning('measurement rejected (%d so far): %s', self.measurements_rejected,
                            problem)
            return []
        self._clamp_to(now_s)
        self._measured = True
        if self._first_measurement_s is None:
            self._first_measurement_s = now_s
        self._last_arrival_s = now_s
        flags = (measurement.cell_voltages_stale, measurement.temperatures_stale,
                 measurement.current_stale)
        for group, stale in enumerate(flags):
            if not stale:
                self._group_fresh_s[group] = now_s
        signals = self._compute_signals(measurement, now_s)
        events = []
        for limit in self.config.limits:
            events += self._check(limit, signals[limit.limit_id], now_s)
        self._track_latched(now_s)
        events.sort(key=lambda e: -e.level)  # trips first: they matter most for latency
        return events

    def check_timeout(self, now_s):
        """Re-evaluate the stale-measurement limit without a new measurement (a periodic call)."""
        self._clamp_to(now_s)
        limit = self.config.limit('stale_measurement')
        ages, gate = self._stale_signal(now_s)
        ages[1:] = np.nan  # groups age only with a message; a missing message is channel -1
        events = self._check(limit, (ages, gate), now_s)
        self._track_latched(now_s)
        return events

    def update_estimate(self, charge_current_limit_a, discharge_current_limit_a, now_s):
        """Remember the estimator's state-of-power limits (A, magnitudes) for derating."""
        if math.isfinite(charge_current_limit_a) and math.isfinite(discharge_current_limit_a):
            self._estimate = (max(charge_current_limit_a, 0.0),
                              max(discharge_current_limit_a, 0.0), now_s)

    def restored_events(self, now_s):
        """Events for the trips read back from the latch file (to re-announce after a restart)."""
        return [Event(t.limit_id, LEVEL_TRIP, t.index, t.value, t.threshold, t.unit, True, True,
                      f'{t.message} (restored after restart, reset required)', now_s)
                for t in self.latch.trips.values()]

    # ------------------------------------------------------------------ reset

    def reset(self, now_s, requester, reason):
        """Clear every latched trip whose condition is gone and whose cool-down has run.

        Trips that cannot be cleared stay latched and are named, with why, in the message.
        """
        self._clamp_to(now_s)
        if not requester.strip():
            result = ResetResult(False, 'refused: requester is empty (say who asks)',
                                 self._latched_ids())
        elif not self.latch.trips:
            result = ResetResult(True, 'nothing latched')
        else:
            cleared, kept = [], []
            for trip in list(self.latch.trips.values()):
                why = self._reset_blocker(trip, now_s)
                if why:
                    kept.append(f'{trip.name} ({why})')
                else:
                    self.latch.remove(trip.key)
                    cleared.append(trip)
            parts = []
            if cleared:
                parts.append(f'reset {", ".join(t.name for t in cleared)}')
            if kept:
                parts.append(f'still latched: {"; ".join(kept)}')
            result = ResetResult(not kept, ('' if cleared else 'refused: ') + '; '.join(parts),
                                 self._latched_ids(), cleared)
            if cleared:
                self._latch_dirty = True
        log.info('reset request by %r (reason %r): %s', requester, reason, result.message)
        self.latch.log_reset_request(
            f'{time.strftime("%Y-%m-%dT%H:%M:%S%z")} requester={requester!r} reason={reason!r} '
            f'success={result.success} {result.message}')
        return result

    def reset_events(self, result, now_s, requester):
        """Clearing events for the trips a reset removed."""
        return [Event(t.limit_id, LEVEL_TRIP, t.index, t.value, t.threshold, t.unit, False, False,
                      f'{t.name} reset by {requester}', now_s)
                for t in result.cleared]

    def _latched_ids(self):
        return sorted({t.limit_id for t in self.latch.trips.values()})

    def _reset_blocker(self, trip, now_s):
        """Why ``trip`` cannot be reset now ('' = it can)."""
        if trip.limit_id != CORRUPT_ID and not self._measured:
            return 'condition unknown: no measurement since start'
        if trip.clear_since_s is None:
            value = self._current_value(trip)
            return f'condition still present: {_fmt(value, trip.unit)} {trip.unit}'.rstrip()
        cooldown = self._cooldown_s(trip)
        left = cooldown - (now_s - trip.clear_since_s)
        if left > 0:
            return f'cool-down running: {left:.1f} s of {cooldown:.0f} s left'
        return ''

    def _cooldown_s(self, trip):
        try:
            return self.config.limit(trip.limit_id).reset_cooldown_s
        except KeyError:
            return 0.0

    def _current_value(self, trip):
        values = self._values.get(trip.limit_id)
        channel = self._channel_of(trip.limit_id, trip.index)
        if values is None or channel is None or channel >= len(values):
            return math.nan
        return float(values[channel])

    def _track_latched(self, now_s):
        """Follow, per latched trip, whether its condition is present and since when it is not."""
        changed = False
        for trip in self.latch.trips.values():
            present = self._present.get(trip.limit_id)
            channel = self._channel_of(trip.limit_id, trip.index)
            if trip.limit_id == CORRUPT_ID:
                is_present = False
            elif present is None or channel is None or channel >= len(present):
                is_present = not self._measured
            else:
                is_present = bool(present[channel])
            if is_present:
                trip.clear_since_s = None
            elif trip.clear_since_s is None:
                trip.clear_since_s = now_s
                changed = True
        return changed

    # ------------------------------------------------------------------ status

    def status(self, now_s):
        """Every active warning/alarm (highest level per channel), latched trips, limits."""
        active = []
        for limit in self.config.limits:
            monitor = self._monitors[limit.limit_id]
            levels = np.asarray(limit.levels)
            any_active = monitor.active.any(axis=0)
            for channel in np.flatnonzero(any_active):
                row = int(np.flatnonzero(monitor.active[:, channel])[-1])
                level = int(levels[row])
                index = self._index_of(limit.limit_id, channel)
                if level == LEVEL_TRIP and (limit.limit_id, index) in self.latch:
                    continue  # reported below, with its latch details
                value = float(self._values[limit.limit_id][channel])
                threshold = self._threshold(limit, row)
                active.append(Event(limit.limit_id, level, index, value, threshold, limit.unit,
                                    True, False, self._raise_text(limit, row, index, value),
                                    now_s))
        for trip in self.latch.trips.values():
            why = self._reset_blocker(trip, now_s)
            active.append(Event(trip.limit_id, LEVEL_TRIP, trip.index, trip.value,
                                trip.threshold, trip.unit, True, True,
                                f'{trip.message}; ' + (why or 'reset possible'), now_s))
        max_level = max((e.level for e in active), default=LEVEL_OK)
        charge_a, discharge_a = self.current_limits(now_s)
        return Status(max_level, bool(self.latch.trips), active, charge_a, discharge_a,
                      self.measurements_rejected)

    def current_limits(self, now_s):
        """(charge, discharge) current limits in A (magnitudes) after derating; 0 if tripped.

        Each is the configured maximum (or the fresher state-of-power estimate, if lower)
        times the smallest derating factor: 1 at a limit's warning level, falling linearly to 0
        at its trip level (foxBMS's SoF trapezoid).
        """
        if self.latch.trips:
            return 0.0, 0.0
        charge = self.config.charge_current_max_a
        discharge = self.config.discharge_current_max_a
        if self._estimate is not None and now_s - self._estimate[2] <= \
                self.config.estimate_timeout_s:
            charge = min(charge, self._estimate[0])
            discharge = min(discharge, self._estimate[1])
        cells = self._last_cells_v[np.isfinite(self._last_cells_v)]
        temps = self._last_temperatures_degc[np.isfinite(self._last_temperatures_degc)]
        high_v = cells.max() if cells.size else math.nan
        low_v = cells.min() if cells.size else math.nan
        high_t = temps.max() if temps.size else math.nan
        low_t = temps.min() if temps.size else math.nan
        charge *= min(self._derate('cell_overvoltage', high_v),
                      self._derate('pack_overvoltage', self._last_pack_v),
                      self._derate('charge_overtemperature', high_t),
                      self._derate('charge_undertemperature', low_t))
        discharge *= min(self._derate('cell_undervoltage', low_v),
                         self._derate('pack_undervoltage', self._last_pack_v),
                         self._derate('discharge_overtemperature', high_t),
                         self._derate('discharge_undertemperature', low_t))
        return float(charge), float(discharge)

    def _derate(self, limit_id, value):
        """1 inside the warning level, 0 at the trip level, linear between; 1 if unknown."""
        if not math.isfinite(value):
            return 1.0
        limit = self.config.limit(limit_id)
        span = limit.trip - limit.warning
        return float(np.clip((limit.trip - value) / span, 0.0, 1.0))

    # ------------------------------------------------------------------ checks

    def _malformed(self, m):
        expect = {'cell_voltages_v': self.cells_series, 'cell_voltage_valid': self.cells_series,
                  'temperatures_degc': self.temperature_sensors,
                  'temperature_valid': self.temperature_sensors}
        for name, length in expect.items():
            got = len(getattr(m, name))
            if got != length:
                return f'{name} has {got} values, expected {length}'
        return ''

    def _compute_signals(self, m, now_s):
        """Per limit: (values, violated, cleared, known) or (values, gate) for thresholds."""
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
        self._last_cells_v, self._last_temperatures_degc, self._last_pack_v = cells, temps, pack_v

        # charge temperature limits apply while charging; an unknown current counts as charging
        charging = not (current <= self.config.charge_detect_current_a)
        rate = self._rise_rate(temps, now_s)
        cell_spread = (np.nanmax(cells) - np.nanmin(cells)) if cells_ok.sum() >= 2 else math.nan
        temp_spread = (np.nanmax(temps) - np.nanmin(temps)) if temps_ok.sum() >= 2 else math.nan
        mismatch = (abs(cells.sum() - pack_v) if cells_ok.all() and math.isfinite(pack_v)
                    else math.nan)
        voltage_range = self.config.limit('cell_voltage_out_of_range')
        temperature_range = self.config.limit('temperature_out_of_range')
        signals = {
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
            'stale_measurement': self._stale_signal(now_s),
            'pack_voltage_mismatch': (mismatch, None),
            'cell_voltage_invalid': self._flag(cells_raw, ~cells_ok, now_s),
            'cell_voltage_out_of_range': self._range(cells_raw, cells_ok, voltage_range),
            'temperature_invalid': self._flag(temps_raw, ~temps_ok, now_s),
            'temperature_out_of_range': self._range(temps_raw, temps_ok, temperature_range),
            'current_invalid': self._flag(np.array([m.pack_current_a], dtype=float),
                                          np.array([not math.isfinite(m.pack_current_a)]), now_s),
            'pack_voltage_invalid': self._flag(np.array([pack_v]),
                                               np.array([not math.isfinite(pack_v)]), now_s),
        }
        return signals

    def _flag(self, values, bad, now_s):
        """Masks of a yes/no plausibility flag; during the start-up grace a bad flag is unknown."""
        bad = np.asarray(bad, dtype=bool)[None, :]
        known = ~bad if self._in_grace(now_s) else np.ones_like(bad)
        return (values, bad & known, ~bad, known)

    @staticmethod
    def _range(values, ok, limit):
        with np.errstate(invalid='ignore'):
            outside = ok & ((values < limit.minimum) | (values > limit.maximum))
        return (values, outside[None, :], (ok & ~outside)[None, :], ok[None, :])

    def _in_grace(self, now_s):
        """True while the driver may still be filling its first complete measurement."""
        return (self._first_measurement_s is None
                or now_s - self._first_measurement_s < self.config.startup_grace_s)

    def _clamp_to(self, now_s):
        """Times recorded "in the future" (the clock went back) are moved to now."""
        self._last_arrival_s = min(self._last_arrival_s, now_s)
        self._group_fresh_s = np.where(self._group_fresh_s > now_s, now_s, self._group_fresh_s)
        if self._first_measurement_s is not None:
            self._first_measurement_s = min(self._first_measurement_s, now_s)
        for trip in self.latch.trips.values():
            if trip.clear_since_s is not None and trip.clear_since_s > now_s:
                trip.clear_since_s = now_s

    def _stale_signal(self, now_s):
        """Ages (s) of: the last measurement message, then each group of STALE_GROUPS.

        Unknown (NaN, no decision) before the first measurement; a group that was never fresh
        ages from the first measurement once the start-up grace is over.
        """
        if self._first_measurement_s is None:
            return (np.full(1 + len(STALE_GROUPS), np.nan), None)
        fresh = np.where(np.isnan(self._group_fresh_s), self._first_measurement_s,
                         self._group_fresh_s)
        groups = now_s - fresh
        if self._in_grace(now_s):
            groups = np.where(groups > 0.0, np.nan, groups)
        return (np.concatenate(([now_s - self._last_arrival_s], groups)), None)

    def _rise_rate(self, temps, now_s):
        """Temperature rise rate per sensor (degC/s) over the configured window; NaN if short."""
        window = self.config.temperature_rate_window_s
        history = self._temperature_history
        if history and now_s <= history[-1][0]:
            history.clear()   # the clock went back (or stood still): start the window again
        history.append((now_s, temps))
        while len(history) > 2 and now_s - history[1][0] >= window:
            history.popleft()
        then_s, then = history[0]
        if now_s - then_s < 0.5 * window:
            return np.full(temps.shape, np.nan)
        return (temps - then) / (now_s - then_s)

    def _check(self, limit, signal, now_s):
        """Update one limit's monitor; return the events of the levels that changed."""
        entry = CATALOG_BY_ID[limit.limit_id]
        if isinstance(limit, FlagLimit):
            values, violated, cleared, known = signal
            values = np.atleast_1d(np.asarray(values, dtype=float))
            curve_tripped = None
            present_cleared = cleared
        else:
            raw, gate = signal
            values = np.atleast_1d(np.asarray(raw, dtype=float))
            violated, cleared, known = threshold_masks(values, limit.thresholds,
                                                       limit.hysteresis, limit.high, gate)
            # a trip's condition is judged on the value alone: charge over-temperature is
            # still present at 46 degC after charging stopped
            present_cleared = cleared if gate is None else threshold_masks(
                values, limit.thresholds, limit.hysteresis, limit.high)[1]
            curve_tripped = None
            if isinstance(limit, TimeCurrentLimit):
                fraction = self._integrators[limit.limit_id].update(float(values[0]), now_s)
                curve_tripped = fraction >= 1.0
                violated, cleared = violated.copy(), cleared.copy()
                violated[2] |= curve_tripped
                cleared[2] = (~curve_tripped & np.isfinite(values)
                              & (values < limit.curve_current_a[0] - limit.hysteresis))
                present_cleared = cleared
        self._values[limit.limit_id] = values
        monitor = self._monitors[limit.limit_id]
        raised, released = monitor.update(violated, cleared, known, now_s)
        if LEVEL_TRIP in limit.levels:
            # present unless the value is back inside by the hysteresis (unknown = present)
            row = limit.levels.index(LEVEL_TRIP)
            self._present[limit.limit_id] = ~np.asarray(present_cleared)[row]
        events = []
        for row, channel in zip(*np.nonzero(raised | released)):
            level = limit.levels[row]
            index = self._index_of(limit.limit_id, channel)
            value = float(values[channel]) if channel < len(values) else math.nan
            threshold = self._threshold(limit, row)
            if raised[row, channel]:
                if level == LEVEL_TRIP:
                    if (limit.limit_id, index) in self.latch:
                        continue  # already latched (restored, or raised again): nothing new
                    text = self._raise_text(limit, row, index, value, bool(curve_tripped)
                                            and value < limit.trip)
                    self.latch.add(LatchedTrip(limit.limit_id, index, value, threshold,
                                               limit.unit, text, time.time()))
                    self._latch_dirty = True
                    events.append(Event(limit.limit_id, level, index, value, threshold,
                                        limit.unit, True, True, text, now_s))
                    log.warning('TRIP latched: %s', text)
                else:
                    events.append(Event(limit.limit_id, level, index, value, threshold,
                                        limit.unit, True, False,
                                        self._raise_text(limit, row, index, value), now_s))
            elif level != LEVEL_TRIP:  # a latched trip clears only by reset
                events.append(Event(limit.limit_id, level, index, value, threshold, limit.unit,
                                    False, False,
                                    self._clear_text(limit, row, index, value, entry), now_s))
        return events

    def save_if_changed(self):
        """Persist the latched trips if a trip latched or was reset since the last save.

        Separate from :meth:`evaluate` so the caller can publish a trip before the fsync.
        Returns True if the file was written.
        """
        if not self._latch_dirty:
            return False
        try:
            self.latch.save()
        except (OSError, ValueError) as error:  # still latched in memory, and reported
            log.error('cannot persist latched trips to %s: %s', self.latch.path, error)
            return False
        self._latch_dirty = bool(self.latch.load_problem)  # rewrite a corrupt file at once
        return True

    # ------------------------------------------------------------------ naming

    def _index_of(self, limit_id, channel):
        scope = CATALOG_BY_ID[limit_id].scope
        if scope == 'pack':
            return -1
        if scope == 'group':
            return int(channel) - 1
        return int(channel)

    def _channel_of(self, limit_id, index):
        entry = CATALOG_BY_ID.get(limit_id)
        if entry is None:
            return None
        if entry.scope == 'pack':
            return 0
        if entry.scope == 'group':
            return index + 1
        return index

    @staticmethod
    def _subject(limit_id, index):
        scope = CATALOG_BY_ID[limit_id].scope
        if scope == 'cell':
            return f'cell {index}'
        if scope == 'sensor':
            return f'temperature sensor {index}'
        if scope == 'group':
            return STALE_GROUPS[index] if index >= 0 else 'measurement'
        return 'pack'

    @staticmethod
    def _threshold(limit, row):
        if isinstance(limit, RangeLimit):
            return limit.maximum
        if isinstance(limit, FlagLimit):
            return math.nan
        return float(limit.thresholds[row])

    def _raise_text(self, limit, row, index, value, by_curve=False):
        entry = CATALOG_BY_ID[limit.limit_id]
        subject = self._subject(limit.limit_id, index)
        unit = limit.unit
        if isinstance(limit, RangeLimit):
            return (f'{subject} {entry.text}: {_fmt(value, unit)} {unit} not in '
                    f'[{_fmt(limit.minimum, unit)}, {_fmt(limit.maximum, unit)}] {unit}')
        if isinstance(limit, FlagLimit):
            return f'{subject} {entry.text}'
        level = limit.levels[row]
        if by_curve:
            allowed = float(limit.allowed_time_s(value))
            return (f'{subject} {entry.text} {_fmt(value, unit)} {unit} beyond the time-current '
                    f'curve ({allowed:.1f} s allowed at this current)')
        op = '>=' if limit.high else '<='
        return (f'{subject} {entry.text} {_fmt(value, unit)} {unit} {op} {LEVEL_NAMES[level]} '
                f'{_fmt(limit.thresholds[row], unit)} {unit}')

    def _clear_text(self, limit, row, index, value, entry):
        subject = self._subject(limit.limit_id, index)
        unit = limit.unit
        if isinstance(limit, FlagLimit):
            return f'{subject} {entry.text}: cleared'
        level = limit.levels[row]
        bound = limit.thresholds[row] + (-limit.hysteresis if limit.high else limit.hysteresis)
        op = '<' if limit.high else '>'
        return (f'{subject} {entry.text} {LEVEL_NAMES[level]} cleared: {_fmt(value, unit)} {unit} '
                f'{op} {_fmt(bound, unit)} {unit}')
