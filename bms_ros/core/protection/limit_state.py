"""The state of one limit over its channels: debounce of every level, latched trips and reset.

One object owns all three, so they cannot diverge (issue 13: a reset inside ``release_s`` left
the debounce holding the trip level, and a returning condition never latched again). The rules
it keeps, per channel of a limit with a trip level:

- the trip level is raised (after ``debounce_s``) and latched together;
- while the trip is latched and its value is known and not back inside the hysteresis band,
  the trip level is held raised, so the condition is gone only after a full ``release_s``
  inside the band (also after a restart: restored trips start raised);
- a reset is granted only once the trip level has been released and ``reset_cooldown_s`` has
  run since; it drops the trip level and its timers, so a returning condition latches again
  after exactly ``debounce_s``. Lower levels keep their own state: they describe the value
  as it is (e.g. still above the warning) and never latch.

The inverse-time budget of an over-current limit is not reset: it is the conductors' heat.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from .debounce import InverseTimeIntegrator, LevelMonitor, threshold_masks
from .events import Event
from .latch import LatchedTrip
from .limits import LEVEL_TRIP, FlagLimit, Limit, ThresholdLimit, TimeCurrentLimit
from .texts import channel_of, clear_text, fmt, index_of, raise_text, threshold_of

if TYPE_CHECKING:
    from .latch import TripLatch
    from .signals import Signal

log = logging.getLogger(__name__)


class LimitState:
    """Debounce, latched trips and reset of one limit over ``n_channels`` cells/sensors/pack."""

    def __init__(self, limit: Limit, n_channels: int, latch: TripLatch) -> None:
        self.limit = limit
        self.latch = latch                      # the shared TripLatch (all limits, one file)
        self.n_channels = int(n_channels)
        self.monitor = LevelMonitor(len(limit.levels), self.n_channels, limit.debounce_s,
                                    limit.release_s)
        self.integrator = (InverseTimeIntegrator(limit) if isinstance(limit, TimeCurrentLimit)
                           else None)
        self.values = np.full(self.n_channels, np.nan)   # last values (status and messages)
        self.trip_row = limit.levels.index(LEVEL_TRIP) if LEVEL_TRIP in limit.levels else None
        # trip condition present per channel: not back inside by the hysteresis (unknown: yes)
        self.present = np.ones(self.n_channels, dtype=bool)
        # the value below which (high limits; above: low ones) every level is released and
        # none is violated; None where the shortcut does not apply (flags, a time-current
        # curve, a level without a finite threshold)
        self._band: float | None = None
        if isinstance(limit, ThresholdLimit) and not isinstance(limit, TimeCurrentLimit):
            thresholds = limit.thresholds
            margin = max(float(limit.hysteresis), 0.0)
            if np.isfinite(thresholds).all() and math.isfinite(margin):
                self._band = (float(thresholds.min()) - margin if limit.high
                              else float(thresholds.max()) + margin)
        restored = np.zeros(self.n_channels, dtype=bool)
        for _, channel in self._latched():
            restored[channel] = True
        if restored.any():
            self.monitor.hold(self._row, restored)

    @property
    def _row(self) -> int:
        """The trip level's row: asked only for a limit with latched trips (owns() needs one)."""
        if self.trip_row is None:
            raise ValueError(f'{self.limit.limit_id} has no trip level')
        return self.trip_row

    # ------------------------------------------------------------------ checks

    def update(self, signal: Signal, now_s: float) -> list[Event]:
        """Advance with one signal (see signals.py) to ``now_s``; return the events raised."""
        if self._quiet_update(signal):
            return []
        limit = self.limit
        curve_tripped = None
        gated = None      # per (level row, channel): released by the gate, not by the value
        if isinstance(limit, FlagLimit):
            values, violated, cleared, known = signal
            values = np.atleast_1d(np.asarray(values, dtype=float))
            value_cleared, value_known = cleared, known
        else:
            raw, gate = signal
            values = np.atleast_1d(np.asarray(raw, dtype=float))
            violated, cleared, known = threshold_masks(values, limit.thresholds,
                                                       limit.hysteresis, limit.high, gate)
            # a trip's condition is judged on the value alone: charge over-temperature is
            # still present at 46 degC after charging stopped
            value_cleared, value_known = (cleared, known) if gate is None else threshold_masks(
                values, limit.thresholds, limit.hysteresis, limit.high)[1:]
            if gate is not None:
                # a level the gate released while its value is still beyond: say why it cleared
                gated = ~np.asarray(value_cleared, dtype=bool)   # read per (row, channel) below
            if self.integrator is not None:
                curve_tripped = self.integrator.update(float(values[0]), now_s) >= 1.0
                violated, cleared = violated.copy(), cleared.copy()
                violated[2] |= curve_tripped
                cleared[2] = (~curve_tripped & np.isfinite(values)
                              & (values < self.integrator.limit.curve_current_a[0]
                                 - limit.hysteresis))
                value_cleared = cleared
        self.values = values
        row = self.trip_row
        if row is not None:
            # the trip level releases on the value alone, whatever the gate says
            cleared = _writable(cleared, violated.shape)
            known = _writable(known, violated.shape)
            cleared[row] = value_cleared[row]
            known[row] = value_known[row]
            self.present = ~np.asarray(value_cleared[row])
        raised, released = self.monitor.update(violated, cleared, known, now_s)
        if row is not None:
            back = np.zeros(self.n_channels, dtype=bool)
            for _, channel in self._latched():
                back[channel] = self.present[channel] and bool(known[row, channel])
            if back.any():
                self.monitor.hold(row, back)
        events: list[Event] = []
        for level_row, channel in zip(*np.nonzero(raised | released)):
            events += self._level_event(level_row, channel, bool(raised[level_row, channel]),
                                        curve_tripped, now_s,
                                        gated is not None
                                        and bool(np.broadcast_to(gated, violated.shape)
                                                 [level_row, channel]))
        return events

    def _quiet_update(self, signal: Signal) -> bool:
        """update() in the common case where it cannot change anything: True if it did.

        That is: no level raised or pending (a quiet monitor), no latched trip and no
        time-current integrator on this limit, and every value known and inside the release
        band of every level (a flag: none violated, all cleared), so nothing is violated,
        gate or not, and the trip condition is gone. Then update() would only store the
        values: this does that without the masks (issue 18: 21 limits x 10 measurements/s
        were most of protection's CPU at rest).
        """
        if not self.monitor.is_quiet:
            return False
        if isinstance(self.limit, FlagLimit):
            values, violated, cleared, _ = signal
            cleared = np.asarray(cleared, dtype=bool)
            quiet = (cleared.shape == self.monitor.active.shape and bool(cleared.all())
                     and not np.asarray(violated, dtype=bool).any())
            values = np.atleast_1d(np.asarray(values, dtype=float))
        else:
            band = self._band
            if band is None:
                return False
            values = np.atleast_1d(np.asarray(signal[0], dtype=float))
            inside = values < band if self.limit.high else values > band   # NaN: not inside
            quiet = values.shape == (self.n_channels,) and bool(inside.all())
        if not quiet or (self.trip_row is not None and next(self._latched(), None) is not None):
            return False
        self.values = values
        if self.trip_row is not None:
            self.present = np.zeros(self.n_channels, dtype=bool)
        return True

    def _level_event(self, row: int, channel: int, raised: bool, curve_tripped: bool | None,
                     now_s: float, by_gate: bool = False) -> list[Event]:
        limit = self.limit
        level = limit.levels[row]
        index = index_of(limit.limit_id, channel)
        value = float(self.values[channel]) if channel < len(self.values) else math.nan
        threshold = threshold_of(limit, row)
        if not raised:
            if level == LEVEL_TRIP:
                return []   # a latched trip clears only by reset
            return [Event(limit.limit_id, level, index, value, threshold, limit.unit, False,
                          False, clear_text(limit, row, index, value, by_gate), now_s)]
        if level != LEVEL_TRIP:
            return [Event(limit.limit_id, level, index, value, threshold, limit.unit, True, False,
                          raise_text(limit, row, index, value), now_s)]
        if (limit.limit_id, index) in self.latch:
            return []       # already latched (restored, or raised again): nothing new
        # (a curve trip is one of a TimeCurrentLimit: a ThresholdLimit, with a trip level)
        text = raise_text(limit, row, index, value, bool(curve_tripped)
                          and isinstance(limit, ThresholdLimit) and value < limit.trip)
        self.latch.add(LatchedTrip(limit.limit_id, index, value, threshold, limit.unit, text,
                                   time.time()))
        log.warning('TRIP latched: %s', text)
        return [Event(limit.limit_id, level, index, value, threshold, limit.unit, True, True,
                      text, now_s)]

    # ------------------------------------------------------------------ latched trips

    def owns(self, trip: LatchedTrip) -> bool:
        """True if ``trip`` is a trip of this limit on one of its channels."""
        if trip.limit_id != self.limit.limit_id or self.trip_row is None:
            return False
        channel = channel_of(trip.limit_id, trip.index)
        return channel is not None and 0 <= channel < self.n_channels

    def _latched(self) -> Iterator[tuple[LatchedTrip, int]]:
        """(trip, channel) of every latched trip of this limit."""
        for trip in list(self.latch.trips.values()):
            if self.owns(trip):
                yield trip, self._channel(trip)

    @staticmethod
    def _channel(trip: LatchedTrip) -> int:
        """The channel of ``trip``, a trip of this limit (so the catalogue knows its id)."""
        channel = channel_of(trip.limit_id, trip.index)
        assert channel is not None, trip.limit_id
        return channel

    def track(self, now_s: float) -> None:
        """Note, per latched trip, since when its condition is gone (trip level released)."""
        row = self.trip_row
        for trip, channel in self._latched():
            gone = not self.monitor.active[row, channel] and not self.present[channel]
            if not gone:
                trip.clear_since_s = None
            elif trip.clear_since_s is None:
                trip.clear_since_s = now_s

    def reset_blocker(self, trip: LatchedTrip, now_s: float) -> str:
        """Why ``trip`` (of this limit) cannot be reset now ('' = it can)."""
        channel = self._channel(trip)
        if trip.clear_since_s is None:
            release_s = self.limit.release_s
            if self.monitor.active[self._row, channel] and not self.present[channel]:
                started = self.monitor.release_started_s(self._row, channel)
                # (a start "in the future", the clock went back, counts as now)
                left = (release_s - max(now_s - started, 0.0) if math.isfinite(started)
                        else release_s)
                if left <= 0.0:   # only a measurement advances the debounce, never a reset
                    return f'release of {release_s:g} s due at the next measurement'
                return f'release running: {left:.1f} s of {release_s:g} s left'
            value = float(self.values[channel])
            return f'condition still present: {fmt(value, trip.unit)} {trip.unit}'.rstrip()
        cooldown = self.limit.reset_cooldown_s
        left = cooldown - (now_s - trip.clear_since_s)
        if left > 0:
            return f'cool-down running: {left:.1f} s of {cooldown:.0f} s left'
        return ''

    def clear(self, trip: LatchedTrip) -> None:
        """Reset ``trip``: unlatch it and drop its trip level and timers (debounce from zero)."""
        self.latch.remove(trip.key)
        self.monitor.force_clear(self._row, self._channel(trip))

    # ------------------------------------------------------------------ status

    def active_events(self, now_s: float) -> list[Event]:
        """The highest raised level per channel, except latched trips (reported by the latch)."""
        if self.monitor.is_quiet:
            return []
        limit = self.limit
        active = self.monitor.active
        events: list[Event] = []
        for channel in np.flatnonzero(active.any(axis=0)):
            row = int(np.flatnonzero(active[:, channel])[-1])
            level = int(limit.levels[row])
            index = index_of(limit.limit_id, int(channel))
            if level == LEVEL_TRIP and (limit.limit_id, index) in self.latch:
                continue
            value = float(self.values[channel])
            events.append(Event(limit.limit_id, level, index, value, threshold_of(limit, row),
                                limit.unit, True, False, raise_text(limit, row, index, value),
                                now_s))
        return events


def _writable(mask: Any, shape: tuple[int, ...]) -> NDArray[np.bool_]:
    """A writable copy of the boolean ``mask`` broadcast to ``shape``."""
    out = np.empty(shape, dtype=bool)
    out[...] = mask
    return out
