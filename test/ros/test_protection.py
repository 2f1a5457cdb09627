"""The protection node in its own process: trips reach other subscribers (also late ones),
reset is refused while hot and granted after cooling, latched trips survive a kill."""
import os
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from bms_interfaces.msg import PackMeasurement, ProtectionEvent, ProtectionStatus
from bms_interfaces.srv import ResetTrips

from .harness import LATCHED, RELIABLE
from .pack_plant import FakePack, write_profile

pytestmark = pytest.mark.ros

TRIP = 3


def start_protection(env, tmp_path, **edits):
    profile = write_profile(tmp_path, protection=edits)
    state_dir = os.path.join(str(tmp_path), 'state')
    env.start_module('bms_ros.nodes.protection', name='protection',
                     params={'profile': profile, 'state_dir': state_dir})
    return state_dir


def reset(env, requester='test', reason='test'):
    return env.call(ResetTrips, 'reset_trips', ResetTrips.Request(requester=requester,
                                                                  reason=reason))


def is_trip(limit_id, index):
    return lambda e: (e.limit_id == limit_id and e.index == index and e.level == TRIP
                      and e.active and e.latched)


def test_trip_reaches_a_subscriber_and_a_late_joiner(ros_env, tmp_path):
    start_protection(ros_env, tmp_path)
    events = ros_env.subscribe(ProtectionEvent, 'trip_event', LATCHED)
    status = ros_env.subscribe(ProtectionStatus, 'protection_status', LATCHED)
    diagnostics = ros_env.subscribe(DiagnosticArray, '/diagnostics', RELIABLE)
    pack = FakePack(ros_env)
    ros_env.wait_for_subscribers(pack.measurement_pub, timeout_s=20.0)
    pack.start()
    status.wait_for(lambda s: not s.trip_latched and s.charge_current_limit_a == 100.0,
                    timeout_s=10.0, what='a healthy status')
    cells = [3.3] * 16
    cells[3] = 3.8
    pack.set(cells_v=cells)
    trip = events.wait_for(is_trip('cell_overvoltage', 3), timeout_s=10.0, what='the trip')
    assert trip.message == 'cell 3 over-voltage 3.800 V >= trip 3.750 V'
    assert (trip.value, trip.threshold, trip.unit) == (pytest.approx(3.8), pytest.approx(3.75),
                                                       'V')
    latched = status.wait_for(lambda s: s.trip_latched, timeout_s=5.0, what='latched status')
    assert latched.max_level == TRIP
    assert (latched.charge_current_limit_a, latched.discharge_current_limit_a) == (0.0, 0.0)
    assert any(e.latched and e.limit_id == 'cell_overvoltage' for e in latched.active)
    # a subscriber that joins after the trip still gets it (transient-local)
    late = ros_env.subscribe(ProtectionEvent, 'trip_event', LATCHED)
    assert late.wait_for(is_trip('cell_overvoltage', 3), timeout_s=10.0,
                         what='the trip, late').message == trip.message
    diag = diagnostics.wait_for(
        lambda a: any(s.level == DiagnosticStatus.ERROR for s in a.status), timeout_s=5.0,
        what='ERROR diagnostics')
    assert 'trip latched' in diag.status[0].message
    pack.stop()


def test_reset_refused_while_hot_and_granted_after_cooling(ros_env, tmp_path):
    state_dir = start_protection(ros_env, tmp_path,
                                 charge_overtemperature={'reset_cooldown_s': 2.0})
    events = ros_env.subscribe(ProtectionEvent, 'trip_event', LATCHED)
    status = ros_env.subscribe(ProtectionStatus, 'protection_status', LATCHED)
    pack = FakePack(ros_env)
    ros_env.wait_for_subscribers(pack.measurement_pub, timeout_s=20.0)
    pack.start()
    status.wait_for(lambda s: not s.trip_latched, timeout_s=10.0, what='a healthy status')
    hot = [30.0] * 8
    hot[2] = 47.0
    pack.set(temperatures_degc=hot, current_a=5.0)            # charging at 47 degC
    events.wait_for(is_trip('charge_overtemperature', 2), timeout_s=10.0, what='the trip')
    pack.set(current_a=0.0)                                   # charging stopped, still hot
    time.sleep(0.3)
    answer = reset(ros_env, 'vehicle_ecu', 'driver pressed reset')
    assert not answer.success
    assert answer.message == ('refused: still latched: charge_overtemperature[2] '
                              '(condition still present: 47.0 degC)')
    assert list(answer.still_latched) == ['charge_overtemperature']
    pack.set(temperatures_degc=[30.0] * 8)                    # cooled below 45 - 2 degC
    time.sleep(0.3)
    answer = reset(ros_env, 'vehicle_ecu', 'cooled?')
    assert not answer.success and 'cool-down running' in answer.message
    deadline = time.monotonic() + 10.0
    while not answer.success and time.monotonic() < deadline:
        time.sleep(0.5)
        answer = reset(ros_env, 'service_tool', 'pack cooled down')
    assert (answer.success, answer.message) == (True, 'reset charge_overtemperature[2]')
    cleared = events.wait_for(lambda e: e.limit_id == 'charge_overtemperature' and
                              e.level == TRIP and not e.active, timeout_s=5.0, what='clear')
    assert cleared.message == 'charge_overtemperature[2] reset by service_tool'
    status.clear()
    assert not status.wait_for(timeout_s=5.0).trip_latched
    log = open(os.path.join(state_dir, 'reset_requests.log')).read().splitlines()
    assert "requester='vehicle_ecu' reason='driver pressed reset' success=False" in log[0]
    assert "requester='service_tool' reason='pack cooled down' success=True" in log[-1]
    pack.stop()


def test_latched_trip_survives_a_killed_and_restarted_protection(ros_env, tmp_path):
    start_protection(ros_env, tmp_path)
    events = ros_env.subscribe(ProtectionEvent, 'trip_event', LATCHED)
    pack = FakePack(ros_env)
    ros_env.wait_for_subscribers(pack.measurement_pub, timeout_s=20.0)
    pack.start()
    pack.set(current_a=-1600.0)                               # short circuit: instant trip
    events.wait_for(is_trip('discharge_overcurrent', -1), timeout_s=10.0, what='the trip')
    time.sleep(0.3)                                           # let it reach the disk
    ros_env.processes[0].kill()                               # SIGKILL, as a crash
    pack.set(current_a=0.0)
    events.clear()
    start_protection(ros_env, tmp_path)
    restored = events.wait_for(is_trip('discharge_overcurrent', -1), timeout_s=20.0,
                               what='the restored trip')
    assert restored.message == ('pack discharge over-current 1600.0 A >= trip 1500.0 A '
                                '(restored after restart, reset required)')
    status = ros_env.subscribe(ProtectionStatus, 'protection_status', LATCHED)
    status.wait_for(lambda s: s.trip_latched, timeout_s=10.0, what='latched after restart')
    # over-current has a 30 s cool-down in the profile: the trip stays latched meanwhile
    deadline = time.monotonic() + 10.0
    answer = reset(ros_env, 'test', 'after restart')
    while 'no measurement since start' in answer.message and time.monotonic() < deadline:
        time.sleep(0.3)   # until the new process has matched our measurement publisher
        answer = reset(ros_env, 'test', 'after restart')
    assert not answer.success
    assert answer.message.startswith('refused: still latched: discharge_overcurrent (cool-down '
                                     'running: ')
    pack.stop()


def test_malformed_measurements_are_counted_not_fatal(ros_env, tmp_path):
    start_protection(ros_env, tmp_path)
    status = ros_env.subscribe(ProtectionStatus, 'protection_status', LATCHED)
    pub = ros_env.publisher(PackMeasurement, 'measurement')
    ros_env.wait_for_subscribers(pub, timeout_s=20.0)
    bad = PackMeasurement(cell_voltages_v=[3.3] * 15, cell_voltage_valid=[True] * 15,
                          temperatures_degc=[25.0] * 8, temperature_valid=[True] * 8)
    for _ in range(3):
        pub.publish(bad)
    got = status.wait_for(lambda s: s.measurements_rejected == 3, timeout_s=10.0,
                          what='3 rejected')
    assert not got.trip_latched
    assert ros_env.processes[0].alive()


def test_bad_configuration_exits_with_code_2_before_publishing(ros_env, tmp_path):
    profile = write_profile(tmp_path, protection={'cell_overvoltage': {'alarm_v': 3.0}})
    process = ros_env.start_module('bms_ros.nodes.protection', name='protection',
                                   params={'profile': profile})
    assert process.popen.wait(20.0) == 2
    assert f'{profile}: protection.cell_overvoltage.alarm_v: must be above warning_v (3.62), ' \
           f'got 3.0' in process.log_tail()
