"""bringup for real: a SIGKILLed BMS node is respawned (a new pid that publishes again) while
the simulated pack and the CAN hub keep running; a configuration error (exit 2) stops the
suite with 2 and is never respawned.
"""
import os
import signal
import time

import pytest

from .suite import Suite

pytestmark = pytest.mark.ros


def wait_children(suite, predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while True:
        found = suite.bringup_pids()
        if predicate(found):
            return found
        assert suite.bringup.alive(), f'bringup exited while waiting for {what}\n' + \
            suite.bringup.log_tail(40)
        assert time.monotonic() < deadline, f'{what} not seen in {timeout_s} s: {found}\n' + \
            suite.bringup.log_tail(40)
        time.sleep(0.1)


def stamp_s(msg):
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def test_a_killed_node_is_respawned_and_the_simulated_pack_stays(ros_env, tmp_path):
    suite = Suite(ros_env, tmp_path, balancing=False)
    bringup = suite.start_bringup()
    started = set()
    try:
        before = wait_children(suite, lambda f: {'can_hub', 'pack_simulator', 'protection',
                                                 'pack_supervisor'} <= set(f), 20.0,
                               'the suite')
        started |= set(before.values())
        suite.status.wait_for(timeout_s=30.0, what='a protection status before the kill')
        suite.measurements.wait_for(timeout_s=20.0, what='a measurement before the kill')
        os.kill(before['protection'], signal.SIGKILL)
        killed_wall_s = time.time()
        suite.status.clear()
        after = wait_children(suite, lambda f: f.get('protection', before['protection'])
                              != before['protection'], 20.0, 'a new protection process')
        started |= set(after.values())
        # the new process publishes (stamped after the kill: not a late sample of the old one)
        suite.status.wait_for(lambda s: stamp_s(s) > killed_wall_s, timeout_s=25.0,
                              what='a protection status from the respawned node')
        # the simulated pack and the hub were not torn down, nor the other nodes
        now = suite.bringup_pids()
        assert now['protection'] == after['protection']
        for name in ('can_hub', 'pack_simulator', 'can_driver', 'state_estimator',
                     'pack_supervisor'):
            assert now[name] == before[name], (name, before, now)
        suite.measurements.clear()
        suite.measurements.wait_for(timeout_s=5.0, what='measurements after the respawn')
        log = bringup.log_tail(200)
        assert (f'protection (pid {before["protection"]}) exited with signal SIGKILL; '
                'respawn 1 of 5 within 60 s in 1 s') in log, log
        assert f'protection respawned (pid {after["protection"]})' in log, log
        assert bringup.alive()
    finally:
        # a hang guard, not a timing goal: bringup's own stop is bounded by its per-group
        # SIGINT-then-SIGKILL deadlines (2 x 5 s); a loaded CI machine once needed over 15 s
        code = bringup.stop(timeout_s=40.0)
        for pid in started:   # bringup stops its children; this only guards against a hang
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert code == 0, bringup.log_tail(40)


def test_a_configuration_error_stops_the_suite_with_code_2_and_is_not_respawned(ros_env,
                                                                                tmp_path):
    suite = Suite(ros_env, tmp_path, balancing=False,
                  edits={'protection': {'cell_overvoltage': {'alarm_v': 3.0}}})
    bringup = suite.start_bringup()
    assert bringup.popen.wait(40.0) == 2, bringup.log_tail(40)
    log = bringup.log_tail(200)
    assert 'protection (pid ' in log and \
        'exited with code 2; exit code 2: configuration error, not respawned' in log, log
    assert 'protection.cell_overvoltage.alarm_v: must be above warning_v' in log, log
    assert 'respawned (pid' not in log, log
    assert 'bringup: stopping the suite: protection exited with code 2' in log, log
