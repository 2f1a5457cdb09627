"""The CAN driver's fail-safe decisions: command deadlines and the reader thread's restarts.

Pure logic on the caller's monotonic clock (s); the node (bms_ros/nodes/can_driver.py) only
wires it to timers, topics and the bus.

Command deadline (:class:`CommandDeadline`): the driver forwards a command stream (the
supervisor's contactor_command, the balancing node's balancing_command) to the pack. When the
last command is older than the deadline the driver stops forwarding it and sends the stream's
safe command instead (all contactors open; no cell bleeding), at ``repeat_s``, until a fresh
command arrives, which is forwarded at once. Before the first command the deadline runs from
the driver's start. The contactor stream then sends all-open frames too (``safe_before_first``);
the balancing stream sends nothing (no bleed was ever commanded).

Reader restarts (:class:`RestartBudget`, :func:`run_with_restarts`): an exception in the CAN
reader thread is logged with its traceback and the reader restarts after a back-off that
doubles from ``backoff_min_s`` to ``backoff_max_s``; more than ``max_restarts`` restarts within
``window_s`` give up (the node exits 1 and bringup's respawn takes over).
"""
from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .config import Section

log = logging.getLogger(__name__)

# can: section fields read here (defaults: docs/can.md, .helper contract of issue 13)
CAN_FAILSAFE_FIELDS = ('command_deadline_s', 'balancing_deadline_s', 'counter_errors_stale',
                       'reader_restart_max')

FRESH, WAITING, EXPIRED = 'fresh', 'waiting', 'expired'


@dataclass(frozen=True)
class CanFailsafeSettings:
    """The fail-safe fields of the ``can:`` section (times in s)."""

    command_deadline_s: float = 0.5      # contactor_command older than this: all open
    balancing_deadline_s: float = 3.0    # balancing_command older than this: no bleeding
    counter_errors_stale: int = 3        # bad rolling-counter frames in a row: message stale
    reader_restart_max: int = 5          # reader restarts per 60 s before the node exits 1


def load_can_failsafe(section: Section) -> CanFailsafeSettings:
    """Read the fail-safe fields from the profile's ``can:`` Section (ConfigError if bad)."""
    return CanFailsafeSettings(
        command_deadline_s=section.number('command_deadline_s', 0.5, exclusive_minimum=0.0,
                                          maximum=10.0),
        balancing_deadline_s=section.number('balancing_deadline_s', 3.0,
                                            exclusive_minimum=0.0, maximum=600.0),
        counter_errors_stale=section.integer('counter_errors_stale', 3, minimum=1,
                                             maximum=1000),
        reader_restart_max=section.integer('reader_restart_max', 5, minimum=0, maximum=1000))


class CommandDeadline:
    """What to send of one command stream, given the age of its last command (monotonic s)."""

    def __init__(self, deadline_s: float, safe_command: Any, repeat_s: float, start_s: float,
                 safe_before_first: bool = True, repeat_fresh: bool = True) -> None:
        if not deadline_s > 0.0 or not repeat_s > 0.0:
            raise ValueError(f'deadline_s and repeat_s must be > 0, got {deadline_s}, '
                             f'{repeat_s}')
        self.deadline_s = float(deadline_s)
        self.safe_command = safe_command
        self.repeat_s = float(repeat_s)
        self.safe_before_first = safe_before_first
        self.repeat_fresh = repeat_fresh      # repeat a fresh command at repeat_s too
        self.last: Any = None                 # last command received
        self.stamp_s = float(start_s)         # when it arrived (start: before the first)
        self.expired = False
        self.expiries = 0                     # fresh -> expired transitions
        self._safe_sent_s = -math.inf
        self.forward_now = False              # the last command received is to be sent now

    @property
    def received(self) -> bool:
        """True once a command was received."""
        return self.last is not None

    def state(self, now_s: float) -> str:
        """'fresh', 'waiting' (none yet, deadline not reached) or 'expired'."""
        if now_s - self.stamp_s <= self.deadline_s:
            return FRESH if self.received else WAITING
        return EXPIRED

    def age_s(self, now_s: float) -> float:
        """Age of the last command (s); since start if none was received."""
        return now_s - self.stamp_s

    def receive(self, command: Any, now_s: float) -> bool:
        """A command arrived. Returns True if it ends an expiry; ``forward_now`` then says
        whether to send it at once.
        """
        resumed = self.expired
        # a new or resumed command goes out at once (an open on a trip must not wait); the
        # same command again waits for the cyclic repeat (tick) when there is one, so the bus
        # carries it at the mapping's period, not at its period plus the sender's rate
        self.forward_now = (resumed or not self.repeat_fresh or not self.received
                            or not _same(command, self.last))
        self.last = command
        self.stamp_s = float(now_s)
        self.expired = False
        return resumed

    def tick(self, now_s: float) -> tuple[Any, bool]:
        """The command to send now (None: nothing) and whether the deadline just expired."""
        if self.state(now_s) != EXPIRED:
            if self.received and self.repeat_fresh:
                return self.last, False
            return None, False
        if not self.received and not self.safe_before_first:
            return None, False
        newly = not self.expired
        if newly:
            self.expired = True
            self.expiries += 1
        if newly or now_s - self._safe_sent_s >= self.repeat_s - 1e-9:
            self._safe_sent_s = now_s
            return self.safe_command, newly
        return None, newly


class RestartBudget:
    """At most ``max_restarts`` restarts within any ``window_s``, with a doubling back-off."""

    def __init__(self, max_restarts: int = 5, window_s: float = 60.0,
                 backoff_min_s: float = 0.1, backoff_max_s: float = 2.0) -> None:
        self.max_restarts = int(max_restarts)
        self.window_s = float(window_s)
        self.backoff_min_s = float(backoff_min_s)
        self.backoff_max_s = float(backoff_max_s)
        self.restarts = 0                    # restarts granted in total
        self._times: deque[float] = deque()  # failure times within the window

    def failure(self, now_s: float) -> float | None:
        """A failure at ``now_s``: the back-off before the restart (s), or None: give up."""
        times = self._times
        times.append(float(now_s))
        while times and times[0] < now_s - self.window_s:
            times.popleft()
        if len(times) > self.max_restarts:
            return None
        self.restarts += 1
        return min(self.backoff_max_s, self.backoff_min_s * 2.0 ** (len(times) - 1))


def run_with_restarts(body: Callable[[], object], budget: RestartBudget,
                      running: Callable[[], bool], clock: Callable[[], float],
                      wait: Callable[[float], bool], name: str = 'thread') -> bool:
    """Run ``body()`` until it returns or ``running()`` is false; restart it after an exception.

    An exception while ``running()`` is true is logged with its traceback and the body
    restarts after the budget's back-off (``wait(s)`` returns early, True, when stopping).
    Returns True on a quiet end (body returned, or stopping), False when the budget is spent.
    """
    while running():
        try:
            body()
            return True
        except Exception:  # noqa: BLE001  any failure of the loop: logged, counted, restarted
            if not running():
                return True          # the shutdown path: the context went away under us
            delay = budget.failure(clock())
            if delay is None:
                log.exception('%s failed: restart budget spent (%d restarts within %g s)',
                              name, budget.max_restarts, budget.window_s)
                return False
            log.exception('%s failed: restart %d in %.2f s', name, budget.restarts, delay)
            if wait(delay):
                return True
    return True


def _same(a: Any, b: Any) -> bool:
    """True if two commands (tuples, or arrays of bleed flags) are equal."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return a == b     # the contactor command at 10 Hz: no arrays to build
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))
