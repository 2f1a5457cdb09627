"""Robot energy on top of the estimate: state of energy, time to empty/full, missions, motion.

Pure numpy (no rclpy). See docs/robot_energy.md.
"""
