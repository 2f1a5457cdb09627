"""can_driver in its own process on the hub, with a pack played from this process
(test/support/can_pack.CanPack), both DBCs.
"""
import os
import re
import time

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from bms_interfaces.msg import BalancingCommand, CanFrame, ContactorCommand, PackMeasurement
from bms_ros.core.can_codec import CanProtocol
from bms_ros.core.profile import Profile, config_dir, default_profile_path
from test.support.can_pack import CanPack, start_hub

pytestmark = pytest.mark.ros

CAN_DIR = os.path.join(config_dir(), 'can')
PROTOCOLS = {   # dbc, mapping, quantisation steps: cell V, degC, A, pack V
    'bms_ros': ('bms_ros.dbc', 'bms_ros_mapping.yaml', (0.001, 0.1, 0.001, 0.01)),
    'alt_bms': ('alt_bms.dbc', 'alt_bms_mapping.yaml', (0.0001, 1.0, 0.001, 0.1)),
}


def write_profile(tmp_path, name):
    """The LFP profile's pack with the CAN protocol ``name`` (absolute paths)."""
    source = Profile(default_profile_path())
    with open(source.path, encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    pack = dict(data['pack'])
    pack['cell'] = os.path.join(os.path.dirname(source.path), pack['cell'])
    dbc, mapping, _ = PROTOCOLS[name]
    can_section = dict(data.get('can', {}), dbc=os.path.join(CAN_DIR, dbc),
                       mapping=os.path.join(CAN_DIR, mapping))
    path = tmp_path / f'profile_{name}.yaml'
    path.write_text(yaml.safe_dump({'pack': pack, 'can': can_section}))
    return str(path), source.pack


def pack_state(cells, sensors):
    rng = np.random.default_rng(7)
    return dict(
        cell_voltages_v=rng.uniform(3.0, 3.5, cells),
        temperatures_degc=rng.uniform(5.0, 45.0, sensors),
        pack_current_a=-42.4242, pack_voltage_v=52.345, link_voltage_v=51.987,
        negative_contactor_closed=True, positive_contactor_closed=False,
        precharge_relay_closed=True, cell_balancing=np.arange(cells) % 5 == 1)


def all_fresh(msg):
    return (all(msg.cell_voltage_valid) and all(msg.temperature_valid)
            and not (msg.cell_voltages_stale or msg.temperatures_stale or msg.current_stale
                     or msg.contactors_stale))


@pytest.mark.parametrize('name', PROTOCOLS)
def test_driver_decodes_the_pack_and_sends_commands(ros_env, tmp_path, name):
    profile_path, pack = write_profile(tmp_path, name)
    cells, sensors = pack.cells_series, pack.temperature_sensors
    port = start_hub(ros_env)
    measurements = ros_env.subscribe(PackMeasurement, 'measurement')
    frames = ros_env.subscribe(CanFrame, 'can_rx')
    diagnostics = ros_env.subscribe(DiagnosticArray, '/diagnostics')
    ros_env.start_module('bms_ros.nodes.can_driver',
                         params={'profile': profile_path, 'port': port, 'publish_rate_hz': 20.0})
    dbc, mapping, (cell_step, temp_step, current_step, voltage_step) = PROTOCOLS[name]
    protocol = CanProtocol.from_files(os.path.join(CAN_DIR, dbc), os.path.join(CAN_DIR, mapping),
                                      cells, sensors)
    state = pack_state(cells, sensors)
    player = CanPack(protocol, port, state)
    try:
        # PackMeasurement has no balancing_stale flag, so the bleed feedback (its own frame group,
        # 0.2 s on alt_bms) is waited for by value: the other groups can all be fresh before it
        expected_bleed = state['cell_balancing'].tolist()
        msg = measurements.wait_for(
            lambda m: all_fresh(m) and list(m.cell_balancing) == expected_bleed,
            timeout_s=15.0, what='a complete measurement with the bleed feedback')
        np.testing.assert_allclose(msg.cell_voltages_v, state['cell_voltages_v'],
                                   atol=cell_step / 2 + 1e-6)
        np.testing.assert_allclose(msg.temperatures_degc, state['temperatures_degc'],
                                   atol=temp_step / 2 + 1e-5)
        assert msg.pack_current_a == pytest.approx(-42.4242, abs=current_step / 2 + 1e-5)
        assert msg.pack_voltage_v == pytest.approx(52.345, abs=voltage_step / 2 + 1e-4)
        assert msg.link_voltage_v == pytest.approx(51.987, abs=voltage_step / 2 + 1e-4)
        assert (msg.negative_contactor_closed, msg.positive_contactor_closed,
                msg.precharge_relay_closed) == (True, False, True)
        assert msg.frames_received > 0 and msg.frames_rejected == 0
        assert msg.cell_voltages_stamp.sec > 0 and msg.current_stamp.sec > 0

        # every received frame on can_rx, with the ids of the DBC
        ids = {m.frame_id for m in protocol.measurement_messages}
        frame = frames.wait_for(lambda f: f.id in ids, what='a pack frame on can_rx')
        assert frame.is_extended == (name == 'alt_bms') and 1 <= frame.dlc <= 8

        # a contactor command on ROS arrives on the bus as the right frame
        command = ContactorCommand(negative_closed=True, precharge_closed=True,
                                   positive_closed=False, reason='test')
        publisher = ros_env.publisher(ContactorCommand, 'contactor_command')
        ros_env.wait_for_subscribers(publisher)
        publisher.publish(command)
        player.wait_command(lambda c: c == {'kind': 'contactor', 'negative_closed': True,
                                            'precharge_closed': True, 'positive_closed': False},
                            ros_env)
        bleed = np.zeros(cells, dtype=bool)
        bleed[[0, 3, cells - 1]] = True
        balancing = ros_env.publisher(BalancingCommand, 'balancing_command')
        ros_env.wait_for_subscribers(balancing)
        balancing.publish(BalancingCommand(cell_bleed=bleed.tolist()))
        player.wait_command(lambda c: c['kind'] == 'balancing'
                            and c['cell_bleed'].tolist() == bleed.tolist(), ros_env)

        # an open wire (NaN at the pack) reads as invalid, the rest stays valid
        state['cell_voltages_v'][3] = np.nan
        measurements.clear()
        msg = measurements.wait_for(lambda m: not m.cell_voltage_valid[3],
                                    what='cell 3 invalid')
        assert np.isnan(msg.cell_voltages_v[3]) and sum(msg.cell_voltage_valid) == cells - 1

        # the pack falls silent: everything goes stale. The diagnostics of before the pause are
        # dropped: one published before the first frames read 'stale: cell_voltages, ...' too
        diagnostics.clear()
        player.paused = True
        # a group reads stale once its oldest element is; each cell block is its own frame,
        # stamped when its batch was read, so a later block's cells go invalid a moment later
        msg = measurements.wait_for(lambda m: m.cell_voltages_stale and m.current_stale
                                    and not any(m.cell_voltage_valid),
                                    what='stale groups, every cell invalid')
        assert np.isnan(msg.pack_current_a)     # one frame carries the whole current group

        status = diagnostics.wait_for(
            lambda d: any('CAN bus' in s.name and 'cell_voltages' in s.message
                          for s in d.status), what='diagnostics reporting stale cells')
        values = {kv.key: kv.value for kv in status.status[0].values}
        assert values['bus_state'] == 'connected'
        assert int(values['frames_received']) > 0
        assert int(values['values_invalid_marker']) > 0
        assert int(values['rejected_unknown_id']) == 0
    finally:
        player.close()


def test_bad_parameter_exits_with_code_2(ros_env):
    process = ros_env.start_module('bms_ros.nodes.can_driver', params={'interface': 'vcan'})
    process.popen.wait(20.0)
    assert process.popen.returncode == 2, process.log_tail()
    assert 'parameter: interface: expected one of' in process.log_tail()


ALL_OPEN = {'kind': 'contactor', 'negative_closed': False, 'precharge_closed': False,
            'positive_closed': False}
DRIVE = {'kind': 'contactor', 'negative_closed': True, 'precharge_closed': False,
         'positive_closed': True}


def _status(diagnostics, topic, predicate, what):
    """The latest DiagnosticStatus of the driver named ``...: topic`` matching ``predicate``."""
    array = diagnostics.wait_for(
        lambda d: any(s.name.endswith(f': {topic}') and predicate(s) for s in d.status),
        timeout_s=10.0, what=what)
    return next(s for s in array.status if s.name.endswith(f': {topic}'))


def test_lost_contactor_command_stream_opens_all_within_the_deadline(ros_env, tmp_path):
    """The supervisor stand-in stops publishing: all-open frames on the bus, then resume."""
    profile_path, pack = write_profile(tmp_path, 'bms_ros')
    deadline_s, period_s = 0.5, 0.1          # can.command_deadline_s, the command period
    port = start_hub(ros_env)
    diagnostics = ros_env.subscribe(DiagnosticArray, '/diagnostics')
    ros_env.start_module('bms_ros.nodes.can_driver', params={'profile': profile_path,
                                                             'port': port})
    protocol = CanProtocol.from_files(os.path.join(CAN_DIR, 'bms_ros.dbc'),
                                      os.path.join(CAN_DIR, 'bms_ros_mapping.yaml'),
                                      pack.cells_series, pack.temperature_sensors)
    player = CanPack(protocol, port, pack_state(pack.cells_series,
                                                   pack.temperature_sensors))
    publisher = ros_env.publisher(ContactorCommand, 'contactor_command')
    command = ContactorCommand(negative_closed=True, precharge_closed=False,
                               positive_closed=True, reason='probe')
    balancing = ros_env.publisher(BalancingCommand, 'balancing_command')
    bleed = np.arange(pack.cells_series) % 3 == 0
    try:
        ros_env.wait_for_subscribers(publisher)
        ros_env.wait_for_subscribers(balancing)
        # the driver's all-open stream before the first command reaches the player: the route
        # driver -> hub -> player is live, so the one-shot balancing frame below (sent once,
        # not repeated) cannot go out before the player is on the bus
        player.wait_arrival(lambda c: c == ALL_OPEN, 0.0, ros_env, timeout_s=20.0)
        start = time.monotonic()
        balancing.publish(BalancingCommand(cell_bleed=bleed.tolist()))   # once, then silence
        for _ in range(10):                  # 1 s of the supervisor's 10 Hz stream
            publisher.publish(command)
            time.sleep(period_s)
        player.wait_arrival(lambda c: c == DRIVE, start, ros_env)
        _status(diagnostics, 'contactor_command',
                lambda s: s.level == DiagnosticStatus.OK and 'forwarding' in s.message,
                'contactor_command forwarding')
        last_publish = time.monotonic()      # the publisher goes quiet (supervisor died)
        opened, _ = player.wait_arrival(lambda c: c == ALL_OPEN, last_publish, ros_env)
        latency = opened - last_publish
        assert latency <= deadline_s + 2 * period_s, f'all open {latency:.3f} s after the last'
        # every contactor frame after it is all open while the stream stays lost
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            after = [c for t, c in list(player.arrivals) if t > opened
                     and c['kind'] == 'contactor']
            if len(after) >= 3:
                break
            time.sleep(period_s)
        assert len(after) >= 3 and all(c == ALL_OPEN for c in after), after
        status = _status(diagnostics, 'contactor_command',
                         # (not the start's 'no contactor_command within ... of start',
                         # which a slow start may also have sent)
                         lambda s: s.level == DiagnosticStatus.ERROR and 'lost' in s.message,
                         'contactor_command ERROR on /diagnostics')
        assert 'contactor_command lost' in status.message and 'all open' in status.message
        # a fresh command resumes forwarding at once
        resumed_at = time.monotonic()
        publisher.publish(command)
        player.wait_arrival(lambda c: c == DRIVE, resumed_at, ros_env)
        # the balancing stream went quiet after one command: no bleeding after its 3 s deadline
        sent, _ = player.wait_arrival(lambda c: c['kind'] == 'balancing'
                                      and c['cell_bleed'].tolist() == bleed.tolist(),
                                      start, ros_env)
        stopped, _ = player.wait_arrival(lambda c: c['kind'] == 'balancing'
                                         and not c['cell_bleed'].any(), sent, ros_env)
        assert 3.0 <= stopped - sent <= 3.0 + 1.0, f'no bleed {stopped - sent:.3f} s after'
    finally:
        player.close()


def test_reader_thread_failures_are_restarted_then_exit_1(ros_env, tmp_path):
    """BMS_ROS_TEST_READER_FAULTS (tests only) makes the reader's first runs raise."""
    profile_path, pack = write_profile(tmp_path, 'bms_ros')
    port = start_hub(ros_env)
    measurements = ros_env.subscribe(PackMeasurement, 'measurement')
    diagnostics = ros_env.subscribe(DiagnosticArray, '/diagnostics')
    ros_env.env['BMS_ROS_TEST_READER_FAULTS'] = '2'
    try:
        driver = ros_env.start_module('bms_ros.nodes.can_driver', name='driver_two_faults',
                                      params={'profile': profile_path, 'port': port})
    finally:
        del ros_env.env['BMS_ROS_TEST_READER_FAULTS']
    protocol = CanProtocol.from_files(os.path.join(CAN_DIR, 'bms_ros.dbc'),
                                      os.path.join(CAN_DIR, 'bms_ros_mapping.yaml'),
                                      pack.cells_series, pack.temperature_sensors)
    player = CanPack(protocol, port, pack_state(pack.cells_series,
                                                   pack.temperature_sensors))
    try:
        # restarted twice (0.1 s, 0.2 s back-off), then reading: a complete measurement
        measurements.wait_for(all_fresh, timeout_s=15.0, what='a complete measurement')
        # /diagnostics (1 Hz) also reports restarts 2 during the 0.2 s back-off (ERROR) and
        # before the first frames of every group (WARN stale): the OK report is waited for
        array = diagnostics.wait_for(
            lambda d: any('CAN bus' in s.name and s.level == DiagnosticStatus.OK and any(
                kv.key == 'reader_restarts' and kv.value == '2' for kv in s.values)
                for s in d.status), timeout_s=10.0, what='reader_restarts 2 with the bus OK')
        status = next(s for s in array.status if 'CAN bus' in s.name)
        assert status.level == DiagnosticStatus.OK, status.message
        log = driver.log_tail(200)
        assert len(re.findall(r'CAN reader thread failed: restart \d', log)) == 2, log
        assert 'RuntimeError: fault injected by BMS_ROS_TEST_READER_FAULTS' in log  # traceback
        assert driver.alive()
        driver.kill()
        # more than can.reader_restart_max (5) failures within 60 s: exit code 1, all open sent
        ros_env.env['BMS_ROS_TEST_READER_FAULTS'] = '1000'
        try:
            failing = ros_env.start_module('bms_ros.nodes.can_driver', name='driver_failing',
                                           params={'profile': profile_path, 'port': port})
        finally:
            del ros_env.env['BMS_ROS_TEST_READER_FAULTS']
        started = time.monotonic()
        failing.popen.wait(20.0)
        assert failing.popen.returncode == 1, failing.log_tail(60)
        log = failing.log_tail(200)
        assert len(re.findall(r'CAN reader thread failed: restart \d', log)) == 5, log
        assert 'restart budget spent' in log and 'exiting (code 1)' in log
        player.wait_arrival(lambda c: c == ALL_OPEN, started, ros_env)
    finally:
        player.close()
