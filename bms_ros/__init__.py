"""bms_ros: a ROS 2 battery management suite (core logic, nodes, tools)."""
