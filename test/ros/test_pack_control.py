"""Control style (b): a pack with its own BMS (statereq_bms.dbc), the pack_report node in its
own process on the hub, the pack's BMS played from this process.

request_state DRIVE must reach the bus as the pack's state-request value, the pack's report must
come back as pack_state / estimate / protection_status / battery_state, and a stale report must
read unknown and safe (ERROR named UNKNOWN, health UNKNOWN, limits 0, DRIVE refused).
"""
import math
import os
import threading
import time

import can
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import BatteryState

from bms_interfaces.msg import BatteryEstimate, PackState, ProtectionStatus
from bms_interfaces.srv import RequestState
from bms_ros.core.can_bus import quiet_socketcand_logging
from bms_ros.core.can_codec import CanProtocol, PackEncoder
from bms_ros.core.pack_report import ReportEncoder, decode_request
from bms_ros.graph import SECOND_OPINION_REMAPS
from test.ros.harness import LATCHED, RELIABLE
from test.ros.test_can_driver import start_hub
from test.ros.test_vendor_layouts import VENDORS, write_profile

pytestmark = pytest.mark.ros

NORMAL_RAW = 2            # VCU_StateRequest.RequestedState 'Normal' in statereq_bms.dbc
STANDBY_RAW = 1


class FakePackBms:
    """The pack's own BMS: follows the state request (PRECHARGE 0.3 s, then DRIVE) and sends
    its report every 0.1 s; ``paused`` stops the report (a silent pack).
    """

    def __init__(self, port, values, measurement=None):
        quiet_socketcand_logging()
        protocol = CanProtocol.from_files(os.path.join(VENDORS, 'statereq_bms.dbc'),
                                          os.path.join(VENDORS, 'statereq_bms_mapping.yaml'),
                                          16, 8)
        # cells, temperatures, pack values at their periods too (PBMS_State is the report's)
        self.measurement = measurement
        self.pack_encoder = PackEncoder(protocol) if measurement else None
        self._state_id = protocol.mapping.pack_report[0].frame_id
        self.request_map = protocol.mapping.state_request
        self.encoder = ReportEncoder(protocol.mapping)
        self.values = dict(values, state='STANDBY')
        self.flags = {}
        self.requests = []        # (monotonic s, raw RequestedState)
        self.paused = False
        self.running = True
        self._drive_since = None
        self.bus = can.Bus(interface='socketcand', host='127.0.0.1', port=port, channel='vcan0')
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        next_report = time.monotonic()
        while self.running:
            msg = self.bus.recv(0.01)
            now = time.monotonic()
            if msg is not None and decode_request(self.request_map, msg) is not None:
                raw = self.request_map.dbc_message.decode(bytes(msg.data), decode_choices=False)
                self.requests.append((now, raw['RequestedState']))
                self._follow(raw['RequestedState'], now)
            if self.pack_encoder is not None and not self.paused:
                for frame in self.pack_encoder.due_frames(now, self.measurement):
                    if frame.arbitration_id != self._state_id:
                        self.bus.send(frame)
            if now >= next_report:
                next_report = now + 0.1
                if not self.paused:
                    for frame in self.encoder.frames(self.values, self.flags):
                        self.bus.send(frame)

    def _follow(self, raw, now):
        if raw == NORMAL_RAW:
            if self._drive_since is None:
                self._drive_since = now
            closed = now - self._drive_since >= 0.3
            self.values['state'] = 'DRIVE' if closed else 'PRECHARGE'
            self.values['positive_contactor_closed'] = closed
            self.values['precharge_relay_closed'] = not closed
        else:
            self._drive_since = None
            self.values.update(state='STANDBY', positive_contactor_closed=False,
                               precharge_relay_closed=False)

    def requests_since(self, t0):
        return [raw for t, raw in list(self.requests) if t >= t0]

    def close(self):
        self.running = False
        self.thread.join(2.0)
        self.bus.shutdown()


REPORT = {'pack_soc': 0.613, 'soh_capacity': 0.934, 'charge_current_limit_a': 24.5,
          'discharge_current_limit_a': 77.3, 'negative_contactor_closed': True}


@pytest.fixture
def pack_control(ros_env, tmp_path):
    port = start_hub(ros_env)
    profile = write_profile(tmp_path, 'statereq_bms', port)
    pack = FakePackBms(port, REPORT)
    logs = {name: ros_env.subscribe(kind, name, qos)
            for name, kind, qos in (('pack_state', PackState, LATCHED),
                                    ('estimate', BatteryEstimate, RELIABLE),
                                    ('protection_status', ProtectionStatus, LATCHED),
                                    ('battery_state', BatteryState, RELIABLE))}
    ros_env.start_module('bms_ros.nodes.pack_report', params={'profile': profile})
    try:
        logs['pack_state'].wait_for(lambda m: m.state_name == 'STANDBY', timeout_s=20.0,
                                    what="the pack's STANDBY")
        yield ros_env, pack, logs
    finally:
        pack.close()


def _request(env, state):
    return env.call(RequestState, 'request_state',
                    RequestState.Request(state=state, requester='test'), timeout_s=10.0)


def test_drive_request_reaches_the_pack_and_its_report_comes_back(pack_control):
    env, pack, logs = pack_control
    # before any request the pack is asked for STANDBY at the frame period
    t0 = time.monotonic()
    deadline = t0 + 5.0
    while len(pack.requests_since(t0)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(pack.requests_since(t0)) == {STANDBY_RAW}, pack.requests_since(t0)

    t_request = time.monotonic()
    answer = _request(env, PackState.STATE_DRIVE)
    assert answer.accepted, answer.reason
    assert 'RequestedState = 2' in answer.reason
    state = logs['pack_state'].wait_for(lambda m: m.state == PackState.STATE_DRIVE,
                                        timeout_s=10.0, what="the pack's DRIVE")
    assert state.state_name == 'DRIVE' and state.requested_state == PackState.STATE_DRIVE
    assert state.positive_contactor_closed and not state.precharge_relay_closed
    assert 'Normal' in state.reason
    # the request is repeated at its period while it holds, the pack's value 'Normal' (the
    # period itself is a timing figure: bench/, not here)
    deadline = time.monotonic() + 10.0
    while pack.requests_since(t_request).count(NORMAL_RAW) < 4:
        assert time.monotonic() < deadline, pack.requests_since(t_request)
        time.sleep(0.05)    # poll interval
    sent = pack.requests_since(t_request)
    assert sent.count(NORMAL_RAW) >= 4 and STANDBY_RAW not in sent[sent.index(NORMAL_RAW):]

    for log in logs.values():
        log.clear()
    estimate = logs['estimate'].wait_for(timeout_s=5.0, what='an estimate in DRIVE')
    assert abs(estimate.pack_soc - REPORT['pack_soc']) <= 0.00005 + 1e-6      # 0.01 % steps
    assert abs(estimate.soh_capacity - REPORT['soh_capacity']) <= 0.0005 + 1e-6
    assert abs(estimate.charge_current_limit_a - 24.5) <= 0.05 + 1e-4
    assert abs(estimate.discharge_current_limit_a - 77.3) <= 0.05 + 1e-4
    assert math.isnan(estimate.pack_soc_min) and math.isnan(estimate.remaining_charge_ah)
    status = logs['protection_status'].wait_for(timeout_s=5.0, what='a status in DRIVE')
    assert status.max_level == 0 and not status.trip_latched and not status.active
    battery = logs['battery_state'].wait_for(
        lambda m: m.power_supply_health == BatteryState.POWER_SUPPLY_HEALTH_GOOD, timeout_s=5.0)
    assert abs(battery.percentage - REPORT['pack_soc']) <= 0.00005 + 1e-6 and battery.present

    # the pack raises an over-temperature error: a latched trip, health OVERHEAT, limits 0
    pack.flags = {'overtemperature': 1}
    status = logs['protection_status'].wait_for(lambda m: m.trip_latched, timeout_s=5.0,
                                                what='the pack\'s error as a trip')
    assert [e.limit_id for e in status.active] == ['overtemperature']
    assert status.charge_current_limit_a == 0.0 and status.discharge_current_limit_a == 0.0
    logs['battery_state'].wait_for(
        lambda m: m.power_supply_health == BatteryState.POWER_SUPPLY_HEALTH_OVERHEAT,
        timeout_s=5.0)


def test_a_stale_report_reads_unknown_and_refuses_drive(pack_control):
    env, pack, logs = pack_control
    pack.paused = True
    for log in logs.values():
        log.clear()        # the messages from before the pack came up also read UNKNOWN
    state = logs['pack_state'].wait_for(lambda m: m.state_name == 'UNKNOWN', timeout_s=5.0,
                                        what='UNKNOWN once the report stops')
    assert state.state == PackState.STATE_ERROR and 'stale' in state.reason
    logs['battery_state'].wait_for(
        lambda m: m.power_supply_health == BatteryState.POWER_SUPPLY_HEALTH_UNKNOWN
        and not m.present and m.percentage == 0.0, timeout_s=5.0)   # NaN policy: "low"
    logs['estimate'].wait_for(lambda m: m.charge_current_limit_a == 0.0
                              and m.discharge_current_limit_a == 0.0
                              and math.isnan(m.pack_soc), timeout_s=5.0)
    status = logs['protection_status'].wait_for(
        lambda m: any(e.limit_id == 'pack_report_stale' and e.level == 3 for e in m.active),
        timeout_s=5.0)
    assert status.max_level == 3
    answer = _request(env, PackState.STATE_DRIVE)
    assert not answer.accepted and 'stale' in answer.reason
    assert answer.state == PackState.STATE_ERROR
    # the report resumes: the pack's own state again
    pack.paused = False
    logs['pack_state'].wait_for(lambda m: m.state_name == 'STANDBY'
                                and m.header.stamp.sec > state.header.stamp.sec, timeout_s=5.0)


def test_our_estimator_and_protection_as_a_second_opinion(ros_env, tmp_path):
    """Our estimator and protection run beside the pack's BMS with their outputs under own/
    (graph.py's remaps): the pack's SoC on estimate, ours on own/estimate, and their
    difference beyond can.pack_bms.soc_bound on /diagnostics.
    """
    port = start_hub(ros_env)
    profile = write_profile(tmp_path, 'statereq_bms', port, sections=('protection', 'estimator'))
    cells = [3.30] * 16
    measurement = {'cell_voltages_v': cells, 'temperatures_degc': [25.0] * 8,
                   'pack_current_a': -2.0, 'pack_voltage_v': sum(cells),
                   'link_voltage_v': 0.0, 'negative_contactor_closed': True,
                   'positive_contactor_closed': False, 'precharge_relay_closed': False}
    # an LFP pack at 3.30 V per cell at rest is nowhere near empty: the pack says 2 %
    pack = FakePackBms(port, dict(REPORT, pack_soc=0.02), measurement)
    try:
        estimate = ros_env.subscribe(BatteryEstimate, 'estimate')
        own = ros_env.subscribe(BatteryEstimate, 'own/estimate')
        own_status = ros_env.subscribe(ProtectionStatus, 'own/protection_status', LATCHED)
        diagnostics = ros_env.subscribe(DiagnosticArray, '/diagnostics')
        remaps = dict(SECOND_OPINION_REMAPS)
        ros_env.start_module('bms_ros.nodes.can_driver', params={'profile': profile})
        ros_env.start_module('bms_ros.nodes.pack_report', params={'profile': profile})
        ros_env.start_module('bms_ros.nodes.state_estimator', remaps=remaps,
                             params={'profile': profile, 'state_dir': str(tmp_path / 'state')})
        ros_env.start_module('bms_ros.nodes.protection', remaps=remaps,
                             params={'profile': profile, 'state_dir': str(tmp_path / 'state')})
        ours = own.wait_for(lambda m: math.isfinite(m.pack_soc) and m.pack_soc > 0.1,
                            timeout_s=25.0, what='our own estimate')
        own_status.wait_for(timeout_s=10.0, what='our own protection status')

        def second_opinion(array):
            return next((s for s in array.status if s.name.endswith('second opinion')), None)
        def disagreeing(array):
            status = second_opinion(array)
            return [] if status is None else next(
                kv.value for kv in status.values if kv.key == 'disagreeing').split()
        warn = diagnostics.wait_for(lambda a: 'pack_soc' in disagreeing(a), timeout_s=10.0,
                                    what='the SoC disagreement on /diagnostics')
        status = second_opinion(warn)
        assert status.level == DiagnosticStatus.WARN
        values = {kv.key: kv.value for kv in status.values}
        assert abs(float(values['pack_soc']) - 0.02) <= 0.00005 + 1e-6
        assert abs(float(values['own_soc']) - ours.pack_soc) < 0.05
        assert 'pack_soc pack 0.02 vs ours' in status.message
        # estimate carries only the pack's values: ours never reach it
        pack_estimates = estimate.wait_count(5, timeout_s=10.0)
        assert all(math.isnan(m.pack_soc_min) for m in pack_estimates)
        assert all(abs(m.pack_soc - 0.02) <= 0.00005 + 1e-6 for m in pack_estimates
                   if math.isfinite(m.pack_soc))
    finally:
        pack.close()
