"""bmsctl against a running suite (separate processes): the status line and view, sim faults,
load and ambient, the effective configuration; and the simulated pack charging in CHARGE.
"""
import re
import subprocess
import sys
import time

import pytest

from bms_interfaces.msg import PackState

from .suite import Suite

pytestmark = pytest.mark.ros

CHARGE = PackState.STATE_CHARGE


def bmsctl(suite, *argv, timeout_s=60.0):
    """Run bmsctl in the suite's ROS domain (it waits for discovery); the CompletedProcess."""
    return subprocess.run([sys.executable, '-m', 'bms_ros.tools.bmsctl', *argv],
                          env=suite.env.env, capture_output=True, text=True, timeout=timeout_s)


def settles_ok(suite, ns, timeout_s):
    """Whether ``status --once`` reads '| ok' within ``timeout_s`` (re-run until it does)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = bmsctl(suite, 'status', '--once', '--timeout', '20', *ns)
        if line.returncode == 0 and line.stdout.strip().endswith('| ok'):
            return True
    return False


def test_bmsctl_operates_the_running_suite_and_charge_charges(ros_env, tmp_path):
    suite = Suite(ros_env, tmp_path, namespace='pack_a').start()
    suite.wait_ready()
    ns = ['--namespace', 'pack_a']

    # one command at a time: six rclpy processes starting at once on two cores (beside the
    # niced core tests) once held the nodes past stale_measurement's 0.5 s trip, and the
    # suite rightly went to ERROR (a clean-clone run of 2026-12-03)
    line, whole, too_hot, nothing, injected, ambient = (bmsctl(suite, *argv) for argv in (
        ['status', '--once', '--timeout', '20', *ns],
        ['config', '--timeout', '20', *ns],
        ['sim', *ns, 'ambient', '300'],
        ['reset', '--reason', 'test', *ns],
        ['sim', *ns, 'fault', 'current_offset', '--value', '0.5'],
        ['sim', *ns, 'ambient', '35']))
    assert line.returncode == 0, line.stderr
    text = line.stdout.strip()
    assert text.startswith('STANDBY   | SoC ') and len(text) <= 80 and '\n' not in text, text
    # the last field: the warnings active at that instant, else ok. A loaded machine can hold
    # the nodes up past stale_measurement's 0.2 s warning, which the line then shows, as it
    # must; the suite at rest settles to ok
    if not text.endswith('| ok'):
        assert re.search(r'\| WARN [a-z_]+', text), text
        assert settles_ok(suite, ns, timeout_s=40.0), text

    # the effective configuration: read-only parameters of every node
    assert whole.returncode == 0 and not whole.stderr, whole.stderr
    for node in ('can_driver', 'state_estimator', 'protection', 'pack_supervisor', 'balancing',
                 'pack_simulator'):
        assert f'{node}: pack.serial_number = SIM-LFP-0001' in whole.stdout, node
    assert 'protection: protection.limits.cell_overvoltage.trip = 3.75\n' in whole.stdout

    # faults and the ambient, with the simulator's replies
    assert injected.returncode == 0 and injected.stdout.strip() == \
        'injected: current sensor offset +0.5 A', injected.stdout + injected.stderr
    assert ambient.returncode == 0 and ambient.stdout.startswith('ambient 35 degC set')
    assert too_hot.returncode == 1 and 'must be in -60..100 degC' in too_hot.stdout
    assert nothing.returncode == 0 and nothing.stdout.strip() == 'reset granted: nothing latched'
    cleared = bmsctl(suite, 'sim', *ns, 'clear', 'all')
    assert cleared.returncode == 0 and cleared.stdout.strip() == 'cleared: all faults cleared'

    # CHARGE: the charger (CC at the BMS's allowed charge current, capped by its rating)
    answer = suite.request(CHARGE, retry_s=10.0)
    assert answer.accepted, answer.reason
    suite.states.wait_for(lambda s: s.state == CHARGE, timeout_s=20.0, what='CHARGE')
    suite.truth.clear()
    charging = suite.truth.wait_for(lambda t: t.pack_current_a > 1.0, timeout_s=20.0,
                                    what='the pack charging')
    suite.status.clear()       # the limit now, not the first status (0 A before a measurement)
    status = suite.status.wait_for(timeout_s=5.0)
    expected = min(11.5, status.charge_current_limit_a)      # the profile's 0.5 C charger
    assert charging.pack_current_a == pytest.approx(expected, abs=0.5)
    suite.truth.clear()
    later = suite.truth.wait_for(lambda t: t.sim_time_s > charging.sim_time_s + 2.0,
                                 timeout_s=20.0)
    assert later.pack_current_a > 1.0                       # still charging, no drive cycle
    assert sum(later.cell_soc) > sum(charging.cell_soc)
    load = bmsctl(suite, 'sim', *ns, 'load', '-5A')       # an explicit load still wins
    assert load.returncode == 0, load.stderr
    assert load.stdout.startswith('load -5 A (discharging) set; pack current now -5.0'), \
        load.stdout
