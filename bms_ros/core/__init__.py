"""Pure Python + numpy core of bms_ros. Never imports rclpy (checked by a test)."""
