"""builtin_interfaces/Time, duck-typed (an rclpy or a rosbags message: ``sec``, ``nanosec``)."""


def stamp_s(stamp, unset=None):
    """A builtin_interfaces/Time in seconds; ``unset`` if it is zero (not set)."""
    if stamp.sec == 0 and stamp.nanosec == 0:
        return unset
    return stamp.sec + stamp.nanosec * 1e-9
