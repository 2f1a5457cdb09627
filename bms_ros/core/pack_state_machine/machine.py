"""Pack state machine and contactor sequencing (the core of the pack supervisor node).

States as foxBMS 2's ``bms`` module: OFF -> STANDBY -> PRECHARGE -> DRIVE / CHARGE, and ERROR on
a latched trip or a contactor fault. The machine owns the contactor command; it closes the
contactors only through a supervised pre-charge, opens them at once on a safety trip, and
delays a requested opening while the current is above the contactors' break rating.

Contactor feedback is closed, open or unknown (``contactors_stale``: a stale bool decodes as
False, so unknown is never read as open): unknown blocks every DRIVE/CHARGE request and the
ERROR exit, keeps contactor faults, and in PRECHARGE/DRIVE/CHARGE ends in ERROR, all open, once
it has lasted ``contactor_feedback_timeout_s``.

Every method takes the time ``now_s`` (seconds, monotonic) explicitly, so every transition and
guard is unit-testable without sleeping. Transition table: docs/protection.md.

The pre-charge sequence (precharge.py), the feedback supervision (feedback.py) and the request
guards (guards.py) are mixins of this class, one module each; this module keeps the inputs,
requests and transitions together (about 400 lines) because each transition reads them all.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable

from ..measurement import Measurement
from ..protection.events import Event
from ..protection.limits import LEVEL_TRIP
from .config import SupervisorConfig
from .feedback import ContactorFeedback
from .guards import RequestGuards
from .precharge import PHASE_NEGATIVE, PrechargeSequence
from .states import (
    CONTACTOR_FAULT_IDS,
    FEEDBACK_CLOSED,
    FEEDBACK_UNKNOWN,
    REQUESTABLE,
    STATE_CHARGE,
    STATE_DRIVE,
    STATE_ERROR,
    STATE_NAMES,
    STATE_OFF,
    STATE_PRECHARGE,
    STATE_STANDBY,
    ContactorCommand,
)

log = logging.getLogger(__name__)


class PackStateMachine(PrechargeSequence, ContactorFeedback, RequestGuards):
    """The pack state machine; feed it inputs, read ``state``, ``command`` and ``reason``."""

    def __init__(self, config: SupervisorConfig, now_s: float = 0.0) -> None:
        self.config = config
        self.state = STATE_OFF
        self.requested_state = STATE_STANDBY
        self.reason = 'starting: waiting for a measurement and the protection status'
        self.command = ContactorCommand(reason='start-up: all open')
        self._events: list[Event] = []
        # latest inputs and when they arrived (None = never)
        self._measurement: Measurement | None = None
        self._measurement_s: float | None = None
        self._status_s: float | None = None
        self._trip_latched = False
        self._latched_names: list[str] = []
        self._charge_limit_a = math.inf
        self._discharge_limit_a = math.inf
        self._soc: float | None = None
        self._soc_s: float | None = None
        # pre-charge
        self._target: int | None = None
        self._phase: str | None = None
        self._phase_since_s = math.nan          # set with the phase
        self._precharge_started_s = math.nan    # set with the request
        self._precharge_time_s = math.nan       # set when the link reaches its target
        self._link_start_fraction = math.nan
        self._precharge_failed_s: float | None = None
        self._precharge_failure = ''
        # a requested opening waiting for the current to fall below the break rating
        self._open_pending_since_s: float | None = None
        self._open_reason = ''
        # contactor feedback supervision
        self._mismatch_since_s: list[float | None] = [None, None, None]
        self._faults: dict[int, Event] = {}   # contactor index -> Event raised
        # arrival of the last measurement with known feedback
        self._feedback_known_s: float | None = None
        self._unknown_since_s: float | None = None     # feedback unknown since (None: known)
        # DRIVE/CHARGE riding through a stale estimate: the reason says so
        self._estimate_marked = False
        # trip name (limit_id or limit_id[index]) -> message of its latest trip event, and
        # whether ERROR was entered from a status (then the next trip event's message replaces
        # the reason: it is the fresher, fuller account)
        self._trip_messages: dict[str, str] = {}
        self._reason_from_status = False
        self._safety_note = ''

    # ------------------------------------------------------------------ inputs

    def on_measurement(self, measurement: Measurement, now_s: float) -> None:
        """A PackMeasurement (core Measurement with contactor feedback and link voltage)."""
        self._measurement = measurement
        self._measurement_s = now_s
        if measurement.contactors_stale:
            if self._unknown_since_s is None:
                # unknown since the last value we knew (or now, if never known)
                self._unknown_since_s = (now_s if self._feedback_known_s is None
                                         else self._feedback_known_s)
        else:
            self._unknown_since_s = None
            self._feedback_known_s = now_s
        self.step(now_s)

    def on_protection_status(self, trip_latched: bool, latched_names: Iterable[str],
                             charge_current_limit_a: float, discharge_current_limit_a: float,
                             now_s: float) -> None:
        """The protection's status: latched trips (names) and derated current limits (A)."""
        self._status_s = now_s
        self._trip_latched = bool(trip_latched)
        self._latched_names = list(latched_names)
        self._charge_limit_a = charge_current_limit_a
        self._discharge_limit_a = discharge_current_limit_a
        if trip_latched and self.state != STATE_ERROR:
            # the status names the trips; their messages come with the trip events
            self._safety_open(self._status_trip_reason(), now_s)
            self._reason_from_status = True
        self.step(now_s)

    def on_trip_event(self, limit_id: str, level: int, active: bool, latched: bool, message: str,
                      now_s: float, index: int = -1, history: bool = False) -> None:
        """A ProtectionEvent: a raised, latched trip opens the contactors at once.

        ``history`` marks an event from before this machine started (transient-local): it only
        lends its message to the reason; the protection status says whether it is still latched.
        """
        if limit_id in CONTACTOR_FAULT_IDS:
            return  # our own report coming back
        if not (level == LEVEL_TRIP and active and latched):
            return
        name = limit_id if index < 0 else f'{limit_id}[{index}]'
        self._trip_messages[name] = message or name
        if history:
            if self.state == STATE_ERROR and self._reason_from_status and \
                    name in self._latched_names:
                self.reason = self._status_trip_reason() + self._safety_note   # its words
            return
        why = f'safety trip: {self._trip_messages[name]}'
        self._trip_latched = True
        if name not in self._latched_names:
            self._latched_names.append(name)
        if self.state == STATE_ERROR and self._reason_from_status:
            # the status beat this event here (two topics): the event's own words say more
            self._reason_from_status = False
            self.reason = why + self._safety_note
        self._safety_open(why, now_s)

    def _status_trip_reason(self) -> str:
        causes = [self._trip_messages.get(name, name) for name in self._latched_names]
        return f'safety trip: {"; ".join(causes) or "latched"}'

    def on_estimate(self, pack_soc: float, now_s: float) -> None:
        """Pack SoC (0..1) from the state estimator."""
        if math.isfinite(pack_soc):
            self._soc = float(pack_soc)
            self._soc_s = now_s

    def pop_events(self) -> list[Event]:
        """Contactor-fault events (raised or cleared) since the last call."""
        events, self._events = self._events, []
        return events

    # ------------------------------------------------------------------ requests

    def request(self, state: int, requester: str, now_s: float) -> tuple[bool, str]:
        """Handle a vehicle request; return (accepted, reason). The reason is always filled."""
        self.step(now_s)
        who = requester or 'anonymous'
        if state not in REQUESTABLE:
            return self._refuse(f'state {STATE_NAMES.get(state, state)} cannot be requested '
                                f'(STANDBY, DRIVE or CHARGE)')
        name = STATE_NAMES[state]
        if self.state == STATE_OFF:
            return self._refuse(f'not ready: {self.reason}')
        if state == STATE_STANDBY:
            return self._request_standby(who, now_s)
        if self.state == STATE_ERROR:
            return self._refuse(f'in ERROR ({self.reason}); reset trips and request STANDBY '
                                f'first')
        if self._open_pending_since_s is not None:
            return self._refuse(f'opening for STANDBY in progress ({self.reason})')
        if self.state == state or (self.state == STATE_PRECHARGE and self._target == state):
            unknown = self._unknown_blocker(now_s)
            if unknown:
                return self._refuse(unknown)   # not 'already in DRIVE': that is not known
            self.requested_state = state
            return True, f'already {"in" if self.state == state else "pre-charging for"} {name}'
        blocker = self._guard(state, now_s)
        if blocker:
            return self._refuse(blocker)
        self.requested_state = state
        if self.state in (STATE_DRIVE, STATE_CHARGE):
            self._enter(state, f'{name} requested by {who} (contactors stay closed)')
            return True, self.reason
        if self.state == STATE_PRECHARGE:
            self._target = state
            self.reason = f'pre-charge for {name} requested by {who}'
            return True, self.reason
        # STANDBY: start the pre-charge sequence with the negative contactor
        self._target = state
        self._precharge_started_s = now_s
        self._set_phase(PHASE_NEGATIVE, now_s)
        self._command(True, False, False, 'pre-charge: close negative')
        self._enter(STATE_PRECHARGE, f'pre-charge for {name} requested by {who}')
        self.step(now_s)
        return True, self.reason

    def _request_standby(self, who: str, now_s: float) -> tuple[bool, str]:
        self.requested_state = STATE_STANDBY
        if self.state == STATE_STANDBY:
            return True, 'already in STANDBY'
        if self.state == STATE_ERROR:
            blocker = self._error_exit_blocker(now_s)
            if blocker:
                return self._refuse(blocker)
            for index in list(self._faults):
                self._clear_fault(index, now_s, f'cleared by {who}: feedback agrees again')
            self._enter(STATE_STANDBY, f'STANDBY requested by {who}: trips reset, '
                                       f'contactors open')
            return True, self.reason
        if self.state == STATE_PRECHARGE:
            self._open_all(f'pre-charge cancelled by {who}')
            self._enter(STATE_STANDBY, f'STANDBY requested by {who} during pre-charge')
            return True, self.reason
        # DRIVE or CHARGE: open, unless the current is above the break rating
        self._open_reason = f'STANDBY requested by {who}'
        self._open_pending_since_s = now_s
        self.step(now_s)
        return True, self.reason

    def _refuse(self, why: str) -> tuple[bool, str]:
        text = f'refused: {why}'
        log.info('request %s', text)
        return False, text

    # ------------------------------------------------------------------ time

    def step(self, now_s: float) -> None:
        """Advance timers and sequences to ``now_s`` (call on every input and periodically)."""
        cfg = self.config
        self._supervise_feedback(now_s)
        if self.state == STATE_ERROR:
            return
        closed_states = (STATE_PRECHARGE, STATE_DRIVE, STATE_CHARGE)
        if self.state in closed_states:
            if self._status_s is not None and now_s - self._status_s > cfg.protection_timeout_s:
                self._error_open(f'protection status lost ({now_s - self._status_s:.1f} s old)')
                return
            if self._measurement_s is not None and \
                    now_s - self._measurement_s > cfg.measurement_timeout_s:
                self._error_open(f'measurement lost ({now_s - self._measurement_s:.1f} s old)')
                return
            unknown_s = self.feedback_unknown_s(now_s)
            if unknown_s is not None and unknown_s > cfg.contactor_feedback_timeout_s:
                self._error_open(f'contactor feedback unknown (stale for {unknown_s:.2f} s > '
                                 f'{cfg.contactor_feedback_timeout_s:.2f} s): unknown is not '
                                 f'open, all contactors opened')
                return
        if self.state == STATE_OFF:
            self._leave_off(now_s)
        elif self.state == STATE_PRECHARGE:
            self._precharge_step(now_s)
        elif self.state in (STATE_DRIVE, STATE_CHARGE) and self._open_pending_since_s is not None:
            self._opening_step(now_s, self._open_pending_since_s)
        elif self.state in (STATE_DRIVE, STATE_CHARGE):
            self._mark_estimate(now_s)

    def _mark_estimate(self, now_s: float) -> None:
        """Ride through a lost estimate in DRIVE/CHARGE, but say so in the reason."""
        age_s = self.estimate_age_s(now_s)
        stale = age_s is not None and age_s > self.config.estimate_timeout_s
        name = STATE_NAMES[self.state]
        if stale and not self._estimate_marked:
            self._estimate_marked = True
            refused = ('new DRIVE/CHARGE requests refused' if self.config.require_estimate
                       else 'requests still allowed (require_estimate false)')
            self.reason = (f'{name} riding through: estimate stale ({age_s:.1f} s old > '
                           f'{self.config.estimate_timeout_s:.1f} s); voltage, current and '
                           f'temperature limits are still checked by protection on '
                           f'measurements; {refused}')
            log.warning('%s', self.reason)
        elif not stale and self._estimate_marked:
            self._estimate_marked = False
            self.reason = f'{name}: estimate fresh again'
            log.info('%s', self.reason)

    def _leave_off(self, now_s: float) -> None:
        if self._measurement_s is None or self._status_s is None:
            return
        feedback = self._feedback()
        if FEEDBACK_UNKNOWN in feedback:
            self.reason = ('starting: contactor feedback unknown (stale): waiting for known-open '
                           'feedback')
            return
        if FEEDBACK_CLOSED in feedback:
            return  # feedback supervision turns a closed contactor into a fault
        self._enter(STATE_STANDBY, 'ready: measurement and protection status received, '
                                   'contactors open')

    def _opening_step(self, now_s: float, pending_since_s: float) -> None:
        cfg = self.config
        current = self._current_a()
        waited = now_s - pending_since_s
        if abs(current) <= cfg.break_current_max_a:
            self._open_all(f'{self._open_reason}')
            self._enter(STATE_STANDBY, f'{self._open_reason}: contactors opened at '
                                       f'{current:.1f} A')
        elif waited >= cfg.open_delay_max_s:
            self._open_all(f'{self._open_reason} (forced)')
            self._enter(STATE_STANDBY,
                        f'{self._open_reason}: opened at {current:.1f} A, above the '
                        f'{cfg.break_current_max_a:.0f} A break rating, after waiting '
                        f'{waited:.1f} s')
            log.warning('contactors opened above their break rating: %s', self.reason)
        else:
            shown = 'unknown' if not math.isfinite(current) else f'{abs(current):.1f} A'
            self.reason = (f'{self._open_reason}: waiting for |I| {shown} <= '
                           f'{cfg.break_current_max_a:.0f} A before opening '
                           f'({cfg.open_delay_max_s - waited:.1f} s left)')

    def estimate_age_s(self, now_s: float) -> float | None:
        """Age of the last SoC estimate (s); None if none received."""
        return None if self._soc_s is None else now_s - self._soc_s

    def warnings(self, now_s: float) -> list[str]:
        """Degraded inputs to report on /diagnostics (WARN), e.g. 'estimate stale (6.0 s old)'."""
        found = []
        unknown_s = self.feedback_unknown_s(now_s)
        if unknown_s is not None:
            found.append(f'contactor feedback unknown (stale for {unknown_s:.1f} s)')
        age_s = self.estimate_age_s(now_s)
        if age_s is not None and age_s > self.config.estimate_timeout_s:
            found.append(f'estimate stale ({age_s:.1f} s old)')
        elif age_s is None and self.config.require_estimate:
            found.append('no estimate yet')
        return found

    def _current_a(self) -> float:
        m = self._measurement
        if m is None or getattr(m, 'current_stale', False):
            return math.nan
        return float(m.pack_current_a)

    # ------------------------------------------------------------------ actions

    def _safety_open(self, why: str, now_s: float) -> None:
        """A safety trip: open everything now, whatever the current, and go to ERROR."""
        if self.state == STATE_ERROR:
            return
        current = self._current_a()
        note = ''
        if math.isfinite(current) and abs(current) > self.config.break_current_max_a:
            note = f' (opened at {current:.1f} A, above the break rating: safety first)'
        self._safety_note = note
        self._error_open(why + note)

    def _error_open(self, why: str) -> None:
        self._open_all(why)
        self._phase = None
        self._target = None
        self._enter(STATE_ERROR, why)

    def _open_all(self, why: str) -> None:
        self._open_pending_since_s = None
        self._command(False, False, False, why)

    def _command(self, negative: bool, precharge: bool, positive: bool, reason: str) -> None:
        new = (negative, precharge, positive)
        if new != self.command.as_tuple():
            # a new command restarts the feedback timers of the contactors it changed
            for index, (old, now) in enumerate(zip(self.command.as_tuple(), new)):
                if old != now:
                    self._mismatch_since_s[index] = None
        self.command = ContactorCommand(negative, precharge, positive, reason)

    def _set_phase(self, phase: str, now_s: float) -> None:
        self._phase = phase
        self._phase_since_s = now_s

    def _enter(self, state: int, reason: str) -> None:
        if state != self.state:
            log.info('%s -> %s: %s', STATE_NAMES[self.state], STATE_NAMES[state], reason)
        self._reason_from_status = False
        self._estimate_marked = False
        self.state = state
        self.reason = reason

    @property
    def state_name(self) -> str:
        """The present state's name (STATE_NAMES)."""
        return STATE_NAMES[self.state]
