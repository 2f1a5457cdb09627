"""bmsctl: the status line and the full-screen view from messages (bms_ros.core.operator_view,
no ROS graph), argument checks, and clear errors or a quiet exit when no suite runs.
"""
import math
import signal
import subprocess
import sys
import time

import psutil
import pytest
from sensor_msgs.msg import BatteryState

from bms_interfaces.msg import (
    BalancingStatus,
    BatteryEstimate,
    PackMeasurement,
    PackState,
    ProtectionEvent,
    ProtectionStatus,
)
from bms_ros.core import operator_view as view
from bms_ros.tools.bmsctl import VERBS, build_parser
from bms_ros.tools.bmsctl.sim import load_value, negative_load_last
from bms_ros.tools.status import message_to_dict


def latest_of(state='DRIVE', current=-12.5, events=(), max_level=0, cells=None):
    """Message dicts as the monitor keeps them, built from real messages."""
    cells = [3.281, 3.305, float('nan'), 3.290] if cells is None else cells
    messages = {
        'pack_state': PackState(state=getattr(PackState, f'STATE_{state}'), state_name=state,
                                requested_state=PackState.STATE_DRIVE, reason='pre-charge done',
                                negative_contactor_closed=True, positive_contactor_closed=True),
        'battery_state': BatteryState(percentage=0.734, voltage=52.31, current=current),
        'measurement': PackMeasurement(cell_voltages_v=cells,
                                       cell_voltage_valid=[True, True, False, True],
                                       temperatures_degc=[25.0, 31.5, float('nan')]),
        'estimate': BatteryEstimate(charge_current_limit_a=23.0, discharge_current_limit_a=230.0,
                                    soh_capacity=0.97, soh_resistance=1.1),
        'protection_status': ProtectionStatus(
            max_level=max_level, trip_latched=max_level == 3, active=list(events),
            charge_current_limit_a=20.0, discharge_current_limit_a=200.0),
        'balancing_status': BalancingStatus(active=True, cell_bleed=[True, False, True, False]),
    }
    return {name: message_to_dict(msg) for name, msg in messages.items()}


def event(limit_id, level, index=-1, message=''):
    return ProtectionEvent(limit_id=limit_id, level=level, index=index, message=message,
                           active=True)


def test_the_default_line_holds_the_fields_that_matter_in_80_columns():
    line = view.status_line(latest_of())
    assert line == 'DRIVE     | SoC 73.4% | -12.5A | 3.281-3.305V | T 31.5C | lim +20/-200A | ok'
    assert len(line) <= 80


@pytest.mark.parametrize('state', ['PRECHARGE', 'STANDBY', 'ERROR'])
def test_trips_keep_their_names_within_80_columns(state):
    trips = [event('cell_overvoltage', 3, i, f'cell {i} over-voltage') for i in range(12)]
    trips += [event('discharge_overtemperature', 3, 2), event('temperature_spread', 1)]
    line = view.status_line(latest_of(state, current=-1234.5, events=trips, max_level=3))
    assert len(line) <= 80, line
    assert line.startswith(f'{state:<9} | SoC 73.4%')
    assert '| TRIP cell_overvoltage[0]' in line                      # names first, then +N
    shown = line.split('| TRIP ')[1].split(' +')[0].split(',')
    assert line.endswith(f' +{13 - len(shown)}')                     # 13 at TRIP
    assert shown == [f'cell_overvoltage[{i}]' for i in range(len(shown))]
    one = view.status_line(latest_of(state, events=[event('cell_overvoltage', 3, 3)],
                                     max_level=3))
    assert one.endswith('| TRIP cell_overvoltage[3]') and len(one) <= 80


def test_wide_and_chosen_fields():
    latest = latest_of(events=[event('cell_voltage_spread', 1)], max_level=1)
    wide = view.status_line(latest, view.WIDE_FIELDS, None)
    for text in ('req DRIVE', 'SoH 97%', '52.3V', 'spread 24mV', 'Tmin 25.0C',
                 'NEG+POS closed', 'bal 2 cells', 'WARN cell_voltage_spread', 'pre-charge done'):
        assert text in wide, (text, wide)
    assert view.status_line(latest, view.parse_fields('state,voltage'), None) == \
        'DRIVE     | 52.3V'
    with pytest.raises(ValueError, match='unknown field.*bogus'):
        view.parse_fields('state,bogus')


def test_missing_inputs_are_named_with_their_node():
    latest = latest_of()
    assert view.missing_text(latest, view.DEFAULT_FIELDS) == ''
    latest['estimate'] = latest['protection_status'] = None
    assert view.missing_text(latest, view.DEFAULT_FIELDS) == 'protection_status (from protection)'
    assert 'estimate (from state_estimator)' in view.missing_text(latest, view.WIDE_FIELDS)
    assert view.status_line({}).startswith('waiting for the suite')
    nan = latest_of()
    nan['battery_state']['percentage'] = math.nan
    assert 'SoC n/a%' in view.status_line(nan)


def test_full_screen_panels_show_cells_temperatures_limits_trips_and_events():
    trips = [event('cell_overvoltage', 3, 1, 'cell 1 over-voltage 3.760 V >= trip 3.750 V')]
    latest = latest_of(events=trips, max_level=3)
    events = [message_to_dict(ProtectionEvent(limit_id='cell_overvoltage', level=3, index=1,
                                              active=True, message='cell 1 over-voltage'))]
    panels = dict(view.view_panels(latest, events, width=100))
    cells = panels['cell voltages (* bleeding)']
    assert cells[0].startswith('min 3.281 V (cell 0)  max 3.305 V (cell 1)  spread 24 mV')
    rows = ' '.join(cells[1:])
    assert '  0 3.281 ' in rows and '  2  NaN  ???' in rows        # invalid cell: no bar
    bar0 = rows.split('  0 3.281 ')[1].split()[0]
    bar1 = rows.split('  1 3.305 ')[1].split()[0]
    assert bar0.count('#') < bar1.count('#')                      # the higher cell, longer
    assert bar0.endswith('*')                                      # cell 0 bleeds
    assert panels['temperatures'][0] == 'min 25.0 C  max 31.5 C  spread 6.5 K'
    assert 'T2:   NaN' in panels['temperatures'][1]
    limits = panels['current limits']
    assert 'allowed (protection): charge 20.0 A, discharge 200.0 A' in limits
    protection = panels['protection']
    assert protection[0].startswith('TRIP  trip latched: reset with')
    assert 'TRIP  cell_overvoltage[1]: cell 1 over-voltage 3.760 V >= trip 3.750 V' in protection
    pack = panels['pack']
    assert 'contactors: feedback NEG+POS closed' in pack[2]
    assert 'SoH capacity 97.0 %' in pack[4]
    assert panels['recent events'][0].endswith('TRIP  raised  cell 1 over-voltage')
    text = view.view_text(latest, events, width=100)
    assert all(len(line) <= 100 for line in text.splitlines())


def test_cells_of_a_96s_pack_fit_in_columns():
    cells = [3.6 + 0.001 * k for k in range(96)]
    lines = view.cell_panel({'cell_voltages_v': cells, 'cell_voltage_valid': [True] * 96},
                            width=100)
    assert len(lines) == 1 + 24                                    # 4 columns of 24
    assert all(len(line) <= 100 for line in lines)


@pytest.mark.parametrize('success, message, latched, reply', [
    (True, 'reset cell_overvoltage[3]', [], 'reset granted: reset cell_overvoltage[3]'),
    (True, 'nothing latched', [], 'reset granted: nothing latched'),
    (False, 'refused: still latched: cell_overvoltage[3] (condition still present: 3.8 V)',
     ['cell_overvoltage'],
     'reset refused: still latched: cell_overvoltage[3] (condition still present: 3.8 V)'),
    (False, 'reset cell_overvoltage[3]; still latched: discharge_overcurrent (cool-down 5 s)',
     ['discharge_overcurrent'],
     'reset partly granted: cleared cell_overvoltage[3]; still latched: discharge_overcurrent '
     '(cool-down 5 s)'),
    (False, 'refused: requester is empty (say who asks)', ['cell_overvoltage'],
     'reset refused: requester is empty (say who asks) (still latched: cell_overvoltage)'),
])
def test_reset_replies_say_it_once(success, message, latched, reply):
    assert view.reset_reply(success, message, latched) == reply


def test_every_verb_parses():
    parser = build_parser()
    assert parser.parse_args(['reset', '--reason', 'x']).verb == 'reset'
    assert parser.parse_args(['request', 'drive']).state == 'drive'
    assert parser.parse_args(['balancing', 'soc', '--soc-threshold', '0.01']).soc_threshold == 0.01
    assert parser.parse_args(['balancing', 'voltage']).threshold_v is None    # keep
    assert parser.parse_args(['soc', '--set', '0.5']).set == 0.5
    assert parser.parse_args(['status', '--wide']).wide
    assert parser.parse_args(['sim', 'fault', 'contactor_welded', 'positive']).index == 1
    assert parser.parse_args(['sim', 'clear', 'all']).index == -1
    assert parser.parse_args(['sim', 'ambient', '35']).degc == 35.0
    assert parser.parse_args(['config', 'protection']).nodes == ['protection']
    assert set(VERBS) == {'status', 'top', 'reset', 'request', 'balancing', 'soc', 'sim',
                          'config', 'record', 'replay'}


@pytest.mark.parametrize('text, value', [('-20A', (-20.0, 'A')), ('15', (15.0, 'A')),
                                         ('500W', (500.0, 'W')), ('-1.5kW', (-1500.0, 'W'))])
def test_sim_load_takes_amps_or_watts(text, value):
    assert load_value(text) == value
    args = build_parser().parse_args(negative_load_last(['sim', 'load', text]))
    assert args.load == value


@pytest.mark.parametrize('argv, message', [
    (['balancing', 'voltage', '--threshold-v', '-1'], 'expected a number > 0'),
    (['balancing', 'voltage', '--hysteresis-v', 'nan'], 'expected a number > 0'),
    (['sim', 'load', '5x'], 'expected a current or power'),
    (['status', '--fields', 'state,nope'], 'unknown field'),
])
def test_bad_arguments_exit_2_with_the_reason(argv, message):
    out = subprocess.run([sys.executable, '-m', 'bms_ros.tools.bmsctl', *argv],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_clear_error_when_the_suite_is_not_running():
    # this test process's own domain: no suite runs there
    out = subprocess.run([sys.executable, '-m', 'bms_ros.tools.bmsctl', 'request', 'drive',
                          '--namespace', 'nobody', '--timeout', '0.5'],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 3
    assert 'no service /nobody/request_state after 0.5 s: is the suite running' in out.stderr
    out = subprocess.run([sys.executable, '-m', 'bms_ros.tools.bmsctl', 'status', '--once',
                          '--namespace', 'nobody', '--timeout', '0.5'],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 3 and out.stdout == ''                # no partial line
    assert 'missing pack_state (from pack_supervisor), battery_state' in out.stderr


def wait_for_dds_sockets(process, timeout_s):
    """Until ``process`` has opened its DDS (UDP) sockets: rclpy is initialised, its node made
    and its signal handlers set; AssertionError after ``timeout_s`` (s).
    """
    deadline = time.monotonic() + timeout_s
    while not psutil.Process(process.pid).net_connections(kind='udp'):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f'no DDS socket after {timeout_s} s'
        time.sleep(0.05)    # poll interval


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_bmsctl_quietly(sig):
    process = subprocess.Popen([sys.executable, '-m', 'bms_ros.tools.bmsctl', 'status',
                                '--namespace', 'nobody', '--timeout', '60'],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_dds_sockets(process, timeout_s=30.0)   # inside its wait for the suite
    process.send_signal(sig)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert 'Traceback' not in err and 'Exception' not in err, err
