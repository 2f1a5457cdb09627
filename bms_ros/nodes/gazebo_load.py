"""gazebo_load: pack current demand from a simulated vehicle's motion (bms_ros.core.vehicle_load).

Parameters: profile (YAML path; its `gazebo:` section, validated at start-up).
Subscribes: odom (nav_msgs/Odometry: twist.linear.x, body frame), imu (sensor_msgs/Imu:
orientation, for the road grade), joint_states (sensor_msgs/JointState: effort x velocity of
the profile's wheel_joints, optional), battery_state (sensor_msgs/BatteryState: voltage).
Publishes at gazebo.publish_rate_hz: load_demand (std_msgs/Float32, A, + = charging), which
the pack simulator applies instead of its load profile.

Run with use_sim_time:=true next to a Gazebo world bridged by config/gazebo/ros_gz_bridge.yaml
(docs/gazebo.md).
"""

from nav_msgs.msg import Odometry
from rclpy.node import Node
from sensor_msgs.msg import BatteryState, Imu, JointState
from std_msgs.msg import Float32

from bms_ros.core import contract
from bms_ros.core.profile import Profile, default_profile_path
from bms_ros.core.stamps import stamp_s
from bms_ros.core.vehicle_load import VehicleConfig, VehicleLoad
from bms_ros.nodes import qos
from bms_ros.nodes.runner import Component


class GazeboLoad(Node):
    """Turns odometry, IMU and wheel efforts into the pack's current demand."""

    def __init__(self, **node_options):
        """``node_options``: rclpy Node keywords (cli_args, namespace, ...; a container's)."""
        super().__init__('gazebo_load', **node_options)
        path = self.declare_parameter('profile', default_profile_path()).value
        # Configuration errors surface here, before any publisher exists.
        profile = Profile(path)
        self.config = VehicleConfig.from_section(profile.section('gazebo'), profile.pack)
        self.load = VehicleLoad(self.config)
        self._last_source = None

        stream = qos.STREAM
        self.demand_pub = self.create_publisher(Float32, contract.LOAD_DEMAND, stream)
        # Gazebo bridges publish sensor streams best effort: a best-effort subscription takes both
        self.create_subscription(Odometry, contract.ODOM, self.on_odom, qos.SENSOR_DATA)
        self.create_subscription(Imu, contract.IMU, self.on_imu, qos.SENSOR_DATA)
        if self.config.wheel_joints:
            self.create_subscription(JointState, contract.JOINT_STATES, self.on_joints,
                                     qos.SENSOR_DATA)
        self.create_subscription(BatteryState, contract.BATTERY_STATE, self.on_battery, stream)
        self.create_timer(1.0 / self.config.publish_rate_hz, self.on_timer)
        c = self.config
        self.get_logger().info(
            f'{profile.pack.name}: vehicle {c.mass_kg:g} kg, c_rr {c.rolling_resistance:g}, '
            f'c_d A {c.drag_coefficient * c.frontal_area_m2:g} m2, drive efficiency '
            f'{c.drivetrain_efficiency:g}, regen {c.regen_efficiency:g} up to '
            f'{c.regen_power_max_w:g} W, auxiliary {c.auxiliary_power_w:g} W, source {c.source}, '
            f'{c.publish_rate_hz:g} Hz')

    def now_s(self):
        """Node clock (ROS time: Gazebo's /clock with use_sim_time) in seconds."""
        return self.get_clock().now().nanoseconds * 1e-9

    def on_odom(self, msg):
        """Feed the odometry's forward speed (m/s) to the load model."""
        now = self.now_s()
        self.load.update_odometry(now, msg.twist.twist.linear.x, stamp_s(msg.header.stamp, now))

    def on_imu(self, msg):
        """Feed the IMU orientation (quaternion, for the slope) to the load model."""
        q = msg.orientation
        self.load.update_imu(self.now_s(), q.x, q.y, q.z, q.w)

    def on_joints(self, msg):
        """Feed the joints' velocities (rad/s) and efforts (N m) to the load model."""
        self.load.update_joints(self.now_s(), list(msg.name), list(msg.velocity),
                                list(msg.effort))

    def on_battery(self, msg):
        """Feed the battery voltage (V) to the load model (power to current)."""
        self.load.update_voltage(self.now_s(), float(msg.voltage))

    def on_timer(self):
        """Publish the demanded pack current (A, + = charging) at the timer rate."""
        demand = self.load.demand(self.now_s())
        self.demand_pub.publish(Float32(data=float(demand.pack_current_a)))
        if demand.source != self._last_source:
            self._last_source = demand.source
            if demand.source == 'stale':
                self.get_logger().warning('no fresh odometry: publishing the auxiliary load only')
            else:
                self.get_logger().info(f'demand from {demand.source}')


COMPONENT = Component(GazeboLoad, 'gazebo_load')


def main(args=None):
    """The node alone in this process (init, spin, shutdown; exit 2 on a ConfigError)."""
    COMPONENT.main(args)


if __name__ == '__main__':
    main()
