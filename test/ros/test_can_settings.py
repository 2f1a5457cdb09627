"""issue 15 item 7 for real: bringup with no CAN argument uses the profile's `can:` section (its
hub port; the driver and the simulated pack meet there), and a second pack whose profile holds
a taken port gets a free one for its hub, simulator and driver.
"""
import socket
import subprocess
import sys

import pytest

from bms_interfaces.msg import PackMeasurement

from .suite import free_port, write_profile

pytestmark = pytest.mark.ros


def listening(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=0.5):
            return True
    except OSError:
        return False


def start_bringup(ros_env, tmp_path, profile, namespace):
    log = open(tmp_path / f'bringup_{namespace}.txt', 'wb')
    return subprocess.Popen(
        [sys.executable, '-m', 'bms_ros.tools.bringup', '--profile', profile, '--namespace',
         namespace, '--balancing', 'false', '--log-dir', str(tmp_path / namespace),
         '--state-dir', str(tmp_path / 'state')],
        env=dict(ros_env.env, XDG_STATE_HOME=str(tmp_path / 'xdg')), stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True), log


def stop(process):
    if process.poll() is None:
        process.send_signal(2)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_profile_port_is_used_and_a_second_pack_gets_a_free_one(ros_env, tmp_path):
    port = free_port()
    profile = write_profile(tmp_path / 'profile.yaml', edits={'can': {'port': port}})
    first, first_log = start_bringup(ros_env, tmp_path, profile, 'pack_a')
    second = None
    try:
        measurements = ros_env.subscribe(PackMeasurement, '/pack_a/measurement')
        # the driver read the simulated pack through the hub on the profile's port
        measurements.wait_for(lambda m: not m.cell_voltages_stale and not m.current_stale,
                              timeout_s=40.0, what='pack_a measurements through the hub')
        assert listening(port)
        second, second_log = start_bringup(ros_env, tmp_path, profile, 'pack_b')
        other = ros_env.subscribe(PackMeasurement, '/pack_b/measurement')
        other.wait_for(lambda m: not m.cell_voltages_stale and not m.current_stale,
                       timeout_s=40.0, what='pack_b measurements through its own hub')
        assert first.poll() is None and second.poll() is None
        with open(tmp_path / 'bringup_pack_b.txt', 'rb') as stream:
            text = stream.read().decode(errors='replace')
        assert f'CAN hub port 127.0.0.1:{port} is taken (another suite?); using 127.0.0.1:' \
            in text, text
        chosen = int(text.split('using 127.0.0.1:')[1].split()[0])
        assert chosen != port and listening(chosen)
        # each pack's logs in its own folder; each driver on its own hub
        for namespace, expected in (('pack_a', port), ('pack_b', chosen)):
            with open(tmp_path / namespace / 'can_driver.log', 'rb') as stream:
                log = stream.read().decode(errors='replace')
            assert f'CAN bus socketcand vcan0@127.0.0.1:{expected} open' in log, log
            assert log.startswith('--- bringup: start at ')
    finally:
        if second is not None:
            stop(second)
            second_log.close()
        stop(first)
        first_log.close()
