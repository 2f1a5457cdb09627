"""gazebo_load node in its own process: synthetic odometry and IMU in, load_demand out."""
import math
import os
import threading
import time

import pytest
import yaml
from nav_msgs.msg import Odometry
from sensor_msgs.msg import BatteryState, Imu
from std_msgs.msg import Float32

from bms_ros.core.profile import config_dir

pytestmark = pytest.mark.ros

PROFILE = os.path.join(config_dir(), 'profiles', 'lfp_16s.yaml')
# lfp_16s gazebo section: 120 kg x 1.05, c_rr 0.05, c_d A 0.4 m2, eta 0.75, aux 60 W
SPEED = 1.5
VOLTAGE = 52.0


def expected_current(grade):
    force = 120 * 9.81 * math.sin(grade) + 0.05 * 120 * 9.81 * math.cos(grade) \
        + 0.5 * 1.2 * 1.0 * 0.4 * SPEED ** 2
    return -(force * SPEED / 0.75 + 60.0) / VOLTAGE


class Vehicle:
    """Publishes odometry (20 Hz), IMU at a pitch, and battery_state from the probe node."""

    def __init__(self, env):
        self.env = env
        self.odom = env.publisher(Odometry, 'odom')
        self.imu = env.publisher(Imu, 'imu')
        self.battery = env.publisher(BatteryState, 'battery_state')
        self.pitch = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            stamp = self.env.node.get_clock().now().to_msg()
            odom = Odometry()
            odom.header.stamp = stamp
            odom.twist.twist.linear.x = SPEED
            self.odom.publish(odom)
            imu = Imu()
            imu.header.stamp = stamp
            imu.orientation.y = math.sin(self.pitch / 2)
            imu.orientation.w = math.cos(self.pitch / 2)
            self.imu.publish(imu)
            self.battery.publish(BatteryState(voltage=VOLTAGE))
            time.sleep(0.05)

    def stop(self):
        self._stop.set()
        self._thread.join(2.0)


def test_flat_then_uphill_demand(ros_env):
    demand = ros_env.subscribe(Float32, 'load_demand')
    ros_env.start_module('bms_ros.nodes.gazebo_load', params={'profile': PROFILE})
    vehicle = Vehicle(ros_env)
    try:
        flat = expected_current(0.0)                          # -3.438 A
        assert flat == pytest.approx(-3.4385, abs=1e-3)
        demand.wait_for(lambda m: abs(m.data - flat) < 0.01, timeout_s=15.0,
                        what=f'flat demand {flat:.3f} A')
        vehicle.pitch = -math.atan(0.10)                      # nose up: 10 % uphill
        uphill = expected_current(math.atan(0.10))            # -7.932 A
        assert uphill == pytest.approx(-7.9325, abs=1e-3)
        demand.clear()
        demand.wait_for(lambda m: abs(m.data - uphill) < 0.01, timeout_s=10.0,
                        what=f'uphill demand {uphill:.3f} A')
    finally:
        vehicle.stop()
    # odometry stops: the node falls back to the auxiliary load at the last voltage
    demand.clear()
    demand.wait_for(lambda m: abs(m.data - (-60.0 / VOLTAGE)) < 0.01, timeout_s=10.0,
                    what='auxiliary-only demand after odometry stops')


def test_bad_gazebo_section_exits_2_before_publishing(ros_env, tmp_path):
    with open(PROFILE, encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    data['pack']['cell'] = os.path.join(config_dir(), 'cells', 'lfp_a123_anr26650.yaml')
    data['gazebo']['drivetrain_efficiency'] = 1.7
    bad = tmp_path / 'bad.yaml'
    bad.write_text(yaml.safe_dump(data))
    process = ros_env.start_module('bms_ros.nodes.gazebo_load', params={'profile': str(bad)})
    process.popen.wait(20.0)
    assert process.popen.returncode == 2
    log = process.log_tail()
    assert 'bad.yaml' in log and 'gazebo.drivetrain_efficiency' in log
