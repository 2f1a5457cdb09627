"""Declare a node's effective configuration as read-only ROS parameters (bmsctl config).

The names and values come from bms_ros.core.effective_config.flatten: `<section>.<field>...`,
e.g. protection.limits.cell_overvoltage.trip on the protection node. Read-only: the profile is
the one place to change them (a node validates it at start-up).
"""
from rcl_interfaces.msg import ParameterDescriptor

from bms_ros.core.effective_config import flatten

DESCRIPTION = 'effective configuration (profile + defaults); read-only: change the profile'


def declare_effective(node, config, section):
    """Declare every value of ``config`` under ``section`` on ``node``; returns the count."""
    values = flatten(config, section)
    # an empty list has no ROS type of its own: '[]' as a string
    items = [(name, '[]' if value == [] else value,
              ParameterDescriptor(read_only=True, description=DESCRIPTION))  # one each: rclpy
             for name, value in values.items() if not node.has_parameter(name)]   # fills it in
    node.declare_parameters('', items)
    return len(items)
