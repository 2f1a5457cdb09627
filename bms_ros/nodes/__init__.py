"""ROS 2 nodes: each wires one part of bms_ros.core to topics, services and timers."""
