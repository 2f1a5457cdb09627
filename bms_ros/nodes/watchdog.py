"""Re-arming a node's watchdog timer (the delays: bms_ros.core.measurement_watchdog)."""
from typing import Any


def arm(timer: Any, delay_s: float) -> None:
    """Re-arm an rclpy Timer to fire once ``delay_s`` (s) from now (then at that period)."""
    period_ns = int(delay_s * 1e9)
    if timer.timer_period_ns != period_ns:
        timer.timer_period_ns = period_ns
    timer.reset()   # next call: now + the period
