"""Tests over real sockets and processes, without ROS (the CAN hub and the reconnecting bus)."""
