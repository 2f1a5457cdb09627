"""The can_driver's rules moved into core: parameter overrides (can_settings), deadlines, timer
groups, prompt timing, the time line and message fields (can_driver_runtime), counters and
/diagnostics texts (can_driver_status). The node itself: test/ros/test_can_driver.py.
"""
import array
import math
from types import SimpleNamespace

import can
import numpy as np
import pytest

from bms_ros.core.can_backoff import Backoff
from bms_ros.core.can_driver_runtime import (
    ALL_OPEN,
    READER_WAIT_S,
    can_rx_fields,
    contactor_command_of,
    driver_deadlines,
    in_turn,
    measurement_fields,
    prompt_due,
    reader_wait_s,
    stamp_of_receive,
    startup_text,
    time_of_s,
    timer_groups,
)
from bms_ros.core.can_driver_status import (
    DriverCounters,
    bus_status,
    bus_values,
    command_status,
    contactor_lost_text,
    reader_fatal_text,
)
from bms_ros.core.can_settings import check_overrides
from bms_ros.core.can_staleness import AssembledMeasurement
from bms_ros.core.command_deadline import CanFailsafeSettings, CommandDeadline
from bms_ros.core.errors import ConfigError


def snapshot(stale_groups=(), counter_stale=(), device_counts=None, **counts):
    """An assembled measurement of 2 cells with the given diagnostics."""
    return AssembledMeasurement(
        cell_voltages_v=np.array([3.3, np.nan]), cell_voltage_valid=np.array([True, False]),
        temperatures_degc=np.array([25.0]), temperature_valid=np.array([True]),
        pack_current_a=-12.5, pack_voltage_v=6.6, link_voltage_v=math.nan,
        negative_contactor_closed=True, positive_contactor_closed=False,
        precharge_relay_closed=False, cell_balancing=np.array([False, True]),
        cell_voltages_stamp=99.9, temperatures_stamp=math.nan, current_stamp=99.5,
        frames_received=2 ** 32 + 5, frames_rejected=3, stale_groups=tuple(stale_groups),
        counts=dict(counts), counter_stale=tuple(counter_stale),
        device_counts=device_counts or {'bms': {}})


# ------------------------------------------------------------------ parameter overrides

def test_overrides_unset_are_skipped_and_ints_taken_for_floats():
    got = check_overrides({'interface': '', 'port': 29537, 'stale_timeout_s': 1,
                           'publish_can_rx': False, 'prompt_min_interval_s': 0, 'host': None})
    assert got == {'port': 29537, 'stale_timeout_s': 1.0, 'publish_can_rx': False,
                   'prompt_min_interval_s': 0.0}
    assert isinstance(got['stale_timeout_s'], float)


@pytest.mark.parametrize('name, value, expected', [
    ('port', True, 'expected int'),
    ('port', '29536', 'expected int'),
    ('publish_can_rx', 1, 'expected bool'),
    ('stale_timeout_s', 0.0, 'expected a number > 0'),
    ('bitrate', -5, 'expected a number > 0'),
    ('prompt_min_interval_s', 10.5, 'expected a number in 0..10'),
    ('interface', 'nosuchbus', 'expected one of'),
])
def test_bad_overrides_name_the_parameter(name, value, expected):
    with pytest.raises(ConfigError) as error:
        check_overrides({name: value})
    assert error.value.path == 'parameter' and error.value.field == name
    assert expected in str(error.value)


# ------------------------------------------------------------------ back-off

def test_backoff_doubles_to_its_maximum_and_resets_on_success():
    now = [100.0]
    backoff = Backoff(0.1, 0.5, clock=lambda: now[0])
    assert backoff.wait_s() <= 0.0                      # due at once
    waits = []
    for _ in range(5):
        backoff.failed()
        waits.append(round(backoff.wait_s(), 9))
    assert waits == [0.1, 0.2, 0.4, 0.5, 0.5]
    now[0] += 0.5
    assert backoff.wait_s() == pytest.approx(0.0)
    backoff.succeeded()
    backoff.failed()
    assert backoff.wait_s() == pytest.approx(0.1)


# ------------------------------------------------------------------ time line and messages

def test_time_of_s_and_never_received():
    assert time_of_s(12.25) == (12, 250_000_000)
    assert time_of_s(math.nan) == (0, 0) and time_of_s(0.0) == (0, 0)
    assert time_of_s(5.9999999999) == (5, 999_999_999)   # never rounds into the next second


def test_receive_time_keeps_its_age_on_the_ros_clock():
    # received 0.3 s ago on the monotonic clock: 0.3 s before now on the ROS clock
    sec, nanosec = stamp_of_receive(49.7, now_mono_s=50.0, now_ros_s=1_700_000_000.5)
    assert sec + nanosec * 1e-9 == pytest.approx(1_700_000_000.2, abs=1e-6)
    assert stamp_of_receive(math.nan, 50.0, 1.7e9) == (0, 0)


def test_measurement_fields():
    fields = measurement_fields(snapshot(), now_mono_s=100.0, now_ros_s=1000.0)
    assert isinstance(fields['cell_voltages_v'], array.array)
    assert fields['cell_voltages_v'].typecode == 'f'
    assert fields['cell_voltages_v'][0] == pytest.approx(3.3, abs=1e-6)
    assert math.isnan(fields['cell_voltages_v'][1])
    assert fields['cell_voltage_valid'] == [True, False]
    assert fields['cell_balancing'] == [False, True]
    assert fields['cell_voltages_stamp'][0] == 999
    assert fields['cell_voltages_stamp'][1] == pytest.approx(900_000_000, abs=1000)
    assert fields['temperatures_stamp'] == (0, 0)          # never received
    assert fields['frames_received'] == 5                   # uint32 wraps
    assert fields['pack_current_a'] == -12.5 and fields['negative_contactor_closed'] is True


def test_can_rx_fields():
    msg = can.Message(arbitration_id=0x18FF10F3, is_extended_id=True, data=[1, 2, 3])
    assert can_rx_fields(msg) == (0x18FF10F3, True, False, False, 3,
                                  b'\x01\x02\x03\0\0\0\0\0')
    assert can_rx_fields(can.Message(arbitration_id=0x20000000, is_extended_id=True)) is None
    assert contactor_command_of(1, 0, True) == (True, False, True)


# ------------------------------------------------------------------ deadlines and timers

def failsafe(**changes):
    values = dict(command_deadline_s=0.5, balancing_deadline_s=3.0, counter_errors_stale=3,
                  reader_restart_max=5)
    values.update(changes)
    return CanFailsafeSettings(**values)


def test_deadlines_follow_the_command_period_or_a_fifth_of_the_deadline():
    commands = SimpleNamespace(contactor=object(), balancing=object(), contactor_period_s=0.1)
    got = driver_deadlines(commands, failsafe(), cells_series=4, start_s=10.0)
    assert (got.contactor_timer_s, got.balancing_timer_s) == (0.1, 0.3)
    assert got.contactor.repeat_s == 0.1 and got.contactor.repeat_fresh
    assert got.contactor.tick(10.6) == (ALL_OPEN, True)    # none within the deadline: open
    assert got.balancing.tick(13.1) == (None, False)       # no bleed before the first
    got.balancing.receive(np.ones(4, bool), 14.0)
    command, expired = got.balancing.tick(17.1)              # past 3 s: all-zero bleed
    assert expired and command.tolist() == [False] * 4
    commands = SimpleNamespace(contactor=object(), balancing=None, contactor_period_s=None)
    got = driver_deadlines(commands, failsafe(), cells_series=4, start_s=0.0)
    assert got.contactor_timer_s == pytest.approx(0.1) and got.balancing is None
    assert not got.contactor.repeat_fresh and got.contactor.repeat_s == 0.5
    got = driver_deadlines(SimpleNamespace(contactor=None, balancing=None,
                                           contactor_period_s=None), failsafe(), 4, 0.0)
    assert got.contactor is None and got.balancing is None


def test_callbacks_of_one_period_share_a_timer_in_order():
    calls = []
    a, b, c = (lambda: calls.append('a')), (lambda: calls.append('b')), \
        (lambda: calls.append('c'))
    groups = timer_groups([(0.1, a), (1.0, b), (0.1, c)])
    assert [(p, len(cbs)) for p, cbs in groups] == [(0.1, 2), (1.0, 1)]
    in_turn(groups[0][1])()
    assert calls == ['a', 'c']


def test_prompt_timing():
    assert reader_wait_s(False, 10.0, 0.02, 10.005) == READER_WAIT_S
    assert reader_wait_s(True, 10.0, 0.02, 10.005) == pytest.approx(0.015)
    assert reader_wait_s(True, 10.0, 0.02, 10.5) == 0.0
    assert not prompt_due(True, False, 10.0, 0.02, 10.01)   # within the minimum interval
    assert prompt_due(True, True, 10.0, 0.02, 10.01)        # a crossing: at once
    assert prompt_due(True, False, 10.0, 0.02, 10.03)        # the interval has passed
    assert not prompt_due(False, True, 10.0, 0.02, 11.0)     # nothing pending


# ------------------------------------------------------------------ counters and diagnostics

def test_frame_rate_between_updates():
    counters = DriverCounters()
    counters.start(100.0)
    assert counters.update_rate(101.0, 500) == pytest.approx(500.0)
    assert counters.update_rate(103.0, 1500) == pytest.approx(500.0)
    assert counters.update_rate(103.0, 1500) == 0.0          # no time passed: no division


def test_bus_status_order_of_causes():
    snap = snapshot(stale_groups=('cell_voltages',), counter_stale=('Pack_Cells',))
    fresh = snapshot()
    assert bus_status(False, 'disconnected', 'refused', None, False, 0, fresh, 0.0) == \
        ('ERROR', 'bus disconnected: refused')
    fatal = reader_fatal_text(5)
    assert fatal == 'CAN reader thread failed more than 5 times within 60 s'
    assert bus_status(True, 'connected', '', fatal, True, 6, snap, 9.0) == ('ERROR', fatal)
    assert bus_status(True, 'connected', '', None, True, 2, snap, 9.0) == \
        ('ERROR', 'reader thread failed, restarting (restart 2)')
    assert bus_status(True, 'connected', '', None, False, 0, snap, 9.0) == \
        ('WARN', 'stale: cell_voltages (rolling counter: Pack_Cells)')
    assert bus_status(True, 'connected', '', None, False, 0, fresh, 812.4) == \
        ('OK', 'receiving 812 frames/s')


def test_bus_values():
    counters = DriverCounters(commands_rejected=2, can_rx_published=7)
    counters.rate_per_s = 12.345
    values = bus_values('connected', '', {'opens': 1}, snapshot(unknown_id=4, counter_jump=1),
                        frames_ignored=9, counters=counters, restarts=1)
    assert values['frames_per_s'] == '12.3' and values['bus_opens'] == '1'
    assert values['rejected_unknown_id'] == '4' and values['rejected_wrong_dlc'] == '0'
    assert values['counter_jump'] == '1' and values['values_invalid_marker'] == '0'
    assert (values['commands_rejected'], values['can_rx_published'], values['frames_ignored'],
            values['reader_restarts']) == ('2', '7', '9', '1')
    assert all(isinstance(v, str) for v in values.values())
    assert not any('.' in k for k in values)                 # one device: no per-device keys
    two = snapshot(device_counts={'bms': {'unknown_id': 0}, 'shunt': {'wrong_dlc': 3}})
    values = bus_values('connected', '', {}, two, 0, DriverCounters(), 0)
    assert values['shunt.wrong_dlc'] == '3' and 'bms.unknown_id' not in values


def test_command_status_per_state():
    contactor = CommandDeadline(0.5, ALL_OPEN, repeat_s=0.1, start_s=0.0)
    assert command_status('contactor_command', contactor, 0.2)[:2] == \
        ('OK', 'waiting for the first contactor_command')
    level, message, values = command_status('contactor_command', contactor, 0.6)
    assert (level, message) == ('ERROR', contactor_lost_text(contactor))
    assert 'within 0.5 s of start' in message
    assert values == {'state': 'expired', 'age_s': '0.600', 'deadline_s': '0.5',
                      'expiries': '0'}
    contactor.receive((True, False, True), 1.0)
    assert command_status('contactor_command', contactor, 1.25)[:2] == \
        ('OK', 'forwarding (last 0.25 s ago)')
    assert 'lost: none for 0.5 s' in command_status('contactor_command', contactor, 2.0)[1]
    # the log's text carries the last command's age when the timer expired it
    assert contactor_lost_text(contactor, contactor.age_s(2.0)).endswith(
        'sending all open (last one 1.000 s ago)')
    bleed = CommandDeadline(3.0, np.zeros(2, bool), repeat_s=3.0, start_s=0.0,
                            safe_before_first=False, repeat_fresh=False)
    assert command_status('balancing_command', bleed, 4.0)[:2] == \
        ('OK', 'no balancing_command received: no bleeding commanded')
    bleed.receive(np.ones(2, bool), 5.0)
    assert command_status('balancing_command', bleed, 9.0)[:2] == \
        ('WARN', 'balancing_command lost: none for 4.0 s: bleeding off')


def test_startup_text():
    text = startup_text('pack_a', 'socketcand vcan0@127.0.0.1:29536', [('bms', 'x.dbc')], 3, 2,
                        96, 24, 0.5, 10.0, False, 0.5, 3.0)
    assert text.startswith('pack_a: socketcand vcan0@127.0.0.1:29536, DBC bms: x.dbc, 3 '
                           'measurement and 2 command messages, 96 cells, 24 sensors')
    assert 'can_rx off' in text and '0.5 s (contactors) / 3 s (balancing)' in text
