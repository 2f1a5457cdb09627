"""motion_limits: the pack's current limits as a speed and acceleration limit (optional node).

Parameters: profile (YAML path; its `motion_limits:` and `gazebo:` sections, validated at
start-up), input_topic (default cmd_vel_in), output_topic (default cmd_vel).
Subscribes: estimate (BatteryEstimate: current limits, R0), battery_state (voltage, current,
temperature); with motion_limits.filter_cmd_vel the input_topic (geometry_msgs/Twist, or
TwistStamped with motion_limits.stamped).
Publishes at motion_limits.rate_hz: motion_limits (MotionLimits); with filter_cmd_vel the
filtered command on output_topic (bms_ros.core.energy.motion, docs/robot_energy.md).
"""
import math

import numpy as np
from geometry_msgs.msg import Twist, TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import BatteryState

from bms_interfaces.msg import BatteryEstimate, MotionLimits
from bms_ros.core import contract
from bms_ros.core.energy.config import MotionLimitsConfig
from bms_ros.core.energy.motion import CmdFilter, SpeedLimiter, motion_limits, power_limits_w
from bms_ros.core.profile import Profile, default_profile_path
from bms_ros.core.vehicle_load import VehicleConfig
from bms_ros.nodes import qos
from bms_ros.nodes.runner import Component


class MotionLimitsNode(Node):
    """Publishes motion_limits and optionally filters velocity commands to stay inside them."""

    def __init__(self, **node_options):
        super().__init__('motion_limits', **node_options)
        path = self.declare_parameter('profile', default_profile_path()).value
        input_topic = self.declare_parameter('input_topic', contract.CMD_VEL_IN).value
        output_topic = self.declare_parameter('output_topic', contract.CMD_VEL).value
        # Configuration errors surface here, before any publisher exists.
        profile = Profile(path)
        self.cell = profile.pack.cell
        self.config = MotionLimitsConfig.from_section(profile.section('motion_limits'))
        self.vehicle = VehicleConfig.from_section(profile.section('gazebo'), profile.pack)
        self.speed_limit = SpeedLimiter(self.config.speed_limit_rate_m_per_s2,
                                        self.config.min_speed_m_per_s,
                                        self.config.max_speed_m_per_s)
        self.cmd_filter = CmdFilter(self.config)
        self.estimate = None            # (arrival s, BatteryEstimate)
        self.battery = None             # BatteryState
        self.limits = None              # the last MotionLimits (core dataclass)

        stream = qos.STREAM
        self.limits_pub = self.create_publisher(MotionLimits, contract.MOTION_LIMITS, stream)
        self.create_subscription(BatteryEstimate, contract.ESTIMATE, self.on_estimate, stream)
        self.create_subscription(BatteryState, contract.BATTERY_STATE, self.on_battery, stream)
        self.cmd_type = TwistStamped if self.config.stamped else Twist
        if self.config.filter_cmd_vel:
            self.cmd_pub = self.create_publisher(self.cmd_type, output_topic, stream)
            self.create_subscription(self.cmd_type, input_topic, self.on_cmd, stream)
        self.create_timer(1.0 / self.config.rate_hz, self.on_timer)
        c = self.config
        self.get_logger().info(
            f'{profile.pack.name}: vehicle {self.vehicle.mass_kg:g} kg, up to '
            f'{c.max_speed_m_per_s:g} m/s, {c.limit_horizon} current limits, cmd_vel filter '
            + (f'{input_topic} -> {output_topic} ({self.cmd_type.__name__})'
               if c.filter_cmd_vel else 'off'))

    def now_s(self):
        """The node clock's now (s)."""
        return self.get_clock().now().nanoseconds * 1e-9

    def on_estimate(self, msg):
        """Keep the latest BatteryEstimate with its arrival time (s)."""
        self.estimate = (self.now_s(), msg)

    def on_battery(self, msg):
        """Keep the latest BatteryState."""
        self.battery = msg

    def target(self):
        """MotionLimits from the latest estimate and battery_state (None if stale/absent)."""
        if self.estimate is None or self.battery is None or \
                self.now_s() - self.estimate[0] > self.config.estimate_timeout_s:
            return None
        est = self.estimate[1]
        long = self.config.limit_horizon == 'long'
        discharge = est.discharge_current_limit_long_a if long else est.discharge_current_limit_a
        charge = est.charge_current_limit_long_a if long else est.charge_current_limit_a
        temperature = float(self.battery.temperature)
        r0 = np.asarray(est.cell_r0_ohm, dtype=float)
        factor = float(self.cell.r0_at(temperature) / self.cell.r0_ohm) \
            if math.isfinite(temperature) else 1.0
        r_pack = float(np.nansum(r0)) * factor
        p_dis, p_chg = power_limits_w(float(discharge), float(charge),
                                      float(self.battery.voltage), float(self.battery.current),
                                      r_pack)
        return motion_limits(self.vehicle, self.config, p_dis, p_chg, self.cmd_filter.v_out)

    def on_timer(self):
        """Publish the MotionLimits (m/s, m/s^2) of the latest estimate at the timer rate."""
        target = self.target()
        now = self.now_s()
        msg = MotionLimits()
        msg.header.stamp = self.get_clock().now().to_msg()
        if target is None:
            speed = self.speed_limit.update(now, self.config.min_speed_m_per_s)
            msg.max_speed_m_per_s = float(speed)
            msg.max_acceleration_m_per_s2 = float(self.config.max_acceleration_m_per_s2)
            msg.max_deceleration_m_per_s2 = float(self.config.max_deceleration_m_per_s2)
            msg.discharge_power_limit_w = msg.regen_power_limit_w = float('nan')
            msg.speed_m_per_s = float(self.cmd_filter.v_out)
            msg.limited, msg.reason = True, 'no estimate'
            self.limits = None
        else:
            target.max_speed_m_per_s = self.speed_limit.update(now, target.max_speed_m_per_s)
            self.limits = target
            for name in ('max_speed_m_per_s', 'max_acceleration_m_per_s2',
                         'max_deceleration_m_per_s2', 'discharge_power_limit_w',
                         'regen_power_limit_w', 'speed_m_per_s'):
                setattr(msg, name, float(getattr(target, name)))
            # still climbing back to the target counts as limited
            msg.limited = bool(target.limited) or \
                target.max_speed_m_per_s < self.config.max_speed_m_per_s - 1e-3
            msg.reason = target.reason
        self.limits_pub.publish(msg)

    def on_cmd(self, msg):
        """Publish the velocity command clipped to the present limits."""
        twist = msg.twist if self.config.stamped else msg
        limits = self.limits
        if limits is None:
            limits = motion_limits(self.vehicle, self.config, 0.0, 0.0, 0.0)
            limits.max_speed_m_per_s = self.speed_limit.value
            limits.max_acceleration_m_per_s2 = self.config.max_acceleration_m_per_s2
        linear, angular = self.cmd_filter.filter(self.now_s(), float(twist.linear.x),
                                                 float(twist.angular.z), limits)
        out = self.cmd_type()
        out_twist = out.twist if self.config.stamped else out
        if self.config.stamped:
            out.header = msg.header
        out_twist.linear.x = float(linear)
        out_twist.angular.z = float(angular)
        self.cmd_pub.publish(out)


COMPONENT = Component(MotionLimitsNode, 'motion_limits')


def main(args=None):
    """The node alone in this process (init, spin, shutdown; exit 2 on a ConfigError)."""
    COMPONENT.main(args)


if __name__ == '__main__':
    main()
