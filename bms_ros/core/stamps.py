"""Message stamps (builtin_interfaces/Time), duck-typed: rclpy or rosbags objects (sec, nanosec)."""
from __future__ import annotations

from typing import Any, TypeVar, overload

T = TypeVar('T')


@overload
def stamp_s(stamp: Any) -> float | None: ...


@overload
def stamp_s(stamp: Any, unset: T) -> float | T: ...


def stamp_s(stamp: Any, unset: T | None = None) -> float | T | None:
    """A builtin_interfaces/Time in seconds; ``unset`` if it is zero (not set)."""
    if stamp.sec == 0 and stamp.nanosec == 0:
        return unset
    return stamp.sec + stamp.nanosec * 1e-9


def message_time_ns(msg: Any, t_ns: int) -> int:
    """Time of a message with a header (ns): its stamp, else (unset) ``t_ns``, e.g. bag time."""
    stamp = msg.header.stamp
    ns = stamp.sec * 10 ** 9 + stamp.nanosec
    return ns if ns > 0 else t_ns
