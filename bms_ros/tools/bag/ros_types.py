"""rclpy message classes from ROS 2 type names ('pkg/msg/Name')."""
import importlib

from bms_ros.core.bag_schema import BagError


def message_class(msgtype):
    """The generated Python class of ``msgtype``; BagError if its package is not installed."""
    try:
        package, sub, name = msgtype.split('/')
        return getattr(importlib.import_module(f'{package}.{sub}'), name)
    except (ValueError, ImportError, AttributeError):
        raise BagError(f'message type {msgtype!r} is not installed') from None
