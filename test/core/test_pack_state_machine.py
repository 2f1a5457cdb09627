"""Pack state machine: every transition and guard, with exact reasons; pre-charge supervision,
contactor feedback supervision and break-rating delays, all on an explicit clock.
"""
import copy
import math
import os
from dataclasses import replace

import numpy as np
import pytest

from bms_ros.core.config import Section
from bms_ros.core.errors import ConfigError
from bms_ros.core.pack_state_machine import (
    CONTACTOR_STUCK_OPEN,
    CONTACTOR_WELDED,
    PHASE_POSITIVE,
    PHASE_RELEASE,
    STATE_CHARGE,
    STATE_DRIVE,
    STATE_ERROR,
    STATE_OFF,
    STATE_PRECHARGE,
    STATE_STANDBY,
    PackStateMachine,
    load_supervisor_config,
)
from bms_ros.core.profile import Profile, config_dir
from bms_ros.core.protection import LEVEL_TRIP, Measurement

PROFILE = Profile(os.path.join(config_dir(), 'profiles', 'lfp_16s.yaml'))
CFG = load_supervisor_config(PROFILE.section('supervisor'))
PACK_V = 52.8


class Plant:
    """Contactors follow the command after ``delay_s`` unless welded or stuck; the DC link
    charges through the pre-charge resistor (time constant ``tau_s``) or the main contactor.
    """

    def __init__(self, delay_s=0.015, tau_s=0.048, welded=(), stuck_open=(), link_fixed_v=None):
        self.delay_s = delay_s
        self.tau_s = tau_s
        self.welded = set(welded)
        self.stuck_open = set(stuck_open)
        self.link_fixed_v = link_fixed_v
        self.closed = [False, False, False]        # negative, precharge, positive
        self._pending = [None, None, None]
        self.link_v = 0.0
        self.current_a = 0.0
        self.temperatures = np.full(8, 25.0)
        self.contactors_stale = False    # status frames lost: the bools decode as False
        self._last_s = 0.0

    def advance(self, command, now_s):
        dt = now_s - self._last_s
        self._last_s = now_s
        for i, want in enumerate(command.as_tuple()):
            if want == self.closed[i]:
                self._pending[i] = None
                continue
            if self._pending[i] is None:
                self._pending[i] = now_s
            if now_s - self._pending[i] >= self.delay_s:
                if want and i in self.stuck_open or not want and i in self.welded:
                    continue
                self.closed[i] = want
                self._pending[i] = None
        negative, precharge, positive = self.closed
        if self.link_fixed_v is not None:
            self.link_v = self.link_fixed_v
        elif negative and positive:
            self.link_v = PACK_V
        elif negative and precharge:
            self.link_v += (PACK_V - self.link_v) * (1.0 - math.exp(-dt / self.tau_s))

    def measurement(self):
        negative, precharge, positive = (False,) * 3 if self.contactors_stale else self.closed
        return Measurement.simple(
            np.full(16, PACK_V / 16), self.temperatures, self.current_a, PACK_V,
            link_voltage_v=self.link_v, negative_contactor_closed=negative,
            precharge_relay_closed=precharge, positive_contactor_closed=positive,
            contactors_stale=self.contactors_stale)


class Rig:
    """A state machine fed by a plant every ``dt_s``, with a healthy status and estimate."""

    def __init__(self, plant=None, config=CFG, soc=0.5, limits=(100.0, 500.0)):
        self.sm = PackStateMachine(config, 0.0)
        self.plant = plant or Plant()
        self.now_s = 0.0
        self.soc = soc
        self.limits = limits
        self.trip_latched = False
        self.latched = []
        self.commands = [self.sm.command.as_tuple()]
        self.feed_status = True
        self.feed_measurement = True

    def run(self, duration_s, dt_s=0.02):
        end = self.now_s + duration_s
        while self.now_s < end - 1e-9:
            self.now_s = round(self.now_s + dt_s, 6)
            self.plant.advance(self.sm.command, self.now_s)
            if self.feed_status:
                self.sm.on_protection_status(self.trip_latched, self.latched, *self.limits,
                                             self.now_s)
            if self.soc is not None:
                self.sm.on_estimate(self.soc, self.now_s)
            if self.feed_measurement:
                self.sm.on_measurement(self.plant.measurement(), self.now_s)
            else:
                self.sm.step(self.now_s)
            if self.sm.command.as_tuple() != self.commands[-1]:
                self.commands.append(self.sm.command.as_tuple())
        return self

    def request(self, state, requester='vcu'):
        return self.sm.request(state, requester, self.now_s)

    def standby(self):
        self.run(0.1)
        assert self.sm.state == STATE_STANDBY
        return self

    def drive(self):
        self.standby()
        assert self.request(STATE_DRIVE)[0]
        self.run(1.0)
        assert self.sm.state == STATE_DRIVE, self.sm.reason
        return self


# ---------------------------------------------------------------- OFF

def test_starts_off_and_goes_to_standby_with_measurement_and_status():
    rig = Rig()
    assert (rig.sm.state, rig.sm.reason) == (
        STATE_OFF, 'starting: waiting for a measurement and the protection status')
    assert rig.sm.command.as_tuple() == (False, False, False)
    rig.feed_status = False
    rig.run(1.0)
    assert rig.sm.state == STATE_OFF                       # measurement alone is not enough
    rig.feed_status = True
    rig.run(0.02)
    assert (rig.sm.state, rig.sm.reason) == (
        STATE_STANDBY, 'ready: measurement and protection status received, contactors open')


def test_off_goes_to_error_on_a_latched_trip():
    rig = Rig()
    rig.trip_latched, rig.latched = True, ['cell_overvoltage[3]']
    rig.run(0.04)
    assert (rig.sm.state, rig.sm.reason) == (STATE_ERROR, 'safety trip: cell_overvoltage[3]')


def test_off_goes_to_error_on_a_welded_contactor_at_start():
    plant = Plant(welded={2})
    plant.closed[2] = True                                 # positive welded before start
    rig = Rig(plant)
    rig.run(0.5)
    assert rig.sm.state == STATE_OFF
    rig.run(0.06)
    assert rig.sm.state == STATE_ERROR
    assert rig.sm.reason.startswith('contactor fault: positive contactor welded: feedback closed')
    event, = rig.sm.pop_events()
    assert (event.limit_id, event.index, event.level, event.latched) == (
        CONTACTOR_WELDED, 1, LEVEL_TRIP, True)   # 1: positive


def test_request_while_off_is_refused():
    rig = Rig()
    assert rig.request(STATE_DRIVE) == (
        False, 'refused: not ready: starting: waiting for a measurement and the protection status')


# ---------------------------------------------------------------- pre-charge

def test_drive_request_runs_the_contactor_sequence_in_order():
    rig = Rig().standby()
    accepted, reason = rig.request(STATE_DRIVE, 'nav2')
    assert (accepted, reason) == (True, 'pre-charge for DRIVE requested by nav2')
    assert rig.sm.state == STATE_PRECHARGE and rig.sm.requested_state == STATE_DRIVE
    rig.run(1.0, dt_s=0.01)
    assert rig.commands == [
        (False, False, False),
        (True, False, False),     # negative
        (True, True, False),      # + pre-charge relay
        (True, True, True),       # link >= 95 %: + positive
        (True, False, True),      # pre-charge relay open
    ]
    assert rig.sm.state == STATE_DRIVE
    assert rig.sm.reason.startswith('pre-charge done in ')
    assert rig.plant.link_v >= 0.95 * PACK_V


def test_positive_closes_only_once_the_link_reaches_the_target():
    rig = Rig().standby()
    rig.request(STATE_DRIVE)
    while rig.sm.command.as_tuple() != (True, True, True):
        link_before = rig.plant.link_v
        rig.run(0.01, dt_s=0.01)
        assert rig.now_s < 1.0
    assert rig.plant.link_v >= CFG.precharge_target_fraction * PACK_V > link_before


def test_charge_request_ends_in_charge():
    rig = Rig().standby()
    assert rig.request(STATE_CHARGE, 'dock')[0]
    rig.run(1.0)
    assert rig.sm.state == STATE_CHARGE


def test_pre_charge_too_slow_aborts_to_standby_and_blocks_retry():
    rig = Rig(Plant(link_fixed_v=5.0)).standby()           # shorted load: link stays at 5 V
    rig.request(STATE_DRIVE)
    rig.run(2.5)
    assert rig.sm.state == STATE_STANDBY
    assert rig.sm.command.as_tuple() == (False, False, False)
    assert rig.sm.reason.startswith('pre-charge failed: rise too slow: link 5.0 V = 9.5 % of '
                                    '52.8 V after 2.0')
    assert rig.sm.reason.endswith('target 95.0 % within 2.00 s (shorted load?)')
    accepted, reason = rig.request(STATE_DRIVE)
    assert not accepted
    assert reason.startswith('refused: pre-charge failed (rise too slow: ')
    assert 'retry in 4.' in reason                          # 5 s retry delay, failed ~0.5 s ago
    rig.plant.link_fixed_v = None
    rig.run(5.0)
    assert rig.request(STATE_DRIVE)[0]
    rig.run(1.0)
    assert rig.sm.state == STATE_DRIVE


def test_pre_charge_too_fast_aborts():
    rig = Rig(Plant(delay_s=0.0, tau_s=0.001)).standby()   # no capacitor / bypassed resistor
    rig.request(STATE_DRIVE)
    rig.run(0.2, dt_s=0.01)
    assert rig.sm.state == STATE_STANDBY
    assert rig.sm.reason.startswith('pre-charge failed: rise too fast: 100.0 % of 52.8 V after '
                                    '0.0')
    assert rig.commands[-1] == (False, False, False)


def test_a_link_still_charged_may_rise_fast():
    rig = Rig(Plant(delay_s=0.0)).standby()
    rig.plant.link_v = 0.9 * PACK_V                        # opened a moment ago
    rig.request(STATE_DRIVE)
    rig.run(0.2, dt_s=0.01)
    assert rig.sm.state == STATE_DRIVE


def test_standby_request_cancels_a_pre_charge():
    rig = Rig(Plant(tau_s=5.0)).standby()
    rig.request(STATE_DRIVE)
    rig.run(0.1)
    assert rig.sm.state == STATE_PRECHARGE
    assert rig.request(STATE_STANDBY, 'nav2') == (
        True, 'STANDBY requested by nav2 during pre-charge')
    assert (rig.sm.state, rig.sm.command.as_tuple()) == (STATE_STANDBY, (False, False, False))


def test_requests_during_pre_charge():
    rig = Rig(Plant(tau_s=5.0)).standby()
    rig.request(STATE_DRIVE)
    rig.run(0.1)
    assert rig.request(STATE_DRIVE) == (True, 'already pre-charging for DRIVE')
    assert rig.request(STATE_CHARGE, 'dock') == (True, 'pre-charge for CHARGE requested by dock')
    rig.plant.tau_s = 0.05
    rig.run(1.0)
    assert rig.sm.state == STATE_CHARGE


# ---------------------------------------------------------------- guards

def _guard_case(setup, state, reason):
    rig = Rig().standby()
    setup(rig)
    accepted, text = rig.request(state)
    assert (accepted, text) == (False, reason)
    assert rig.sm.state == STATE_STANDBY and rig.sm.command.as_tuple() == (False, False, False)


def _latched(rig):
    rig.trip_latched, rig.latched = True, ['cell_overvoltage[3]']
    rig.sm.on_protection_status(True, rig.latched, 0.0, 0.0, rig.now_s)
    rig.sm.state = STATE_STANDBY  # look at the guard alone (the trip itself goes to ERROR)


def _set(**fields):
    def setup(rig):
        for name, value in fields.items():
            setattr(rig.plant, name, value)
        rig.run(0.02)
    return setup


def _soc(value):
    def setup(rig):
        rig.soc = value
        rig.run(0.02)
    return setup


def _temps(values):
    return _set(temperatures=np.asarray(values, dtype=float))


def _age(what, seconds):
    def setup(rig):
        if what == 'estimate':
            rig.soc = None
            rig.run(seconds)
            return
        if what == 'status':
            rig.feed_status = False
        else:
            rig.feed_measurement = False
        now = rig.now_s
        rig.now_s += seconds
        rig.sm.step(rig.now_s)
        assert now < rig.now_s
    return setup


def _limits(charge, discharge):
    def setup(rig):
        rig.limits = (charge, discharge)
        rig.run(0.02)
    return setup


def _feedback_closed(rig):
    rig.plant.closed[1] = True
    rig.plant.welded = {1}
    rig.run(0.02)


HOT = [25, 25, 25, 41.0, 25, 25, 25, 25]
COLD = [25, 25, 25, 25, 25, -26.0, 25, 25]

GUARDS = [
    ('trip latched', _latched, STATE_DRIVE,
     'refused: trip latched (cell_overvoltage[3]); reset trips first'),
    ('status stale', _age('status', 1.5), STATE_DRIVE,
     'refused: protection status stale (1.5 s old)'),
    ('measurement stale', _age('measurement', 0.7), STATE_DRIVE,
     'refused: measurement stale (0.7 s old)'),
    ('no estimate', _age('estimate', 6.0), STATE_DRIVE,
     'refused: SoC unknown (estimate stale: 6.0 s old)'),
    ('soc too low', _soc(0.03), STATE_DRIVE, 'refused: SoC too low: 3.0 % < 5.0 %'),
    ('soc too high', _soc(0.995), STATE_CHARGE, 'refused: SoC too high: 99.5 % > 99.0 %'),
    ('too hot to charge', _temps(HOT), STATE_CHARGE,
     'refused: temperature outside the charge window: sensor 3 at 41.0 degC > 40.0 degC'),
    ('too cold to drive', _temps(COLD), STATE_DRIVE,
     'refused: temperature outside the drive window: sensor 5 at -26.0 degC < -25.0 degC'),
    ('too cold to charge', _temps([4.0] * 8), STATE_CHARGE,
     'refused: temperature outside the charge window: sensor 0 at 4.0 degC < 5.0 degC'),
    ('no temperature', _temps([math.nan] * 8), STATE_DRIVE, 'refused: no valid temperature'),
    ('discharge limit 0', _limits(100.0, 0.0), STATE_DRIVE,
     'refused: discharge current limit is 0 A (protection derating)'),
    ('charge limit 0', _limits(0.0, 500.0), STATE_CHARGE,
     'refused: charge current limit is 0 A (protection derating)'),
    ('feedback closed', _feedback_closed, STATE_DRIVE,
     'refused: contactor feedback not open: precharge'),
]


@pytest.mark.parametrize('name, setup, state, reason', GUARDS, ids=[g[0] for g in GUARDS])
def test_guards_refuse_with_a_clear_reason(name, setup, state, reason):
    _guard_case(setup, state, reason)


def test_guards_pass_at_the_window_edges():
    rig = Rig().standby()
    rig.plant.temperatures = np.full(8, 40.0)             # charge window edge
    rig.soc = 0.99
    rig.run(0.02)
    assert rig.request(STATE_CHARGE)[0]


def test_no_estimate_is_accepted_when_not_required():
    from dataclasses import replace
    rig = Rig(config=replace(CFG, require_estimate=False), soc=None).standby()
    assert rig.request(STATE_DRIVE)[0]
    rig = Rig(soc=None).standby()
    assert rig.request(STATE_DRIVE) == (False, 'refused: SoC unknown (no estimate yet)')


@pytest.mark.parametrize('state, reason', [
    (STATE_PRECHARGE, 'refused: state PRECHARGE cannot be requested (STANDBY, DRIVE or CHARGE)'),
    (STATE_ERROR, 'refused: state ERROR cannot be requested (STANDBY, DRIVE or CHARGE)'),
    (STATE_OFF, 'refused: state OFF cannot be requested (STANDBY, DRIVE or CHARGE)'),
    (42, 'refused: state 42 cannot be requested (STANDBY, DRIVE or CHARGE)'),
])
def test_only_standby_drive_and_charge_can_be_requested(state, reason):
    rig = Rig().standby()
    assert rig.request(state) == (False, reason)


# ---------------------------------------------------------------- DRIVE / CHARGE

def test_drive_and_charge_switch_directly_with_guards():
    rig = Rig().drive()
    assert rig.request(STATE_DRIVE) == (True, 'already in DRIVE')
    assert rig.request(STATE_CHARGE, 'dock') == (
        True, 'CHARGE requested by dock (contactors stay closed)')
    assert rig.sm.state == STATE_CHARGE and rig.sm.command.as_tuple() == (True, False, True)
    rig.plant.temperatures = np.full(8, 52.0)
    rig.run(0.02)
    assert rig.request(STATE_DRIVE) == (
        False, 'refused: temperature outside the drive window: sensor 0 at 52.0 degC > 50.0 degC')
    assert rig.sm.state == STATE_CHARGE


def test_standby_request_opens_at_low_current():
    rig = Rig().drive()
    rig.plant.current_a = -20.0
    rig.run(0.02)
    assert rig.request(STATE_STANDBY, 'nav2') == (
        True, 'STANDBY requested by nav2: contactors opened at -20.0 A')
    assert (rig.sm.state, rig.sm.command.as_tuple()) == (STATE_STANDBY, (False, False, False))


def test_standby_request_waits_while_above_the_break_rating():
    rig = Rig().drive()
    rig.plant.current_a = -300.0                           # above 200 A
    rig.run(0.02)
    accepted, reason = rig.request(STATE_STANDBY, 'nav2')
    assert accepted and rig.sm.state == STATE_DRIVE
    assert reason == ('STANDBY requested by nav2: waiting for |I| 300.0 A <= 200 A before '
                      'opening (2.0 s left)')
    assert rig.sm.command.as_tuple() == (True, False, True)
    assert rig.request(STATE_CHARGE)[1].startswith('refused: opening for STANDBY in progress')
    rig.run(0.5)
    assert rig.sm.state == STATE_DRIVE
    rig.plant.current_a = -150.0
    rig.run(0.02)
    assert (rig.sm.state, rig.sm.reason) == (
        STATE_STANDBY, 'STANDBY requested by nav2: contactors opened at -150.0 A')


def test_standby_request_opens_anyway_after_the_maximum_delay():
    rig = Rig().drive()
    rig.plant.current_a = -300.0
    rig.run(0.02)
    rig.request(STATE_STANDBY, 'nav2')
    rig.run(1.9)
    assert rig.sm.state == STATE_DRIVE
    rig.run(0.2)
    assert rig.sm.state == STATE_STANDBY
    assert rig.sm.reason == ('STANDBY requested by nav2: opened at -300.0 A, above the 200 A '
                             'break rating, after waiting 2.0 s')


def test_safety_trip_opens_at_once_whatever_the_current():
    rig = Rig().drive()
    rig.plant.current_a = -400.0
    rig.run(0.02)
    rig.sm.on_trip_event('discharge_overcurrent', LEVEL_TRIP, True, True,
                         'pack discharge over-current 1600.0 A >= trip 1500.0 A', rig.now_s)
    assert rig.sm.state == STATE_ERROR
    assert rig.sm.command.as_tuple() == (False, False, False)
    assert rig.sm.reason == ('safety trip: pack discharge over-current 1600.0 A >= trip 1500.0 A '
                             '(opened at -400.0 A, above the break rating: safety first)')


@pytest.mark.parametrize('level, active, latched', [(2, True, False), (LEVEL_TRIP, False, False)])
def test_alarms_and_cleared_events_do_not_open(level, active, latched):
    rig = Rig().drive()
    rig.sm.on_trip_event('cell_overvoltage', level, active, latched, 'x', rig.now_s)
    assert rig.sm.state == STATE_DRIVE


def test_own_contactor_fault_events_coming_back_are_ignored():
    rig = Rig().drive()
    rig.sm.on_trip_event(CONTACTOR_WELDED, LEVEL_TRIP, True, True, 'x', rig.now_s)
    assert rig.sm.state == STATE_DRIVE


def test_latched_status_opens_even_without_an_event():
    rig = Rig().drive()
    rig.trip_latched, rig.latched = True, ['stale_measurement']
    rig.run(0.02)
    assert (rig.sm.state, rig.sm.reason) == (STATE_ERROR, 'safety trip: stale_measurement')
    assert rig.sm.command.as_tuple() == (False, False, False)


@pytest.mark.parametrize('status_first', [True, False])
def test_the_error_reason_carries_the_trip_message_whichever_input_came_first(status_first):
    # status and trip event travel on two topics: either may reach the supervisor first
    rig = Rig().drive()
    message = 'cell 3 over-voltage 3.800 V >= trip 3.750 V'
    rig.trip_latched, rig.latched = True, ['cell_overvoltage[3]']
    if status_first:
        rig.run(0.02)
        assert rig.sm.reason == 'safety trip: cell_overvoltage[3]'
    rig.sm.on_trip_event('cell_overvoltage', LEVEL_TRIP, True, True, message, rig.now_s, index=3)
    rig.run(0.02)
    assert (rig.sm.state, rig.sm.reason) == (STATE_ERROR, f'safety trip: {message}')
    # a later trip does not replace the first cause
    rig.sm.on_trip_event('cell_undervoltage', LEVEL_TRIP, True, True, 'other', rig.now_s, index=1)
    assert rig.sm.reason == f'safety trip: {message}'


def test_an_event_from_before_start_lends_its_message_but_does_not_trip():
    rig = Rig().standby()
    message = 'latched-trip file unreadable (bad JSON); reset to confirm'
    rig.sm.on_trip_event('latch_file_corrupt', LEVEL_TRIP, True, True, message, rig.now_s,
                         history=True)
    rig.run(0.02)
    assert rig.sm.state == STATE_STANDBY     # it may have been reset since: the status decides
    rig.trip_latched, rig.latched = True, ['latch_file_corrupt']
    rig.run(0.02)
    assert (rig.sm.state, rig.sm.reason) == (STATE_ERROR, f'safety trip: {message}')


def test_lost_protection_status_opens_and_errors():
    rig = Rig().drive()
    rig.feed_status = False
    rig.run(1.2)
    assert rig.sm.state == STATE_ERROR
    assert rig.sm.reason.startswith('protection status lost (1.')
    assert rig.sm.command.as_tuple() == (False, False, False)


def test_lost_measurement_opens_and_errors():
    rig = Rig().drive()
    rig.feed_measurement = False
    rig.run(0.6)
    assert rig.sm.state == STATE_ERROR
    assert rig.sm.reason.startswith('measurement lost (0.5')


# ---------------------------------------------------------------- contactor faults

def test_stuck_open_contactor_during_pre_charge_is_a_fault():
    rig = Rig(Plant(stuck_open={0})).standby()
    rig.request(STATE_DRIVE)
    rig.run(0.5)
    assert rig.sm.state == STATE_PRECHARGE
    rig.run(0.1)
    assert rig.sm.state == STATE_ERROR
    assert rig.sm.reason.startswith('contactor fault: negative contactor stuck open: feedback '
                                    'open 0.5')
    assert rig.sm.reason.endswith('s after the close command (> 0.50 s)')
    event, = rig.sm.pop_events()
    assert (event.limit_id, event.index, event.unit, event.threshold) == (
        CONTACTOR_STUCK_OPEN, 0, 's', 0.5)
    assert rig.sm.command.as_tuple() == (False, False, False)


def test_welded_contactor_is_detected_and_blocks_standby_until_it_opens():
    rig = Rig().drive()
    rig.plant.welded = {2}
    rig.request(STATE_STANDBY, 'nav2')
    rig.run(0.6)
    assert rig.sm.state == STATE_ERROR
    assert rig.sm.reason.startswith('contactor fault: positive contactor welded: feedback closed')
    event, = rig.sm.pop_events()
    assert (event.limit_id, event.index, event.active, event.latched) == (
        CONTACTOR_WELDED, 1, True, True)
    assert rig.request(STATE_STANDBY, 'service') == (
        False, 'refused: contactor feedback not open: positive (welded?)')
    assert rig.request(STATE_DRIVE)[1].startswith('refused: in ERROR (contactor fault: positive')
    rig.plant.welded = set()                               # repaired
    rig.run(0.1)
    assert rig.request(STATE_STANDBY, 'service') == (
        True, 'STANDBY requested by service: trips reset, contactors open')
    cleared, = rig.sm.pop_events()
    assert (cleared.limit_id, cleared.active, cleared.message) == (
        CONTACTOR_WELDED, False, 'positive contactor fault cleared by service: feedback agrees '
                                 'again')


def test_short_feedback_disagreement_is_tolerated():
    rig = Rig(Plant(delay_s=0.4)).standby()                # slow but within 0.5 s
    rig.request(STATE_DRIVE)
    rig.run(3.0)
    assert rig.sm.state == STATE_DRIVE and rig.sm.pop_events() == []


def test_stale_contactor_feedback_raises_no_contactor_fault():
    rig = Rig().drive()
    rig.feed_measurement = False
    m = rig.plant.measurement()
    m.contactors_stale = True
    m.positive_contactor_closed = False     # a stale bool decodes as False: not "stuck open"
    rig.sm.on_measurement(m, rig.now_s + 0.4)
    assert rig.sm.state == STATE_DRIVE
    rig.sm.on_measurement(m, rig.now_s + 0.8)
    assert rig.sm.pop_events() == []
    assert (rig.sm.state, rig.sm.reason) == (   # but unknown is not open: ERROR (below)
        STATE_ERROR, 'contactor feedback unknown (stale for 0.80 s > 0.50 s): unknown is not '
                     'open, all contactors opened')


# ---------------------------------------------------------------- ERROR

def test_error_is_left_only_after_reset_and_a_standby_request():
    rig = Rig().drive()
    rig.trip_latched, rig.latched = True, ['cell_overvoltage[3]']
    rig.run(0.04)
    assert rig.sm.state == STATE_ERROR
    assert rig.request(STATE_DRIVE) == (
        False, 'refused: in ERROR (safety trip: cell_overvoltage[3]); reset trips and request '
               'STANDBY first')
    assert rig.request(STATE_STANDBY) == (
        False, 'refused: trip latched (cell_overvoltage[3]); reset trips first')
    rig.trip_latched, rig.latched = False, []              # reset at the protection
    rig.run(0.5)
    assert rig.sm.state == STATE_ERROR                     # no automatic recovery
    assert rig.request(STATE_STANDBY, 'operator') == (
        True, 'STANDBY requested by operator: trips reset, contactors open')
    assert rig.request(STATE_DRIVE)[0]
    rig.run(1.0)
    assert rig.sm.state == STATE_DRIVE


def test_error_exit_needs_fresh_inputs():
    rig = Rig().drive()
    rig.trip_latched = True
    rig.run(0.02)
    rig.trip_latched = False
    rig.run(0.02)
    rig.feed_measurement = False
    rig.run(0.6)
    assert rig.request(STATE_STANDBY) == (False, 'refused: no fresh measurement')
    rig.feed_measurement, rig.feed_status = True, False
    rig.run(1.1)
    assert rig.request(STATE_STANDBY) == (False, 'refused: no fresh protection status')


# ---------------------------------------------------------------- configuration

def _section(change):
    data = copy.deepcopy(PROFILE.section('supervisor').data)
    change(data)
    return Section(data, 's.yaml', 'supervisor')


@pytest.mark.parametrize('field, value, message', [
    ('precharge_target_fraction', 1.2,
     'supervisor.precharge_target_fraction: expected a number <= 1.0, got 1.2'),
    ('precharge_min_time_s', 3.0,
     'supervisor.precharge_min_time_s: must be below precharge_timeout_s (2.0), got 3.0'),
    ('charge_temperature_min_degc', 45.0,
     'supervisor.charge_temperature_min_degc: must be below charge_temperature_max_degc (40.0), '
     'got 45.0'),
    ('contactor_feedback_timeout_s', 0,
     'supervisor.contactor_feedback_timeout_s: expected a number > 0.0, got 0'),
    ('require_estimate', 'yes', "supervisor.require_estimate: expected true or false, got 'yes'"),
    ('precharge_timeout', 1.0, 'supervisor.precharge_timeout: unknown field'),
])
def test_bad_supervisor_values_name_file_and_field(field, value, message):
    section = _section(lambda data: data.__setitem__(field, value))
    with pytest.raises(ConfigError) as info:
        load_supervisor_config(section)
    assert str(info.value).startswith(f's.yaml: {message}')


def test_both_profiles_have_a_valid_supervisor_section():
    for name in ('lfp_16s.yaml', 'nmc_96s.yaml'):
        profile = Profile(os.path.join(config_dir(), 'profiles', name))
        cfg = load_supervisor_config(profile.section('supervisor'))
        cell = profile.pack.cell_single.limits
        assert cell.charge_temperature_min_degc <= cfg.charge_temperature_min_degc
        assert cfg.charge_temperature_max_degc <= cell.charge_temperature_max_degc
        assert cell.discharge_temperature_min_degc <= cfg.drive_temperature_min_degc
        assert cfg.drive_temperature_max_degc <= cell.discharge_temperature_max_degc


# ---------------------------------------------------------------- unknown feedback
# The rig steps every 0.02 s; the feedback is unknown from the arrival of the last measurement
# with known feedback. Times are chosen off the 0.5 s boundary (float rounding).

UNKNOWN_ERROR = ('contactor feedback unknown (stale for {:.2f} s > 0.50 s): unknown is not open, '
                 'all contactors opened')


def test_off_waits_for_known_open_feedback():
    rig = Rig()
    rig.plant.contactors_stale = True
    rig.run(1.0)
    assert (rig.sm.state, rig.sm.reason) == (
        STATE_OFF, 'starting: contactor feedback unknown (stale): waiting for known-open feedback')
    assert rig.sm.feedback == ('unknown', 'unknown', 'unknown')
    assert rig.request(STATE_DRIVE) == (
        False, 'refused: not ready: starting: contactor feedback unknown (stale): waiting for '
               'known-open feedback')
    rig.plant.contactors_stale = False
    rig.run(0.02)
    assert rig.sm.state == STATE_STANDBY and rig.sm.feedback == ('open', 'open', 'open')


@pytest.mark.parametrize('state', [STATE_DRIVE, STATE_CHARGE])
def test_unknown_feedback_in_standby_refuses_drive_and_charge(state):
    rig = Rig().standby()                                  # last known feedback at 0.10 s
    rig.plant.contactors_stale = True
    rig.run(0.2)
    assert rig.request(state) == (False, 'refused: contactor feedback unknown (stale for 0.20 s)')
    rig.run(2.0)                                           # all open already: no ERROR
    assert rig.sm.state == STATE_STANDBY and rig.sm.command.as_tuple() == (False, False, False)
    assert rig.sm.warnings(rig.now_s) == ['contactor feedback unknown (stale for 2.2 s)']
    rig.plant.contactors_stale = False
    rig.run(0.02)
    assert rig.request(state)[0] and rig.sm.warnings(rig.now_s) == []


@pytest.mark.parametrize('state', [STATE_DRIVE, STATE_CHARGE])
def test_unknown_feedback_in_drive_or_charge_opens_all_after_the_timeout(state):
    rig = Rig().standby()
    assert rig.request(state)[0]
    rig.run(1.0)
    assert rig.sm.state == state
    known_s = rig.now_s
    rig.plant.contactors_stale = True
    rig.run(0.2)
    other = STATE_CHARGE if state == STATE_DRIVE else STATE_DRIVE
    unknown = 'refused: contactor feedback unknown (stale for 0.20 s)'
    assert rig.request(state) == (False, unknown)          # not "already in": unknown
    assert rig.request(other) == (False, unknown)
    rig.run(0.28)                                          # 0.48 s unknown
    assert rig.sm.state == state and rig.sm.command.as_tuple() == (True, False, True)
    rig.run(0.04)                                          # 0.52 s
    assert round(rig.now_s - known_s, 6) == 0.52
    assert (rig.sm.state, rig.sm.reason) == (STATE_ERROR, UNKNOWN_ERROR.format(0.52))
    assert rig.sm.command.as_tuple() == (False, False, False)
    assert rig.sm.pop_events() == []                       # unknown is no contactor fault


def test_unknown_feedback_in_pre_charge_errors_instead_of_waiting():
    # the reported case: DRIVE accepted, then 60 s in "close negative" with no error
    rig = Rig().standby()                                  # last known feedback at 0.10 s
    assert rig.request(STATE_DRIVE)[0]
    rig.plant.contactors_stale = True
    rig.run(0.48)
    assert (rig.sm.state, rig.sm.phase) == (STATE_PRECHARGE, 'close negative')
    rig.run(0.04)
    assert (rig.sm.state, rig.sm.reason) == (STATE_ERROR, UNKNOWN_ERROR.format(0.52))
    assert rig.sm.command.as_tuple() == (False, False, False) and rig.sm.phase is None


def test_unknown_feedback_keeps_a_welded_fault_and_refuses_the_error_exit():
    rig = Rig().drive()
    rig.plant.welded = {2}
    rig.request(STATE_STANDBY, 'nav2')
    rig.run(0.6)
    assert rig.sm.state == STATE_ERROR
    raised, = rig.sm.pop_events()
    assert raised.limit_id == CONTACTOR_WELDED
    rig.plant.contactors_stale = True                      # the status frame stops
    rig.run(0.3)
    assert rig.request(STATE_STANDBY, 'service') == (
        False, 'refused: contactor feedback unknown (stale for 0.30 s); contactor faults kept: '
               'positive')
    assert rig.request(STATE_DRIVE)[1].startswith('refused: in ERROR (contactor fault: positive')
    rig.run(5.0)
    assert rig.request(STATE_STANDBY, 'service')[0] is False
    assert rig.sm.pop_events() == []                       # not cleared
    rig.plant.contactors_stale = False                     # back: still welded
    rig.run(0.02)
    assert rig.request(STATE_STANDBY, 'service') == (
        False, 'refused: contactor feedback not open: positive (welded?)')
    rig.plant.welded = set()
    rig.run(0.1)
    assert rig.request(STATE_STANDBY, 'service')[0]
    cleared, = rig.sm.pop_events()
    assert (cleared.limit_id, cleared.active) == (CONTACTOR_WELDED, False)


def test_unknown_feedback_refuses_the_error_exit_after_a_trip():
    rig = Rig().drive()
    rig.trip_latched, rig.latched = True, ['cell_overvoltage[3]']
    rig.run(0.04)
    rig.trip_latched, rig.latched = False, []              # reset at the protection
    rig.plant.contactors_stale = True
    rig.run(0.1)
    assert rig.request(STATE_STANDBY) == (
        False, 'refused: contactor feedback unknown (stale for 0.10 s)')
    rig.plant.contactors_stale = False
    rig.run(0.02)
    assert rig.request(STATE_STANDBY)[0]


def test_feedback_unknown_from_the_first_measurement():
    rig = Rig()
    rig.plant.contactors_stale = True
    rig.run(0.1)                                           # first measurement at 0.02 s
    assert rig.sm.feedback_unknown_s(rig.now_s) == pytest.approx(0.08)


# ---------------------------------------------------------------- pre-charge phase timeouts
# Each phase that waits on one contactor has precharge_phase_timeout_s (1.0 s). Shipped
# validation keeps it above contactor_feedback_timeout_s, so a stuck contactor is a contactor
# fault (ERROR) first; here feedback supervision is slowed down (5 s) to see the phase timeout
# itself. 0.03 s steps put the checks at 0.99 s and 1.02 s, off the boundary.

SLOW_FAULTS = replace(CFG, contactor_feedback_timeout_s=5.0)


def _phase_timeout_case(plant, phase):
    rig = Rig(plant, config=SLOW_FAULTS).standby()
    assert rig.request(STATE_DRIVE)[0]
    while rig.sm.phase != phase:
        rig.run(0.03, dt_s=0.03)
        assert rig.now_s < 1.0 and rig.sm.state == STATE_PRECHARGE, rig.sm.reason
    started_s = rig.now_s
    rig.run(0.99, dt_s=0.03)
    assert (rig.sm.state, rig.sm.phase) == (STATE_PRECHARGE, phase)
    rig.run(0.03, dt_s=0.03)
    assert round(rig.now_s - started_s, 6) == 1.02
    assert rig.sm.state == STATE_STANDBY
    assert rig.sm.command.as_tuple() == (False, False, False)
    assert rig.sm.pop_events() == []
    return rig


@pytest.mark.parametrize('plant, phase, detail', [
    (Plant(stuck_open={0}), 'close negative', 'negative feedback open, waiting for closed'),
    (Plant(stuck_open={2}), PHASE_POSITIVE, 'positive feedback open, waiting for closed'),
    (Plant(welded={1}), PHASE_RELEASE, 'precharge feedback closed, waiting for open'),
], ids=['close negative', 'close positive', 'open pre-charge'])
def test_each_pre_charge_phase_has_its_own_timeout(plant, phase, detail):
    rig = _phase_timeout_case(plant, phase)
    why = f'phase {phase} timed out after 1.02 s > 1.00 s ({detail})'
    assert rig.sm.reason == f'pre-charge failed: {why}'
    assert rig.request(STATE_DRIVE)[1].startswith(f'refused: pre-charge failed ({why}); retry in ')


def test_the_rise_keeps_precharge_timeout_s():
    rig = Rig(Plant(link_fixed_v=5.0), config=SLOW_FAULTS).standby()
    rig.request(STATE_DRIVE)
    rig.run(1.5)                                           # past the 1.0 s phase timeout
    assert rig.sm.state == STATE_PRECHARGE and rig.sm.phase == 'pre-charge'
    rig.run(1.0)
    assert rig.sm.reason.startswith('pre-charge failed: rise too slow: ')


def test_shipped_timeouts_report_a_stuck_contactor_as_a_fault_not_a_phase_timeout():
    rig = Rig(Plant(stuck_open={2})).standby()
    rig.request(STATE_DRIVE)
    rig.run(2.0)
    assert rig.sm.state == STATE_ERROR
    assert rig.sm.reason.startswith('contactor fault: positive contactor stuck open')


# ---------------------------------------------------------------- estimate lost

ESTIMATE_STALE = ('DRIVE riding through: estimate stale (5.0 s old > 5.0 s); voltage, current '
                  'and temperature limits are still checked by protection on measurements; '
                  'new DRIVE/CHARGE requests refused')


def test_lost_estimate_rides_through_in_drive_but_says_so_and_refuses_new_requests():
    rig = Rig().drive()
    last_s = rig.now_s
    reason = rig.sm.reason
    rig.soc = None                                         # the estimator stops
    rig.run(4.98)
    assert (rig.sm.state, rig.sm.reason) == (STATE_DRIVE, reason)
    assert rig.sm.warnings(rig.now_s) == []
    rig.run(0.04)                                          # 5.02 s old
    assert round(rig.now_s - last_s, 6) == 5.02
    assert (rig.sm.state, rig.sm.reason) == (STATE_DRIVE, ESTIMATE_STALE)
    assert rig.sm.command.as_tuple() == (True, False, True)
    assert rig.sm.warnings(rig.now_s) == ['estimate stale (5.0 s old)']
    assert rig.request(STATE_CHARGE) == (False, 'refused: SoC unknown (estimate stale: 5.0 s old)')
    assert rig.request(STATE_DRIVE) == (True, 'already in DRIVE')   # not a new request
    rig.run(10.0)
    assert rig.sm.state == STATE_DRIVE and rig.sm.reason == ESTIMATE_STALE
    # protection still acts on measurements: a trip opens as ever
    rig.sm.on_trip_event('cell_overvoltage', LEVEL_TRIP, True, True, 'cell 3 over-voltage',
                         rig.now_s, index=3)
    assert (rig.sm.state, rig.sm.command.as_tuple()) == (STATE_ERROR, (False, False, False))


def test_estimate_back_clears_the_mark():
    rig = Rig().standby()
    rig.request(STATE_CHARGE)
    rig.run(1.0)
    rig.soc = None
    rig.run(5.1)
    assert rig.sm.reason.startswith('CHARGE riding through: estimate stale (5.')
    rig.soc = 0.5
    rig.run(0.02)
    assert (rig.sm.state, rig.sm.reason) == (STATE_CHARGE, 'CHARGE: estimate fresh again')
    assert rig.request(STATE_DRIVE)[0]


def test_lost_estimate_without_require_estimate_allows_requests():
    rig = Rig(config=replace(CFG, require_estimate=False)).drive()
    rig.soc = None
    rig.run(5.1)
    assert rig.sm.reason.endswith('requests still allowed (require_estimate false)')
    assert rig.request(STATE_CHARGE)[0]


def test_a_standby_request_while_riding_through_opens_as_ever():
    rig = Rig().drive()
    rig.soc = None
    rig.run(5.1)
    assert rig.request(STATE_STANDBY, 'nav2') == (
        True, 'STANDBY requested by nav2: contactors opened at 0.0 A')


# ---------------------------------------------------------------- trip history

def test_a_history_event_after_the_status_replaces_the_names_only_reason():
    # the latch_file_corrupt CI case, status first: the reason must quote the message
    rig = Rig().standby()
    rig.trip_latched, rig.latched = True, ['latch_file_corrupt']
    rig.run(0.02)
    assert rig.sm.reason == 'safety trip: latch_file_corrupt'
    message = 'latched-trip file unreadable (bad JSON); reset to confirm'
    rig.sm.on_trip_event('latch_file_corrupt', LEVEL_TRIP, True, True, message, rig.now_s,
                         history=True)
    assert (rig.sm.state, rig.sm.reason) == (STATE_ERROR, f'safety trip: {message}')
    assert rig.request(STATE_DRIVE)[1].startswith(f'refused: in ERROR (safety trip: {message})')
    # a history event of a trip that is not latched lends nothing to the reason
    rig.sm.on_trip_event('cell_overvoltage', LEVEL_TRIP, True, True, 'old', rig.now_s, index=2,
                         history=True)
    assert rig.sm.reason == f'safety trip: {message}'


def test_phase_timeout_must_exceed_the_feedback_timeout():
    section = _section(lambda data: data.__setitem__('precharge_phase_timeout_s', 0.5))
    with pytest.raises(ConfigError) as info:
        load_supervisor_config(section)
    assert str(info.value).startswith(
        's.yaml: supervisor.precharge_phase_timeout_s: must exceed contactor_feedback_timeout_s '
        '(0.5), got 0.5')
    missing = _section(lambda data: data.pop('precharge_phase_timeout_s'))
    with pytest.raises(ConfigError) as info:
        load_supervisor_config(missing)
    assert 'precharge_phase_timeout_s' in str(info.value)
