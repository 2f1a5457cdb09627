"""Trip ordering for the pack supervisor: is a trip event history, is a status outdated?

The protection node publishes ``trip_event`` (transient-local, depth 100) and
``protection_status`` (transient-local, depth 1) on two topics, so they may arrive in either
order, and a starting supervisor receives old events again. Every decision here compares two
stamps taken by the protection node (its clock) with each other, never the supervisor's clock
with another node's: a clock offset between machines, a simulated clock or a jump cannot turn a
live trip into history. Rules (docs/protection.md, "Trip ordering"):

- the *baseline* is the stamp of the first status received;
- a raised, latched trip event is *live* if its stamp >= the baseline, else *history* (it only
  lends its message: the status says whether it is still latched); an event arriving before
  the first status is *pending* and classified when that status arrives;
- a not-latched status whose stamp <= the stamp of the last live trip event is ignored (it was
  published before that trip and would unlatch it);
- a status stamp older than the previous status stamp means the protection's clock went back
  (one publisher delivers in order): the baseline restarts at that status and the last live trip
  stamp is forgotten, so later statuses on the new time line are not ignored forever.

Stamps are seconds (float) on the protection's clock.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

LIVE = 'live'
HISTORY = 'history'
PENDING = 'pending'


@dataclass
class StatusVerdict:
    """What to do with a status: apply it or not, and the pending events now found live."""

    accepted: bool
    released: list[Any] = field(default_factory=list)   # payloads of pending events now live


class TripOrdering:
    """Classifies trip events and statuses on the protection's own stamps (s)."""

    def __init__(self, pending_max: int = 200) -> None:
        self.pending_max = pending_max
        self.baseline_s: float | None = None     # stamp of the first status (protection's clock)
        self.last_status_s: float | None = None  # stamp of the last status received
        self.last_live_trip_s: float | None = None   # stamp of the last live trip event
        self.statuses_ignored = 0       # not-latched statuses older than a live trip
        self.clock_restarts = 0         # status stamps that went back
        self._pending: list[tuple[float, Any]] = []   # (stamp_s, payload) before the first status

    def on_trip(self, stamp_s: float, payload: Any = None) -> str:
        """A raised, latched trip event stamped ``stamp_s``: LIVE, HISTORY or PENDING."""
        if self.baseline_s is None:
            if len(self._pending) >= self.pending_max:
                self._pending.pop(0)      # the transient-local depth bounds this anyway
            self._pending.append((stamp_s, payload))
            return PENDING
        if stamp_s >= self.baseline_s:
            self._live(stamp_s)
            return LIVE
        return HISTORY

    def on_status(self, stamp_s: float, trip_latched: bool) -> StatusVerdict:
        """A protection status stamped ``stamp_s``; returns a StatusVerdict."""
        released: list[Any] = []
        if self.last_status_s is not None and stamp_s < self.last_status_s:
            log.warning('protection status stamp went back by %.3f s: trip ordering restarts',
                        self.last_status_s - stamp_s)
            self.clock_restarts += 1
            self.baseline_s = stamp_s
            self.last_live_trip_s = None
        if self.baseline_s is None:
            self.baseline_s = stamp_s
            for event_s, payload in self._pending:
                if event_s >= stamp_s:
                    self._live(event_s)
                    released.append(payload)
            self._pending = []
        self.last_status_s = stamp_s
        if not trip_latched and self.last_live_trip_s is not None and \
                stamp_s <= self.last_live_trip_s:
            self.statuses_ignored += 1
            return StatusVerdict(False, released)
        return StatusVerdict(True, released)

    def _live(self, stamp_s: float) -> None:
        if self.last_live_trip_s is None or stamp_s > self.last_live_trip_s:
            self.last_live_trip_s = stamp_s
