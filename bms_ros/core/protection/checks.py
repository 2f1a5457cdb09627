"""Vectorised limit checks over one pack measurement, returning protection events.

:class:`Protection` ties the pieces together: signals (signals.py) -> per-limit state, i.e.
debounce, latched trips and reset in one object per limit (limit_state.py) -> derated current
limits (derating.py); texts.py names things. It reports and never acts: each call returns the
events raised or cleared by that call; the pack supervisor decides what to do with them. Time
is always passed in as ``now_s`` (seconds, monotonic).
"""
from __future__ import annotations

import logging
import math
import time

from ..measurement import Measurement as Measurement  # re-exported: evaluate() takes one
from .derating import current_limits
from .events import Event, ResetResult, Status
from .latch import CORRUPT_ID, LatchedTrip, TripLatch
from .limit_state import LimitState
from .limits import CATALOG_BY_ID, LEVEL_OK, LEVEL_TRIP, STALE_GROUPS, ProtectionConfig
from .signals import SignalExtractor

__all__ = ['Event', 'Measurement', 'Protection', 'ResetResult', 'Status']

log = logging.getLogger(__name__)


class Protection:
    """Limit checks of one pack with debounce, hysteresis, time-current and latched trips."""

    def __init__(self, config: ProtectionConfig, cells_series: int, temperature_sensors: int,
                 latch: TripLatch | None = None, now_s: float = 0.0) -> None:
        self.config = config
        self.cells_series = int(cells_series)
        self.temperature_sensors = int(temperature_sensors)
        self.latch = latch if latch is not None else TripLatch(None)
        self.measurements_rejected = 0
        self.signals = SignalExtractor(config, cells_series, temperature_sensors, now_s)
        channels = {'cell': self.cells_series, 'sensor': self.temperature_sensors,
                    'pack': 1, 'group': 1 + len(STALE_GROUPS)}
        for trip in self.latch.trips.values():
            trip.clear_since_s = now_s if trip.limit_id == CORRUPT_ID else None
        self.states = {limit.limit_id: LimitState(limit,
                                                  channels[CATALOG_BY_ID[limit.limit_id].scope],
                                                  self.latch)
                       for limit in config.limits}
        self._latch_dirty = bool(self.latch.load_problem)  # rewrite a corrupt file at once
        # (charge_a, discharge_a, now_s) of the last state-of-power estimate
        self._estimate: tuple[float, float, float] | None = None

    # ------------------------------------------------------------------ inputs

    def evaluate(self, measurement: Measurement, now_s: float) -> list[Event]:
        """Check every limit against one measurement; return the events it raised or cleared.

        A malformed measurement (wrong array lengths) is rejected and counted: it returns no
        events and does not count as a fresh measurement for the stale check.
        """
        problem = self.signals.malformed(measurement)
        if problem:
            self.measurements_rejected += 1
            if self.measurements_rejected <= 10 or self.measurements_rejected % 100 == 0:
                log.warning('measurement rejected (%d so far): %s', self.measurements_rejected,
                            problem)
            return []
        self._clamp_to(now_s)
        self.signals.accept(measurement, now_s)
        signals = self.signals.compute(measurement, now_s)
        events: list[Event] = []
        for limit in self.config.limits:
            events += self.states[limit.limit_id].update(signals[limit.limit_id], now_s)
        self._after_update(events, now_s)
        events.sort(key=lambda e: -e.level)  # trips first: they matter most for latency
        return events

    def check_timeout(self, now_s: float) -> list[Event]:
        """Re-evaluate the stale-measurement limit without a new measurement (a periodic call)."""
        self._clamp_to(now_s)
        ages, gate = self.signals.stale(now_s)
        ages[1:] = math.nan  # groups age only with a message; a missing message is channel -1
        events = self.states['stale_measurement'].update((ages, gate), now_s)
        self._after_update(events, now_s)
        return events

    def update_estimate(self, charge_current_limit_a: float, discharge_current_limit_a: float,
                        now_s: float) -> None:
        """Remember the estimator's state-of-power limits (A, magnitudes) for derating."""
        if math.isfinite(charge_current_limit_a) and math.isfinite(discharge_current_limit_a):
            self._estimate = (max(charge_current_limit_a, 0.0),
                              max(discharge_current_limit_a, 0.0), now_s)

    def restored_events(self, now_s: float) -> list[Event]:
        """Events for the trips read back from the latch file (to re-announce after a restart)."""
        return [Event(t.limit_id, LEVEL_TRIP, t.index, t.value, t.threshold, t.unit, True, True,
                      f'{t.message} (restored after restart, reset required)', now_s)
                for t in self.latch.trips.values()]

    def _after_update(self, events: list[Event], now_s: float) -> None:
        if any(e.latched for e in events):
            self._latch_dirty = True
        for state in self.states.values():
            state.track(now_s)
        for trip in self.latch.trips.values():   # a corrupt file, or a limit no longer known
            if self._owner(trip) is None and trip.clear_since_s is None and \
                    self.signals.measured:
                trip.clear_since_s = now_s

    # ------------------------------------------------------------------ reset

    def reset(self, now_s: float, requester: str, reason: str) -> ResetResult:
        """Clear every latched trip whose condition is gone and whose cool-down has run.

        Gone means the trip level was released: back inside the hysteresis band for the
        limit's ``release_s``. Trips that cannot be cleared stay latched and are named, with
        why, in the message.
        """
        self._clamp_to(now_s)
        if not requester.strip():
            result = ResetResult(False, 'refused: requester is empty (say who asks)',
                                 self._latched_ids())
        elif not self.latch.trips:
            result = ResetResult(True, 'nothing latched')
        else:
            cleared: list[LatchedTrip] = []
            kept: list[str] = []
            for trip in list(self.latch.trips.values()):
                why = self._reset_blocker(trip, now_s)
                if why:
                    kept.append(f'{trip.name} ({why})')
                    continue
                owner = self._owner(trip)
                if owner is not None:
                    owner.clear(trip)
                else:
                    self.latch.remove(trip.key)
                cleared.append(trip)
            parts: list[str] = []
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

    def reset_events(self, result: ResetResult, now_s: float, requester: str) -> list[Event]:
        """Clearing events for the trips a reset removed."""
        return [Event(t.limit_id, LEVEL_TRIP, t.index, t.value, t.threshold, t.unit, False, False,
                      f'{t.name} reset by {requester}', now_s)
                for t in result.cleared]

    def _latched_ids(self) -> list[str]:
        return sorted({t.limit_id for t in self.latch.trips.values()})

    def _owner(self, trip: LatchedTrip) -> LimitState | None:
        """The LimitState of ``trip`` (None: a corrupt file, or a limit/index not configured)."""
        state = self.states.get(trip.limit_id)
        return state if state is not None and state.owns(trip) else None

    def _reset_blocker(self, trip: LatchedTrip, now_s: float) -> str:
        """Why ``trip`` cannot be reset now ('' = it can)."""
        if trip.limit_id != CORRUPT_ID and not self.signals.measured:
            return 'condition unknown: no measurement since start'
        owner = self._owner(trip)
        if owner is not None:
            return owner.reset_blocker(trip, now_s)
        if trip.clear_since_s is None:
            return 'condition still present: NaN'
        try:
            cooldown = self.config.limit(trip.limit_id).reset_cooldown_s
        except KeyError:
            cooldown = 0.0
        left = cooldown - (now_s - trip.clear_since_s)
        if left > 0:
            return f'cool-down running: {left:.1f} s of {cooldown:.0f} s left'
        return ''

    # ------------------------------------------------------------------ status

    def status(self, now_s: float) -> Status:
        """Every active warning/alarm (highest level per channel), latched trips, limits."""
        active: list[Event] = []
        for limit in self.config.limits:
            active += self.states[limit.limit_id].active_events(now_s)
        for trip in self.latch.trips.values():
            why = self._reset_blocker(trip, now_s)
            active.append(Event(trip.limit_id, LEVEL_TRIP, trip.index, trip.value,
                                trip.threshold, trip.unit, True, True,
                                f'{trip.message}; ' + (why or 'reset possible'), now_s))
        max_level = max((e.level for e in active), default=LEVEL_OK)
        charge_a, discharge_a = self.current_limits(now_s)
        return Status(max_level, bool(self.latch.trips), active, charge_a, discharge_a,
                      self.measurements_rejected)

    def has_something_to_report(self) -> bool:
        """True once there is something to report: a measurement evaluated, a rejected one
        (counted), or a latched trip (restored at a start). Before that protection_status is not
        sent at all, so nobody reads a status built on nothing as "OK" (the supervisor waits in
        OFF); a status before the first good measurement carries limits of 0 A.
        """
        return self.signals.measured or bool(self.latch.trips) or self.measurements_rejected > 0

    def current_limits(self, now_s: float) -> tuple[float, float]:
        """(charge, discharge) current limits in A (magnitudes) after derating; 0 if tripped or
        before the first measurement.

        Each is the configured maximum (or the fresher state-of-power estimate, if lower)
        times the smallest derating factor: 1 at a limit's warning level, falling linearly to 0
        at its trip level (foxBMS's SoF trapezoid).
        """
        # before its first measurement protection knows nothing: unknown is never "OK", so
        # nothing may be drawn on its word (the supervisor refuses DRIVE and CHARGE at 0 A)
        if self.latch.trips or not self.signals.measured:
            return 0.0, 0.0
        s = self.signals
        return current_limits(self.config, s.cells_v, s.temperatures_degc, s.pack_v,
                              self._estimate, now_s)

    def save_if_changed(self) -> bool:
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

    def _clamp_to(self, now_s: float) -> None:
        """Times recorded "in the future" (the clock went back) are moved to now."""
        self.signals.clamp_to(now_s)
        for trip in self.latch.trips.values():
            if trip.clear_since_s is not None and trip.clear_since_s > now_s:
                trip.clear_since_s = now_s
