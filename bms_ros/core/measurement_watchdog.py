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
