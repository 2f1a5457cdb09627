"""Respawn decisions (bms_ros.graph.RespawnBudget, on a fake clock) and bringup's process
supervision on tiny stand-in processes (no ROS); the real suite is in test/ros/test_bringup.py.
"""
import socket
import sys
import time

import pytest

from bms_ros.graph import RespawnBudget, RespawnPolicy
from bms_ros.tools import bringup
from bms_ros.tools.bringup import Bringup, describe_exit, port_in_use

SIGKILL = -9


def test_back_off_doubles_to_eight_seconds_then_the_budget_is_used_up():
    budget = RespawnBudget(RespawnPolicy())
    t = 100.0
    delays = []
    for _ in range(5):
        decision = budget.on_exit(SIGKILL, t)
        assert decision.respawn
        delays.append(decision.delay_s)
        t += decision.delay_s + 0.5        # started again, ran 0.5 s, died again
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    sixth = budget.on_exit(SIGKILL, t)     # 6th death within 60 s of the first respawn
    assert not sixth.respawn and sixth.count == 5
    assert sixth.reason == '5 respawns within 60 s: giving up'


def test_the_window_slides_and_the_back_off_starts_again():
    budget = RespawnBudget(RespawnPolicy())
    for t in (0.0, 1.0, 2.0, 3.0, 4.0):
        assert budget.on_exit(1, t).respawn
    assert not budget.on_exit(1, 59.9).respawn   # five respawns in [0, 59.9]
    late = budget.on_exit(1, 60.5)               # the first has left the window
    assert late.respawn and late.count == 5 and late.delay_s == 8.0
    quiet = budget.on_exit(1, 200.0)             # a long healthy run: back to 1 s
    assert quiet.respawn and quiet.count == 1 and quiet.delay_s == 1.0


@pytest.mark.parametrize('code,respawn', [(2, False), (1, True), (0, True), (SIGKILL, True),
                                          (-15, True)])
def test_configuration_error_is_never_respawned(code, respawn):
    decision = RespawnBudget(RespawnPolicy()).on_exit(code, 0.0)
    assert decision.respawn is respawn
    if not respawn:
        assert decision.reason == 'exit code 2: configuration error, not respawned'


def test_exit_descriptions():
    assert describe_exit(-9) == 'signal SIGKILL'
    assert describe_exit(2) == 'code 2'


def _poll_until(sup, predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fatal = sup.poll(time.monotonic())
        if predicate(fatal):
            return fatal
        time.sleep(0.02)
    raise AssertionError('condition not reached')


FAST = RespawnPolicy(delay_s=0.05, max_delay_s=0.2, max_respawns=3, window_s=60.0)


def test_bringup_respawns_a_dying_process_and_gives_up_after_its_budget(tmp_path):
    reports = []
    sup = Bringup(str(tmp_path), report=reports.append)
    crash = sup.start('crasher', [sys.executable, '-c', 'print("boom"); raise SystemExit(3)'],
                      FAST)
    steady = sup.start('pack_simulator', [sys.executable, '-c', 'import time; time.sleep(60)'],
                       FAST)
    try:
        fatal = _poll_until(sup, lambda f: f is not None)
        assert fatal == ('crasher', 3, '3 respawns within 60 s: giving up')
        assert crash.starts == 4                      # the first run and 3 respawns
        assert steady.running() and steady.starts == 1  # the simulated pack never torn down
        assert sum('crasher respawned (pid' in r for r in reports) == 3
        assert 'crasher (pid' in reports[0] and 'exited with code 3; respawn 1 of 3' in reports[0]
        assert 'boom' in reports[0]                   # the log tail of the dead run
        log = open(tmp_path / 'crasher.log').read()
        assert log.count('boom') == 4 and '--- bringup: respawn 3 at' in log
        assert sup.status_note() == ' | respawns: crasher 3'
    finally:
        sup.stop(timeout_s=2.0)
    assert not steady.running()


def test_bringup_stops_on_a_configuration_error(tmp_path):
    reports = []
    sup = Bringup(str(tmp_path), report=reports.append)
    bad = sup.start('protection', [sys.executable, '-c', 'raise SystemExit(2)'], FAST)
    try:
        fatal = _poll_until(sup, lambda f: f is not None)
        assert fatal[:2] == ('protection', 2) and bad.starts == 1
        assert 'not respawned' in reports[-1]
    finally:
        sup.stop(timeout_s=2.0)


def test_bringup_refuses_a_busy_hub_port_with_a_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bringup.signal, 'signal', lambda *_: None)  # keep pytest's SIGTERM
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert port_in_use('127.0.0.1', port)
        code = bringup.main(['--can-port', str(port), '--log-dir', str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert f'CAN hub port 127.0.0.1:{port} is not free' in err and '--can-port' in err
    assert not list(tmp_path.iterdir())            # nothing was started


def test_a_second_pack_gets_a_free_hub_port_when_none_is_given(tmp_path, capsys):
    """issue 18 item 7: the profile's hub port is taken, no --can-port: a free one for all."""
    from test.core.test_graph import _profile_with_can
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        taken = busy.getsockname()[1]
        profile = _profile_with_can(tmp_path, port=taken)
        code = bringup.main(['--profile', profile, '--namespace', 'pack_b', '--print-graph'])
    assert code == 0
    captured = capsys.readouterr()
    assert f'CAN hub port 127.0.0.1:{taken} is taken' in captured.err
    assert '--can-port' in captured.err
    lines = dict(line.split(': ', 1) for line in captured.out.splitlines())
    port = int(lines['can_hub'].split('--port ')[1].split()[0])
    assert port != taken
    assert f'port:={port}' in lines['pack_simulator'] and f'port:={port}' in lines['can_driver']


def test_logs_per_namespace_appended_with_a_dated_header_per_start(tmp_path):
    assert bringup.log_folder('log/bringup', '') == 'log/bringup/_'
    assert bringup.log_folder('log/bringup', '/pack_a') == 'log/bringup/pack_a'
    assert bringup.log_folder('log/bringup', 'robot/pack_b') == 'log/bringup/robot.pack_b'
    for run in range(2):
        sup = Bringup(str(tmp_path), report=lambda text: None)
        child = sup.start('echo', [sys.executable, '-c', f'print("run {run}")'], RespawnPolicy())
        child.popen.wait(30)
        sup.stop(timeout_s=2.0)
    text = (tmp_path / 'echo.log').read_text()
    assert text.count('--- bringup: start at ') == 2       # appended, not overwritten
    assert text.index('run 0') < text.index('run 1')
    (tmp_path / 'echo.log').write_bytes(b'x' * (bringup.LOG_ROTATE_BYTES + 1))
    sup = Bringup(str(tmp_path), report=lambda text: None)
    sup.start('echo', [sys.executable, '-c', 'pass'], RespawnPolicy()).popen.wait(30)
    sup.stop(timeout_s=2.0)
    assert (tmp_path / 'echo.log.1').stat().st_size == bringup.LOG_ROTATE_BYTES + 1
    assert (tmp_path / 'echo.log').stat().st_size < 1000
