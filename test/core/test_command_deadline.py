"""The CAN driver's fail-safe decisions (bms_ros.core.command_deadline), on a given clock."""
import logging
import threading

import numpy as np
import pytest

from bms_ros.core.command_deadline import (
    EXPIRED,
    FRESH,
    WAITING,
    CanFailsafeSettings,
    CommandDeadline,
    RestartBudget,
    load_can_failsafe,
    run_with_restarts,
)
from bms_ros.core.config import Section
from bms_ros.core.errors import ConfigError

OPEN = (False, False, False)
DRIVE = (True, False, True)


def contactor(start_s=0.0):
    """The driver's contactor stream: deadline 0.5 s, command period 0.1 s."""
    return CommandDeadline(0.5, OPEN, repeat_s=0.1, start_s=start_s)


def ticks(deadline, start_s, end_s, period_s=0.1):
    """(time, command sent or None, newly expired) of each timer tick in [start_s, end_s]."""
    out = []
    for k in range(int(round((end_s - start_s) / period_s)) + 1):
        t = round(start_s + k * period_s, 9)
        command, expired = deadline.tick(t)
        out.append((t, command, expired))
    return out


def test_a_fresh_command_is_repeated_until_the_deadline_then_all_open():
    d = contactor()
    assert d.receive(DRIVE, 1.0) is False
    sent = ticks(d, 1.1, 2.0)
    # repeated while its age is <= 0.5 s (1.1 .. 1.5 s), all open from 1.6 s on
    assert [c for t, c, _ in sent if t <= 1.5] == [DRIVE] * 5
    assert [c for t, c, _ in sent if t > 1.5] == [OPEN] * 5
    assert [t for t, _, expired in sent if expired] == [1.6]      # reported once
    assert (d.state(2.0), d.expiries) == (EXPIRED, 1)


def test_a_fresh_command_resumes_forwarding():
    d = contactor()
    d.receive(DRIVE, 0.0)
    ticks(d, 0.1, 1.0)
    assert d.receive(DRIVE, 1.05) is True                         # ends the expiry
    assert d.tick(1.1) == (DRIVE, False) and d.state(1.1) == FRESH
    assert [c for _, c, _ in ticks(d, 1.2, 1.5)] == [DRIVE] * 4
    assert d.tick(1.6) == (OPEN, True) and d.expiries == 2      # 0.55 s after 1.05 s


def test_before_the_first_command_the_deadline_runs_from_start():
    d = contactor(start_s=10.0)
    assert d.tick(10.3) == (None, False) and d.state(10.3) == WAITING
    assert d.tick(10.6) == (OPEN, True)                          # none within 0.5 s: open
    assert d.tick(10.7) == (OPEN, False)


def test_balancing_sends_no_bleed_once_per_deadline_and_nothing_before_the_first():
    zeros = np.zeros(16, dtype=bool)
    d = CommandDeadline(3.0, zeros, repeat_s=3.0, start_s=0.0, safe_before_first=False,
                        repeat_fresh=False)
    assert [d.tick(t)[0] for t in (1.0, 3.5, 10.0)] == [None, None, None]   # never received
    bleed = np.arange(16) % 2 == 0
    d.receive(bleed, 10.0)
    assert d.tick(12.9) == (None, False)                         # fresh: not repeated
    sent = [(t, c) for t, c, _ in ticks(d, 13.2, 19.5, period_s=0.3) if c is not None]
    # expired at 13.2 s (> 3 s after 10.0 s): zeros at once and every 3 s after
    assert [t for t, _ in sent] == pytest.approx([13.2, 16.2, 19.2])
    assert all(c is zeros for _, c in sent)


def test_a_command_period_of_none_still_expires():
    d = CommandDeadline(0.5, OPEN, repeat_s=0.5, start_s=0.0, repeat_fresh=False)
    d.receive(DRIVE, 0.0)
    assert d.tick(0.4) == (None, False)                          # sent on change only
    assert d.tick(0.6) == (OPEN, True)
    assert d.tick(0.8) == (None, False) and d.tick(1.1) == (OPEN, False)


def test_bad_deadlines_are_refused():
    with pytest.raises(ValueError):
        CommandDeadline(0.0, OPEN, repeat_s=0.1, start_s=0.0)


def test_restart_budget_backs_off_and_gives_up_above_the_max():
    budget = RestartBudget(max_restarts=5, window_s=60.0, backoff_min_s=0.1, backoff_max_s=2.0)
    delays = [budget.failure(t) for t in (0.0, 1.0, 2.0, 3.0, 4.0)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6])
    assert budget.restarts == 5
    assert budget.failure(5.0) is None                           # the 6th within 60 s
    # failures older than the window no longer count
    budget = RestartBudget(max_restarts=2, window_s=60.0)
    assert budget.failure(0.0) == pytest.approx(0.1)
    assert budget.failure(30.0) == pytest.approx(0.2)
    assert budget.failure(61.0) == pytest.approx(0.2)            # 0.0 s left the window
    assert budget.failure(62.0) is None
    assert RestartBudget(max_restarts=0).failure(0.0) is None


class _Clock:
    def __init__(self):
        self.t = 0.0
        self.waits = []

    def __call__(self):
        return self.t

    def wait(self, delay_s):
        self.waits.append(delay_s)
        self.t += delay_s
        return False


def test_run_with_restarts_restarts_a_failing_loop_and_logs_the_traceback(caplog):
    clock = _Clock()
    runs = []

    def body():
        runs.append(clock.t)
        if len(runs) <= 2:
            raise RuntimeError(f'boom {len(runs)}')

    with caplog.at_level(logging.ERROR, logger='bms_ros.core.command_deadline'):
        assert run_with_restarts(body, RestartBudget(5), lambda: True, clock, clock.wait,
                                 name='reader') is True
    assert len(runs) == 3 and clock.waits == pytest.approx([0.1, 0.2])
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == ['reader failed: restart 1 in 0.10 s',
                                                'reader failed: restart 2 in 0.20 s']
    assert 'RuntimeError: boom 1' in caplog.text                  # the traceback


def test_run_with_restarts_gives_up_when_the_budget_is_spent():
    clock = _Clock()
    runs = []

    def body():
        runs.append(1)
        raise OSError('always')

    assert run_with_restarts(body, RestartBudget(5), lambda: True, clock, clock.wait) is False
    assert len(runs) == 6                                        # 1 run + 5 restarts


def test_a_failure_while_stopping_ends_quietly(caplog):
    running = [True]

    def body():
        running[0] = False           # e.g. the ROS context shut down under the publish
        raise RuntimeError('context is not valid')

    with caplog.at_level(logging.ERROR):
        assert run_with_restarts(body, RestartBudget(5), lambda: running[0], lambda: 0.0,
                                 lambda s: False) is True
    assert caplog.records == []


def test_a_real_thread_whose_bus_raises_is_restarted():
    """A thread running run_with_restarts over a bus object whose recv raises twice."""
    class FlakyBus:
        def __init__(self):
            self.calls = 0

        def recv(self):
            self.calls += 1
            if self.calls <= 2:
                raise OSError('adapter unplugged')
            return 'frame'

    bus = FlakyBus()
    got = []
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            got.append(bus.recv())
            if len(got) == 3:
                stop.set()

    budget = RestartBudget(5, backoff_min_s=0.01)
    thread = threading.Thread(target=run_with_restarts, args=(
        loop, budget, lambda: not stop.is_set(), __import__('time').monotonic, stop.wait))
    thread.start()
    thread.join(5.0)
    assert not thread.is_alive()
    assert got == ['frame'] * 3 and budget.restarts == 2


def test_failsafe_fields_defaults_and_validation():
    assert load_can_failsafe(Section({}, 'p.yaml', 'can')) == CanFailsafeSettings(
        command_deadline_s=0.5, balancing_deadline_s=3.0, counter_errors_stale=3,
        reader_restart_max=5)
    got = load_can_failsafe(Section({'command_deadline_s': 0.2, 'counter_errors_stale': 5},
                                    'p.yaml', 'can'))
    assert (got.command_deadline_s, got.counter_errors_stale) == (0.2, 5)
    for field, value in (('command_deadline_s', 0.0), ('balancing_deadline_s', -1.0),
                         ('counter_errors_stale', 0), ('reader_restart_max', 1.5),
                         ('command_deadline_s', 'soon')):
        with pytest.raises(ConfigError) as info:
            load_can_failsafe(Section({field: value}, 'p.yaml', 'can'))
        assert info.value.path == 'p.yaml' and info.value.field == f'can.{field}'


def test_a_new_command_goes_out_at_once_the_same_again_waits_for_the_cyclic_repeat():
    d = contactor()
    d.receive(OPEN, 0.0)
    assert d.forward_now                       # the first command
    d.receive(OPEN, 0.1)
    assert not d.forward_now                   # the same again: the tick repeats it
    assert d.tick(0.15) == (OPEN, False)
    d.receive(DRIVE, 0.2)
    assert d.forward_now                       # a change (close) at once
    d.receive(DRIVE, 0.3)
    d.receive(OPEN, 0.35)
    assert d.forward_now                       # an open on a trip at once
    ticks(d, 0.4, 1.5)                         # expires at 0.9 s
    d.receive(OPEN, 1.55)
    assert d.forward_now                       # the same command, but it ends an expiry


def test_a_stream_without_a_period_forwards_every_command():
    # balancing: no cyclic repeat (repeat_fresh False), so every command is sent on arrival
    d = CommandDeadline(2.0, np.zeros(4, bool), repeat_s=2.0, start_s=0.0,
                        safe_before_first=False, repeat_fresh=False)
    for t in (0.0, 1.0, 2.0):
        d.receive(np.zeros(4, bool), t)
        assert d.forward_now
