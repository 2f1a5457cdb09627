"""bringup for real: a SIGKILLed BMS node is respawned (a new pid that publishes again) while
the simulated pack and the CAN hub keep running; a configuration error (exit 2) stops the
suite with 2 and is never respawned."""
import os
import signal
import time

import psutil
import pytest

from bms_interfaces.msg import PackMeasurement, ProtectionStatus

from .harness import LATCHED, RELIABLE
from .suite import free_port, write_profile

pytestmark = pytest.mark.ros


def start_bringup(env, tmp_path, edits=None):
    port = free_port()
    profile = write_profile(os.path.join(str(tmp_path), 'profile.yaml'),
                            edits={'can': {'port': port}, **(edits or {})})
    env.env['XDG_STATE_HOME'] = os.path.join(str(tmp_path), 'xdg_state')
    return env.start_module('bms_ros.tools.bringup', '--profile', profile, '--can-port',
                            str(port), '--balancing', 'false', '--state-dir',
                            os.path.join(str(tmp_path), 'state'), '--log-dir',
                            os.path.join(str(tmp_path), 'bringup'), name='bringup',
                            ros_args=False)


def children(bringup):
    """{module: pid} of bringup's live children (python -m <module> ...)."""
    found = {}
    for child in psutil.Process(bringup.popen.pid).children():
        try:
            argv = child.cmdline()
            if child.status() != psutil.STATUS_ZOMBIE and '-m' in argv:
                found[argv[argv.index('-m') + 1].rsplit('.', 1)[-1]] = child.pid
        except psutil.NoSuchProcess:
            pass
    return found


def wait_children(bringup, predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while True:
        found = children(bringup)
        if predicate(found):
            return found
        assert bringup.alive(), f'bringup exited while waiting for {what}\n' + \
            bringup.log_tail(40)
        assert time.monotonic() < deadline, f'{what} not seen in {timeout_s} s: {found}\n' + \
            bringup.log_tail(40)
        time.sleep(0.1)


def stamp_s(msg):
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def test_a_killed_node_is_respawned_and_the_simulated_pack_stays(ros_env, tmp_path):
    status = ros_env.subscribe(ProtectionStatus, 'protection_status', LATCHED)
    measurements = ros_env.subscribe(PackMeasurement, 'measurement', RELIABLE)
    bringup = start_bringup(ros_env, tmp_path)
    started = set()
    try:
        before = wait_children(bringup, lambda f: {'can_hub', 'pack_simulator', 'protection',
                                                   'pack_supervisor'} <= set(f), 20.0,
                               'the suite')
        started |= set(before.values())
        status.wait_for(timeout_s=30.0, what='a protection status before the kill')
        measurements.wait_for(timeout_s=20.0, what='a measurement before the kill')
        os.kill(before['protection'], signal.SIGKILL)
        killed_wall_s = time.time()
        status.clear()
        after = wait_children(bringup, lambda f: f.get('protection', before['protection'])
                              != before['protection'], 20.0, 'a new protection process')
        started |= set(after.values())
        # the new process publishes (stamped after the kill: not a late sample of the old one)
        status.wait_for(lambda s: stamp_s(s) > killed_wall_s, timeout_s=25.0,
                        what='a protection status from the respawned node')
        assert children(bringup)['protection'] == after['protection']
        # the simulated pack and the hub were not torn down, nor the other nodes
        now = children(bringup)
        for name in ('can_hub', 'pack_simulator', 'can_driver', 'state_estimator',
                     'pack_supervisor'):
            assert now[name] == before[name], (name, before, now)
        measurements.clear()
        measurements.wait_for(timeout_s=5.0, what='measurements after the respawn')
        log = bringup.log_tail(200)
        assert (f'protection (pid {before["protection"]}) exited with signal SIGKILL; '
                'respawn 1 of 5 within 60 s in 1 s') in log, log
        assert f'protection respawned (pid {after["protection"]})' in log, log
        assert bringup.alive()
    finally:
        code = bringup.stop(timeout_s=15.0)
        for pid in started:   # bringup stops its children; this only guards against a hang
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert code == 0, bringup.log_tail(40)


def test_a_configuration_error_stops_the_suite_with_code_2_and_is_not_respawned(ros_env,
                                                                                tmp_path):
    bringup = start_bringup(ros_env, tmp_path,
                            edits={'protection': {'cell_overvoltage': {'alarm_v': 3.0}}})
    assert bringup.popen.wait(40.0) == 2, bringup.log_tail(40)
    log = bringup.log_tail(200)
    assert 'protection (pid ' in log and \
        'exited with code 2; exit code 2: configuration error, not respawned' in log, log
    assert 'protection.cell_overvoltage.alarm_v: must be above warning_v' in log, log
    assert 'respawned (pid' not in log, log
    assert 'bringup: stopping the suite: protection exited with code 2' in log, log
