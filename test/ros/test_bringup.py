"""bringup for real: a SIGKILLed BMS node is respawned (a new pid that publishes again) while
the simulated pack and the CAN hub keep running; a configuration error (exit 2) stops the
suite with 2 and is never respawned; a SIGKILLed bringup takes its children with it, and a
second Ctrl-C does not cut its stop short.
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


def _alive(pids):
    import psutil
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _wait_gone(pids, timeout_s):
    deadline = time.monotonic() + timeout_s
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _alive(pids)


def test_a_killed_bringup_takes_every_child_with_it(ros_env, tmp_path):
    # the children run in their own sessions; only their parent-death signal links them
    suite = Suite(ros_env, tmp_path, balancing=False)
    suite.start_bringup()
    children = wait_children(suite, lambda f: {'can_hub', 'pack_simulator', 'can_driver',
                                               'state_estimator', 'protection',
                                               'pack_supervisor'} <= set(f), 20.0, 'the suite')
    try:
        suite.bringup.kill()
        left = _wait_gone(children.values(), 20.0)
        assert not left, f'children alive after bringup was SIGKILLed: {left} of {children}'
    finally:
        for pid in children.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_second_ctrl_c_does_not_cut_the_stop_short(ros_env, tmp_path):
    suite = Suite(ros_env, tmp_path, balancing=False)
    bringup = suite.start_bringup()
    children = wait_children(suite, lambda f: {'can_hub', 'pack_simulator', 'protection',
                                               'pack_supervisor'} <= set(f), 20.0, 'the suite')
    try:
        os.kill(bringup.popen.pid, signal.SIGINT)
        # the stop has begun once a BMS node is gone; a second Ctrl-C then must be ignored
        deadline = time.monotonic() + 20.0
        while len(_alive(children.values())) == len(children) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(bringup.popen.pid, signal.SIGINT)
        code = bringup.popen.wait(40.0)
        left = _wait_gone(children.values(), 5.0)
        assert not left, f'children left running: {left} of {children}\n' + bringup.log_tail(20)
        assert code == 0, bringup.log_tail(40)
        assert 'bringup: stopped in ' in bringup.log_tail(20), bringup.log_tail(20)
    finally:
        bringup.stop(timeout_s=40.0)
        for pid in children.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
