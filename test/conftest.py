"""Test-wide settings: ROS traffic stays on this host, in a domain of this test process."""
import os

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('RCUTILS_COLORIZED_OUTPUT', '0')
# One domain per test process (pytest may run several at once on CI machines or locally);
# test/ros/harness.py gives each ROS test its own domain from this process's block.
DOMAIN_BLOCK = 10 + (os.getpid() % 9) * 10
os.environ['BMS_TEST_DOMAIN_BLOCK'] = str(DOMAIN_BLOCK)
os.environ['ROS_DOMAIN_ID'] = str(DOMAIN_BLOCK)
