"""Re-arming a node's watchdog timer (the delays: bms_ros.core.measurement_watchdog)."""
from typing import Any

from bms_ros.core.measurement_watchdog import StallGuard


def arm(timer: Any, delay_s: float) -> None:
    """Re-arm an rclpy Timer to fire once ``delay_s`` (s) from now (then at that period)."""
    period_ns = int(delay_s * 1e9)
    if timer.timer_period_ns != period_ns:
        timer.timer_period_ns = period_ns
    timer.reset()   # next call: now + the period


class Watchdog:
    """A node's watchdog timer with its StallGuard (bms_ros.core.measurement_watchdog): ``arm``
    re-arms it for a check ``delay_s`` ahead; ``held``, first in its callback, says whether the
    node itself was held, and then re-arms it for the re-check.
    """

    def __init__(self, timer: Any) -> None:
        self.timer = timer
        self._stall = StallGuard()

    def arm(self, now_s: float, delay_s: float) -> None:
        """Fire once ``delay_s`` (s) after ``now_s`` (steady clock)."""
        self._stall.armed(now_s, delay_s)
        arm(self.timer, delay_s)

    def held(self, now_s: float) -> bool:
        """True (re-armed for the re-check) if this firing at ``now_s`` is too late."""
        wait_s = self._stall.recheck_s(now_s)
        if wait_s is None:
            return False
        arm(self.timer, wait_s)
        return True
