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
"""
import logging
import math
from dataclasses import dataclass

import numpy as np

from .config import Section
from .protection.checks import Event
from .protection.limits import LEVEL_TRIP

log = logging.getLogger(__name__)

STATE_OFF = 0
STATE_STANDBY = 1
STATE_PRECHARGE = 2
STATE_DRIVE = 3
STATE_CHARGE = 4
STATE_ERROR = 5
STATE_NAMES = {STATE_OFF: 'OFF', STATE_STANDBY: 'STANDBY', STATE_PRECHARGE: 'PRECHARGE',
               STATE_DRIVE: 'DRIVE', STATE_CHARGE: 'CHARGE', STATE_ERROR: 'ERROR'}
REQUESTABLE = (STATE_STANDBY, STATE_DRIVE, STATE_CHARGE)

# Contactors in command order (ContactorCommand: negative, precharge, positive). A contactor
# fault reported on trip_event carries FAULT_INDEX, the PackMeasurement feedback order used by
# the simulator's fault injection too: 0 negative, 1 positive, 2 precharge.
CONTACTORS = ('negative', 'precharge', 'positive')
FAULT_INDEX = {'negative': 0, 'positive': 1, 'precharge': 2}
CONTACTOR_WELDED = 'contactor_welded'
CONTACTOR_STUCK_OPEN = 'contactor_stuck_open'
CONTACTOR_FAULT_IDS = (CONTACTOR_WELDED, CONTACTOR_STUCK_OPEN)

# Pre-charge phases: which contactor the sequence waits on.
PHASE_NEGATIVE = 'close negative'
PHASE_PRECHARGE = 'pre-charge'
PHASE_POSITIVE = 'close positive'
PHASE_RELEASE = 'open pre-charge'

# Contactor feedback: closed, open, or unknown (stale or no measurement). Strings on purpose:
# every use compares explicitly, so unknown can never pass for open (a falsy value could).
FEEDBACK_CLOSED = 'closed'
FEEDBACK_OPEN = 'open'
FEEDBACK_UNKNOWN = 'unknown'

# the phases that wait on one contactor's feedback: (command index, feedback awaited); each has
# precharge_phase_timeout_s (the rise, PHASE_PRECHARGE, has precharge_timeout_s)
PHASE_WAITS = {PHASE_NEGATIVE: (0, FEEDBACK_CLOSED), PHASE_POSITIVE: (2, FEEDBACK_CLOSED),
               PHASE_RELEASE: (1, FEEDBACK_OPEN)}


@dataclass(frozen=True)
class SupervisorConfig:
    """The ``supervisor:`` section of a profile."""

    contactor_feedback_timeout_s: float
    precharge_target_fraction: float
    precharge_timeout_s: float
    precharge_phase_timeout_s: float
    precharge_min_time_s: float
    precharge_retry_delay_s: float
    break_current_max_a: float
    open_delay_max_s: float
    drive_soc_min: float
    charge_soc_max: float
    drive_temperature_min_degc: float
    drive_temperature_max_degc: float
    charge_temperature_min_degc: float
    charge_temperature_max_degc: float
    require_estimate: bool
    measurement_timeout_s: float
    protection_timeout_s: float
    estimate_timeout_s: float
    state_period_s: float
    command_period_s: float


def load_supervisor_config(section: Section):
    """Validate a profile's ``supervisor:`` section; ConfigError names the file and field."""
    names = SupervisorConfig.__dataclass_fields__
    section.reject_unknown(names)
    positive = {name: section.number(name, exclusive_minimum=0.0) for name in (
        'contactor_feedback_timeout_s', 'precharge_timeout_s', 'precharge_phase_timeout_s',
        'precharge_retry_delay_s', 'break_current_max_a', 'measurement_timeout_s',
        'protection_timeout_s', 'estimate_timeout_s', 'state_period_s', 'command_period_s')}
    values = dict(
        positive,
        precharge_target_fraction=section.number('precharge_target_fraction',
                                                 exclusive_minimum=0.0, maximum=1.0),
        precharge_min_time_s=section.number('precharge_min_time_s', minimum=0.0),
        open_delay_max_s=section.number('open_delay_max_s', minimum=0.0),
        drive_soc_min=section.number('drive_soc_min', minimum=0.0, maximum=1.0),
        charge_soc_max=section.number('charge_soc_max', minimum=0.0, maximum=1.0),
        require_estimate=section.boolean('require_estimate'))
    for mode in ('drive', 'charge'):
        low = section.number(f'{mode}_temperature_min_degc')
        high = section.number(f'{mode}_temperature_max_degc')
        if low >= high:
            raise section.error(f'{mode}_temperature_min_degc',
                                f'must be below {mode}_temperature_max_degc ({high}), got {low}')
        values[f'{mode}_temperature_min_degc'] = low
        values[f'{mode}_temperature_max_degc'] = high
    if values['precharge_min_time_s'] >= values['precharge_timeout_s']:
        raise section.error('precharge_min_time_s',
                            f'must be below precharge_timeout_s ({values["precharge_timeout_s"]}),'
                            f' got {values["precharge_min_time_s"]}')
    if values['precharge_phase_timeout_s'] <= values['contactor_feedback_timeout_s']:
        # a stuck or unknown contactor must be reported as such (ERROR, a latched fault), not
        # as a pre-charge phase timeout (STANDBY, retry)
        raise section.error('precharge_phase_timeout_s',
                            f'must exceed contactor_feedback_timeout_s '
                            f'({values["contactor_feedback_timeout_s"]}), '
                            f'got {values["precharge_phase_timeout_s"]}')
    return SupervisorConfig(**values)


@dataclass(frozen=True)
class ContactorCommand:
    """Commanded contactor states (True = closed), as bms_interfaces/ContactorCommand."""

    negative_closed: bool = False
    precharge_closed: bool = False
    positive_closed: bool = False
    reason: str = ''

    def as_tuple(self):
        return (self.negative_closed, self.precharge_closed, self.positive_closed)


OPEN = (False, False, False)


def _pct(fraction):
    return f'{100.0 * fraction:.1f} %'


class PackStateMachine:
    """The pack state machine; feed it inputs, read ``state``, ``command`` and ``reason``."""

    def __init__(self, config, now_s=0.0):
        self.config = config
        self.state = STATE_OFF
        self.requested_state = STATE_STANDBY
        self.reason = 'starting: waiting for a measurement and the protection status'
        self.command = ContactorCommand(reason='start-up: all open')
        self._events = []
        # latest inputs and when they arrived (None = never)
        self._measurement = None
        self._measurement_s = None
        self._status_s = None
        self._trip_latched = False
        self._latched_names = []
        self._charge_limit_a = math.inf
        self._discharge_limit_a = math.inf
        self._soc = None
        self._soc_s = None
        # pre-charge
        self._target = None
        self._phase = None
        self._phase_since_s = None
        self._precharge_started_s = None
        self._precharge_time_s = None
        self._link_start_fraction = math.nan
        self._precharge_failed_s = None
        self._precharge_failure = ''
        # a requested opening waiting for the current to fall below the break rating
        self._open_pending_since_s = None
        self._open_reason = ''
        # contactor feedback supervision
        self._mismatch_since_s = [None, None, None]
        self._faults = {}   # contactor index -> Event raised
        self._feedback_known_s = None    # arrival of the last measurement with known feedback
        self._unknown_since_s = None     # feedback unknown since (None: known)
        # DRIVE/CHARGE riding through a stale estimate: the reason says so
        self._estimate_marked = False
        # trip name (limit_id or limit_id[index]) -> message of its latest trip event, and
        # whether ERROR was entered from a status (then the next trip event's message replaces
        # the reason: it is the fresher, fuller account)
        self._trip_messages = {}
        self._reason_from_status = False
        self._safety_note = ''

    # ------------------------------------------------------------------ inputs

    def on_measurement(self, measurement, now_s):
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

    def on_protection_status(self, trip_latched, latched_names, charge_current_limit_a,
                             discharge_current_limit_a, now_s):
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

    def on_trip_event(self, limit_id, level, active, latched, message, now_s, index=-1,
                      history=False):
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

    def _status_trip_reason(self):
        causes = [self._trip_messages.get(name, name) for name in self._latched_names]
        return f'safety trip: {"; ".join(causes) or "latched"}'

    def on_estimate(self, pack_soc, now_s):
        """Pack SoC (0..1) from the state estimator."""
        if math.isfinite(pack_soc):
            self._soc = float(pack_soc)
            self._soc_s = now_s

    def pop_events(self):
        """Contactor-fault events (raised or cleared) since the last call."""
        events, self._events = self._events, []
        return events

    # ------------------------------------------------------------------ requests

    def request(self, state, requester, now_s):
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

    def _request_standby(self, who, now_s):
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

    def _refuse(self, why):
        text = f'refused: {why}'
        log.info('request %s', text)
        return False, text

    # ------------------------------------------------------------------ guards

    def _guard(self, state, now_s):
        """Why DRIVE or CHARGE may not be entered now ('' = allowed). First failing guard."""
        cfg = self.config
        if self._trip_latched:
            return (f'trip latched ({", ".join(self._latched_names) or "see trip_event"}); '
                    f'reset trips first')
        if self._status_s is None:
            return 'no protection status yet'
        if now_s - self._status_s > cfg.protection_timeout_s:
            return f'protection status stale ({now_s - self._status_s:.1f} s old)'
        if self._measurement_s is None:
            return 'no measurement yet'
        if now_s - self._measurement_s > cfg.measurement_timeout_s:
            return f'measurement stale ({now_s - self._measurement_s:.1f} s old)'
        unknown = self._unknown_blocker(now_s)
        if unknown:
            return unknown
        if self.state == STATE_STANDBY and self._precharge_failed_s is not None:
            left = cfg.precharge_retry_delay_s - (now_s - self._precharge_failed_s)
            if left > 0:
                return (f'pre-charge failed ({self._precharge_failure}); retry in {left:.1f} s')
        soc_known = self._soc_s is not None and now_s - self._soc_s <= cfg.estimate_timeout_s
        if cfg.require_estimate and not soc_known:
            return ('SoC unknown (no estimate yet)' if self._soc_s is None else
                    f'SoC unknown (estimate stale: {now_s - self._soc_s:.1f} s old)')
        if state == STATE_DRIVE:
            if soc_known and self._soc < cfg.drive_soc_min:
                return f'SoC too low: {_pct(self._soc)} < {_pct(cfg.drive_soc_min)}'
            window = (cfg.drive_temperature_min_degc, cfg.drive_temperature_max_degc, 'drive')
            limit, direction = self._discharge_limit_a, 'discharge'
        else:
            if soc_known and self._soc > cfg.charge_soc_max:
                return f'SoC too high: {_pct(self._soc)} > {_pct(cfg.charge_soc_max)}'
            window = (cfg.charge_temperature_min_degc, cfg.charge_temperature_max_degc, 'charge')
            limit, direction = self._charge_limit_a, 'charge'
        blocker = self._temperature_blocker(*window)
        if blocker:
            return blocker
        if not limit > 0.0:
            return f'{direction} current limit is 0 A (protection derating)'
        if self.state == STATE_STANDBY:
            closed = [name for name, fb in zip(CONTACTORS, self._feedback())
                      if fb != FEEDBACK_OPEN]
            if closed:
                return f'contactor feedback not open: {", ".join(closed)}'
        return ''

    def _unknown_blocker(self, now_s):
        """'contactor feedback unknown (...)' while it is, else ''."""
        unknown_s = self.feedback_unknown_s(now_s)
        if unknown_s is None:
            return ''
        return f'contactor feedback unknown (stale for {unknown_s:.2f} s)'

    def _temperature_blocker(self, low, high, mode):
        m = self._measurement
        temps = np.asarray(m.temperatures_degc, dtype=float)
        valid = np.asarray(m.temperature_valid, dtype=bool) & np.isfinite(temps)
        if not valid.any():
            return 'no valid temperature'
        hottest = int(np.argmax(np.where(valid, temps, -np.inf)))
        coldest = int(np.argmin(np.where(valid, temps, np.inf)))
        if temps[hottest] > high:
            return (f'temperature outside the {mode} window: sensor {hottest} at '
                    f'{temps[hottest]:.1f} degC > {high:.1f} degC')
        if temps[coldest] < low:
            return (f'temperature outside the {mode} window: sensor {coldest} at '
                    f'{temps[coldest]:.1f} degC < {low:.1f} degC')
        return ''

    def _error_exit_blocker(self, now_s):
        cfg = self.config
        if self._trip_latched:
            return (f'trip latched ({", ".join(self._latched_names) or "see trip_event"}); '
                    f'reset trips first')
        if self._status_s is None or now_s - self._status_s > cfg.protection_timeout_s:
            return 'no fresh protection status'
        if self._measurement_s is None or now_s - self._measurement_s > cfg.measurement_timeout_s:
            return 'no fresh measurement'
        unknown = self._unknown_blocker(now_s)
        if unknown:
            faults = ', '.join(CONTACTORS[i] for i in sorted(self._faults))
            return unknown + (f'; contactor faults kept: {faults}' if faults else '')
        closed = [name for name, fb in zip(CONTACTORS, self._feedback())
                  if fb == FEEDBACK_CLOSED]
        if closed:
            return f'contactor feedback not open: {", ".join(closed)} (welded?)'
        return ''

    # ------------------------------------------------------------------ time

    def step(self, now_s):
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
            self._opening_step(now_s)
        elif self.state in (STATE_DRIVE, STATE_CHARGE):
            self._mark_estimate(now_s)

    def _mark_estimate(self, now_s):
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

    def _leave_off(self, now_s):
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

    def _precharge_step(self, now_s):
        cfg = self.config
        negative, precharge, positive = (fb == FEEDBACK_CLOSED for fb in self._feedback())
        released = self._feedback()[1] == FEEDBACK_OPEN
        if self._phase == PHASE_NEGATIVE and negative:
            self._set_phase(PHASE_PRECHARGE, now_s)
            self._link_start_fraction = self._link_fraction()
            self._command(True, True, False, 'pre-charge: close pre-charge relay')
        if self._phase == PHASE_PRECHARGE:
            elapsed = now_s - self._phase_since_s
            m = self._measurement
            pack_v = float(m.pack_voltage_v) if m is not None else math.nan
            link_v = float(m.link_voltage_v) if m is not None else math.nan
            fraction = self._link_fraction()
            # a link still charged from the last drive may rise fast: judge only a discharged one
            started_low = not (self._link_start_fraction >= 0.5 * cfg.precharge_target_fraction)
            if precharge and fraction >= cfg.precharge_target_fraction:
                if elapsed < cfg.precharge_min_time_s and started_low:
                    self._abort_precharge(
                        f'rise too fast: {_pct(fraction)} of {pack_v:.1f} V after {elapsed:.3f} s'
                        f' < {cfg.precharge_min_time_s:.3f} s (no DC-link capacitance or a '
                        f'bypassed resistor?)', now_s)
                    return
                self._set_phase(PHASE_POSITIVE, now_s)
                self._precharge_time_s = elapsed
                self._command(True, True, True, 'pre-charge: close positive')
            elif elapsed > cfg.precharge_timeout_s:
                shown = 'unknown' if not math.isfinite(fraction) else _pct(fraction)
                self._abort_precharge(
                    f'rise too slow: link {link_v:.1f} V = {shown} of {pack_v:.1f} V after '
                    f'{elapsed:.2f} s, target {_pct(cfg.precharge_target_fraction)} within '
                    f'{cfg.precharge_timeout_s:.2f} s (shorted load?)', now_s)
                return
        if self._phase == PHASE_POSITIVE and positive:
            self._set_phase(PHASE_RELEASE, now_s)
            self._command(True, False, True, 'pre-charge: open pre-charge relay')
        if self._phase == PHASE_RELEASE and released:
            target = self._target
            took = now_s - self._precharge_started_s
            self._phase = None
            self._target = None
            self._precharge_failed_s = None
            self._command(True, False, True, f'{STATE_NAMES[target]}: main contactors closed')
            self._enter(target, f'pre-charge done in {took:.2f} s '
                                f'(link at target after {self._precharge_time_s:.2f} s)')
            return
        if self._phase in PHASE_WAITS:
            elapsed = now_s - self._phase_since_s
            if elapsed > cfg.precharge_phase_timeout_s:
                index, wanted = PHASE_WAITS[self._phase]
                self._abort_precharge(
                    f'phase {self._phase} timed out after {elapsed:.2f} s > '
                    f'{cfg.precharge_phase_timeout_s:.2f} s ({CONTACTORS[index]} feedback '
                    f'{self._feedback()[index]}, waiting for {wanted})', now_s)

    def _link_fraction(self):
        """DC-link voltage / pack voltage (NaN if unknown)."""
        m = self._measurement
        if m is None:
            return math.nan
        pack_v, link_v = float(m.pack_voltage_v), float(m.link_voltage_v)
        return link_v / pack_v if pack_v > 0.0 and math.isfinite(link_v) else math.nan

    def _abort_precharge(self, why, now_s):
        self._precharge_failed_s = now_s
        self._precharge_failure = why
        self._phase = None
        self._target = None
        self._open_all(f'pre-charge failed: {why}')
        self._enter(STATE_STANDBY, f'pre-charge failed: {why}')
        log.warning('pre-charge failed: %s', why)

    def _opening_step(self, now_s):
        cfg = self.config
        current = self._current_a()
        waited = now_s - self._open_pending_since_s
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

    # ------------------------------------------------------------------ contactor feedback

    def _supervise_feedback(self, now_s):
        """Raise a contactor fault when feedback disagrees with the command for too long."""
        if self._measurement is None or self._measurement.contactors_stale:
            # unknown: faults and timers are kept; the unknown timeout (step) and the guards
            # handle it, the measurement timeout a silent driver
            return
        timeout = self.config.contactor_feedback_timeout_s
        for index, (commanded, feedback) in enumerate(zip(self.command.as_tuple(),
                                                          self._feedback())):
            seen = feedback == FEEDBACK_CLOSED
            if commanded == seen:
                self._mismatch_since_s[index] = None
                continue
            if self._mismatch_since_s[index] is None:
                self._mismatch_since_s[index] = now_s
            lasted = now_s - self._mismatch_since_s[index]
            if lasted > timeout and index not in self._faults:
                limit_id = CONTACTOR_WELDED if seen else CONTACTOR_STUCK_OPEN
                what = ('welded: feedback closed' if seen else 'stuck open: feedback open')
                message = (f'{CONTACTORS[index]} contactor {what} {lasted:.2f} s after the '
                           f'{"close" if commanded else "open"} command (> {timeout:.2f} s)')
                event = Event(limit_id, LEVEL_TRIP, FAULT_INDEX[CONTACTORS[index]], lasted,
                              timeout, 's', True, True, message, now_s)
                self._faults[index] = event
                self._events.append(event)
                log.error('contactor fault: %s', message)
                self._error_open(f'contactor fault: {message}')

    def _clear_fault(self, index, now_s, why):
        raised = self._faults.pop(index)
        self._events.append(Event(raised.limit_id, LEVEL_TRIP, raised.index, 0.0,
                                  raised.threshold, 's', False, False,
                                  f'{CONTACTORS[index]} contactor fault {why}', now_s))

    def _feedback(self):
        """Feedback in command order (negative, precharge, positive): closed, open or unknown."""
        m = self._measurement
        if m is None or m.contactors_stale:
            return (FEEDBACK_UNKNOWN,) * 3
        return tuple(FEEDBACK_CLOSED if bool(closed) else FEEDBACK_OPEN for closed in (
            m.negative_contactor_closed, m.precharge_relay_closed, m.positive_contactor_closed))

    @property
    def feedback(self):
        """Contactor feedback in command order: 'closed', 'open' or 'unknown'."""
        return self._feedback()

    def feedback_unknown_s(self, now_s):
        """How long the contactor feedback has been unknown (s); None while known or before
        the first measurement (then other guards say 'no measurement')."""
        if self._unknown_since_s is None:
            return None
        return max(0.0, now_s - self._unknown_since_s)

    def estimate_age_s(self, now_s):
        """Age of the last SoC estimate (s); None if none received."""
        return None if self._soc_s is None else now_s - self._soc_s

    def warnings(self, now_s):
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

    def _current_a(self):
        m = self._measurement
        if m is None or getattr(m, 'current_stale', False):
            return math.nan
        return float(m.pack_current_a)

    # ------------------------------------------------------------------ actions

    def _safety_open(self, why, now_s):
        """A safety trip: open everything now, whatever the current, and go to ERROR."""
        if self.state == STATE_ERROR:
            return
        current = self._current_a()
        note = ''
        if math.isfinite(current) and abs(current) > self.config.break_current_max_a:
            note = f' (opened at {current:.1f} A, above the break rating: safety first)'
        self._safety_note = note
        self._error_open(why + note)

    def _error_open(self, why):
        self._open_all(why)
        self._phase = None
        self._target = None
        self._enter(STATE_ERROR, why)

    def _open_all(self, why):
        self._open_pending_since_s = None
        self._command(False, False, False, why)

    def _command(self, negative, precharge, positive, reason):
        new = (negative, precharge, positive)
        if new != self.command.as_tuple():
            # a new command restarts the feedback timers of the contactors it changed
            for index, (old, now) in enumerate(zip(self.command.as_tuple(), new)):
                if old != now:
                    self._mismatch_since_s[index] = None
        self.command = ContactorCommand(negative, precharge, positive, reason)

    def _set_phase(self, phase, now_s):
        self._phase = phase
        self._phase_since_s = now_s

    def _enter(self, state, reason):
        if state != self.state:
            log.info('%s -> %s: %s', STATE_NAMES[self.state], STATE_NAMES[state], reason)
        self._reason_from_status = False
        self._estimate_marked = False
        self.state = state
        self.reason = reason

    @property
    def state_name(self):
        return STATE_NAMES[self.state]

    @property
    def phase(self):
        """The pre-charge phase (None outside PRECHARGE)."""
        return self._phase
