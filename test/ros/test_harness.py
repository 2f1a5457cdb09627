"""The ROS test harness fails, never hangs, when a message or a service never comes."""
import os
import subprocess
import sys
import time

import pytest
from std_msgs.msg import Float32
from std_srvs.srv import Trigger

pytestmark = pytest.mark.ros


def test_missing_message_fails_after_its_timeout(ros_env):
    log = ros_env.subscribe(Float32, 'nobody_publishes_this')
    start = time.monotonic()
    with pytest.raises(AssertionError,
                       match=r"timeout after 0.5 s waiting on 'nobody_publishes_this'"):
        log.wait_for(timeout_s=0.5)
    assert time.monotonic() - start < 5.0


def test_missing_service_fails_after_its_timeout(ros_env):
    with pytest.raises(AssertionError,
                       match=r"service 'no_such_service' not available after 0.5 s"):
        ros_env.call(Trigger, 'no_such_service', Trigger.Request(), timeout_s=0.5)


def test_each_test_has_its_own_domain(ros_env):
    block = int(os.environ['BMS_TEST_DOMAIN_BLOCK'])
    assert block <= ros_env.domain_id < block + 10
    assert ros_env.env['ROS_DOMAIN_ID'] == str(ros_env.domain_id)
    assert ros_env.env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'


def test_messages_cross_processes(ros_env):
    # a child process publishes; the probe in this process receives the value it sent
    code = ('import rclpy, time\nfrom std_msgs.msg import Float32\nrclpy.init()\n'
            'n = rclpy.create_node("talker")\np = n.create_publisher(Float32, "chatter", 10)\n'
            'for i in range(200):\n    p.publish(Float32(data=1.25))\n    time.sleep(0.05)\n')
    log = ros_env.subscribe(Float32, 'chatter')
    proc = subprocess.Popen([sys.executable, '-c', code], env=ros_env.env)
    try:
        msg = log.wait_for(timeout_s=15.0, what='a Float32 from the talker process')
        assert msg.data == pytest.approx(1.25)
    finally:
        proc.kill()
        proc.wait()
