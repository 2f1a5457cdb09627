"""bmsctl: the status line from messages, and clear errors when no suite is running."""
import math
import subprocess
import sys

from sensor_msgs.msg import BatteryState

from bms_interfaces.msg import (BalancingStatus, BatteryEstimate, PackMeasurement, PackState,
                                ProtectionEvent, ProtectionStatus)
from bms_ros.tools.bmsctl import VERBS, build_parser
from bms_ros.tools.status import format_status


def test_status_line_from_messages():
    latest = {
        'pack_state': PackState(state=PackState.STATE_DRIVE, state_name='DRIVE'),
        'battery_state': BatteryState(percentage=0.734, voltage=52.31, current=-12.5),
        'measurement': PackMeasurement(cell_voltages_v=[3.281, 3.305, float('nan'), 3.290],
                                       temperatures_degc=[25.0, 31.5, float('nan')]),
        'estimate': BatteryEstimate(charge_current_limit_a=23.0, discharge_current_limit_a=230.0),
        'protection_status': ProtectionStatus(max_level=3, trip_latched=True, active=[
            ProtectionEvent(limit_id='cell_overtemperature', level=3),
            ProtectionEvent(limit_id='cell_voltage_spread', level=1)]),
        'balancing_status': BalancingStatus(active=True, cell_bleed=[True, False, True, False]),
    }
    line = format_status(latest)
    assert line == ('DRIVE     | SoC  73.4% |   52.3 V   -12.5 A | cell 3.281..3.305 V '
                    '(spread  24 mV) | T max 31.5 C | limits chg 23 A dis 230 A | '
                    'TRIP cell_overtemperature | bal 2 cells')


def test_status_line_before_anything_arrives():
    assert format_status({}).startswith('waiting for the suite')
    line = format_status({'battery_state': BatteryState(percentage=math.nan)})
    assert 'SoC   n/a' in line


def test_every_verb_parses():
    parser = build_parser()
    assert parser.parse_args(['reset', '--reason', 'x']).verb == 'reset'
    assert parser.parse_args(['request', 'drive']).state == 'drive'
    assert parser.parse_args(['balancing', 'soc', '--soc-threshold', '0.01']).soc_threshold == 0.01
    assert parser.parse_args(['soc', '--set', '0.5']).set == 0.5
    assert set(VERBS) == {'status', 'reset', 'request', 'balancing', 'soc', 'record', 'replay'}


def test_clear_error_when_the_suite_is_not_running():
    # this test process's own domain: no suite runs there
    out = subprocess.run([sys.executable, '-m', 'bms_ros.tools.bmsctl', 'request', 'drive',
                          '--namespace', 'nobody', '--timeout', '0.5'],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 3
    assert 'no service /nobody/request_state after 0.5 s: is the suite running' in out.stderr
