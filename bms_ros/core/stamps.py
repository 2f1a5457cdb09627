"""Message stamps (builtin_interfaces/Time), duck-typed: rclpy or rosbags objects (sec, nanosec)."""


def stamp_s(stamp, unset=None):
    """A builtin_interfaces/Time in seconds; ``unset`` if it is zero (not set)."""
    if stamp.sec == 0 and stamp.nanosec == 0:
        return unset
    return stamp.sec + stamp.nanosec * 1e-9


def message_time_ns(msg, t_ns):
    """Time of a message with a header (ns): its stamp, else (unset) ``t_ns``, e.g. bag time."""
    stamp = msg.header.stamp
    ns = stamp.sec * 10 ** 9 + stamp.nanosec
    return ns if ns > 0 else t_ns
