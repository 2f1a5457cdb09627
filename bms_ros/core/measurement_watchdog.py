"""When a measurement-driven node must look again although no measurement came (issue 18).

The timing rules of the nodes' watchdog timers, pure Python (no rclpy) so they are tested
without ROS; bms_ros.nodes.watchdog.arm() re-arms the rclpy Timer with them.

protection and pack_supervisor evaluate on each measurement; between measurements nothing
changes but time. Instead of a poll at a fixed period (a wake-up of the executor every 0.1 s
whether measurements flow or not), one timer is re-armed after each evaluation for the next
instant that matters: a deadline counted from the last measurement (the stale levels), or the
longest gap the node's periodic outputs may have. While measurements flow it never fires;
when they stop it fires at each deadline exactly, then every gap.
"""
import math
from collections.abc import Iterable

MIN_DELAY_S = 0.001   # s: never a busy timer, even for a deadline already due
MARGIN_S = 0.0005     # s after a deadline: the age is past it when the check runs, not a hair short
# a watchdog that fires this much later than it was due was itself held (its process stopped
# or starved: SIGSTOP, a publish blocked inside DDS holding the GIL), not its inputs
STALL_S = 0.1
RECHECK_S = 0.05      # s: ... so it looks again once the executor took what arrived meanwhile


def deadlines_after(thresholds_s: Iterable[float], debounce_s: float = 0.0) -> tuple[float, ...]:
    """Deadlines (s after the last measurement) of a limit on the measurement's age: each
    finite level threshold plus the limit's debounce, ascending, without repeats.
    """
    return tuple(sorted({float(t) + max(float(debounce_s), 0.0) for t in thresholds_s
                         if math.isfinite(float(t)) and float(t) >= 0.0}))


def next_check_delay_s(now_s: float, anchor_s: float, deadlines_s: Iterable[float],
                       gap_s: float) -> float:
    """Seconds from ``now_s`` to the next check: the first ``anchor_s + d`` (d in
    ``deadlines_s``, ascending, s; ``anchor_s`` the last measurement, same clock; plus
    MARGIN_S) still ahead of ``now_s``, or ``gap_s`` (s), whichever is sooner; at least
    MIN_DELAY_S.
    """
    delay_s = float(gap_s)
    for deadline_s in deadlines_s:
        ahead_s = anchor_s + deadline_s + MARGIN_S - now_s
        if ahead_s > 0.0:
            delay_s = min(delay_s, ahead_s)
            break   # ascending: the first one ahead is the nearest
    return max(delay_s, MIN_DELAY_S)


class StallGuard:
    """Whether a watchdog's check must first let its node catch up.

    After its process was held (SIGSTOP, a blocked publish holding the GIL: docs/safety.md "A
    reader frozen just after it joined"), a node's watchdog timer and the measurements that
    arrived meanwhile are all ready at once, and rclpy's executor runs ready timers before
    subscriptions: judged then, the node's own stall reads as its inputs' and trips (measurement
    stale 0.73 s in a single-process suite on a loaded machine). A check more than STALL_S past
    its due time is put off once by RECHECK_S instead; a true stale input is then judged
    RECHECK_S later, and only when the node itself was held.
    """

    def __init__(self) -> None:
        self._due_s: float | None = None
        self._rechecking = False

    def armed(self, now_s: float, delay_s: float) -> None:
        """The watchdog was armed at ``now_s`` to fire ``delay_s`` later (s, steady clock)."""
        self._due_s = now_s + delay_s
        self._rechecking = False

    def recheck_s(self, now_s: float) -> float | None:
        """RECHECK_S if the check firing at ``now_s`` is to wait (the node was held and this is
        not already the re-check), else None (check now).
        """
        late = self._due_s is not None and now_s - self._due_s > STALL_S
        if late and not self._rechecking:
            self._due_s = now_s + RECHECK_S
            self._rechecking = True
            return RECHECK_S
        return None
