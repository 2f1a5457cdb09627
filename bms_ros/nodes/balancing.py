"""balancing: passive cell balancing (bms_ros.core.balancing) wired to ROS.

Parameters: profile (YAML path; its `balancing:` section, validated at start-up).
Subscribes: measurement (PackMeasurement), estimate (BatteryEstimate: cell_soc,
cell_capacity_ah), protection_status (ProtectionStatus: trip_latched).
Publishes every balancing.period_s: balancing_command (BalancingCommand, forwarded to the bus
by the CAN driver) and balancing_status (BalancingStatus).
Services: set_balancing_mode (SetBalancingMode: mode and thresholds; the reply explains a
refusal).
"""

import numpy as np
from rclpy.node import Node

from bms_interfaces.msg import (
    BalancingCommand,
    BalancingStatus,
    BatteryEstimate,
    PackMeasurement,
    ProtectionStatus,
)
from bms_interfaces.srv import SetBalancingMode
from bms_ros.core import contract
from bms_ros.core.balancing import BalancingController
from bms_ros.core.measurement import Measurement
from bms_ros.core.profile import Profile, default_profile_path
from bms_ros.core.stamps import stamp_s
from bms_ros.nodes import qos
from bms_ros.nodes.effective import declare_effective
from bms_ros.nodes.runner import Component


def from_float32(value):
    """A float32 field as the decimal the caller meant (0.004, not 0.004000000189989805)."""
    return float(f'{value:.7g}')


class Balancing(Node):
    """Decides the bleed resistors from measurement, estimate and protection status."""

    def __init__(self, **node_options):
        """``node_options``: rclpy Node keywords (cli_args, namespace, ...; a container's)."""
        super().__init__('balancing', **node_options)
        path = self.declare_parameter('profile', default_profile_path()).value
        # Configuration errors surface here, before any publisher exists.
        profile = Profile(path)
        self.controller = BalancingController.from_profile(profile)
        self.cells = profile.pack.cells_series
        self._last_reason = None

        # the effective configuration as read-only parameters (bmsctl config)
        declare_effective(self, profile.pack, 'pack')
        declare_effective(self, self.controller.config, 'balancing')
        stream = qos.STREAM
        self.command_pub = self.create_publisher(BalancingCommand, contract.BALANCING_COMMAND,
                                                 stream)
        self.status_pub = self.create_publisher(BalancingStatus, contract.BALANCING_STATUS, stream)
        self.create_subscription(PackMeasurement, contract.MEASUREMENT, self.on_measurement,
                                 stream)
        self.create_subscription(BatteryEstimate, contract.ESTIMATE, self.on_estimate, stream)
        self.create_subscription(ProtectionStatus, contract.PROTECTION_STATUS, self.on_protection,
                                 stream)
        self.create_service(SetBalancingMode, contract.SET_BALANCING_MODE, self.on_set_mode)
        config = self.controller.config
        self.create_timer(config.period_s, self.on_timer)  # seconds
        self.get_logger().info(
            f'{profile.pack.name}: {self.cells} cells, mode {config.mode}, threshold '
            f'{1000 * config.threshold_v:g} mV, soc_threshold {100 * config.soc_threshold:g} %, '
            f'bleed {config.bleed_resistance_ohm:g} ohm, max {config.max_bleeding_cells} cells, '
            f'duty {config.duty_on_s:g}/{config.duty_off_s:g} s')

    def now_s(self):
        """Node clock (ROS time, so a replay with use_sim_time works) in seconds."""
        return self.get_clock().now().nanoseconds * 1e-9

    def on_measurement(self, msg):
        """Feed a PackMeasurement's cell voltages (taken at their stamp) to the controller."""
        now = self.now_s()
        # the age of the cell voltages is what matters; else the message stamp; else arrival
        taken_s = stamp_s(msg.cell_voltages_stamp, stamp_s(msg.header.stamp, now))
        # the controller takes a mapping named like PackMeasurement's fields
        self.controller.set_measurement(vars(Measurement.from_message(msg)), taken_s)

    def on_estimate(self, msg):
        """Feed a BatteryEstimate's cell SoC and capacity (Ah) to the controller."""
        self.controller.set_estimate(
            {'cell_soc': np.asarray(msg.cell_soc, dtype=float),
             'cell_capacity_ah': np.asarray(msg.cell_capacity_ah, dtype=float)},
            stamp_s(msg.header.stamp, self.now_s()))

    def on_protection(self, msg):
        """Feed the protection status's trip latch to the controller (no bleeding while latched)."""
        self.controller.set_protection(msg.trip_latched, stamp_s(msg.header.stamp, self.now_s()))

    def on_set_mode(self, request, response):
        """SetBalancingMode service: the controller's mode and thresholds (V, SoC 0..1)."""
        response.success, response.message = self.controller.set_mode(
            int(request.mode), from_float32(request.threshold_v),
            from_float32(request.hysteresis_v), from_float32(request.soc_threshold))
        # separate call sites: rclpy fixes the severity of each logging call site
        if response.success:
            self.get_logger().info(f'set_balancing_mode accepted: {response.message}')
        else:
            self.get_logger().warning(f'set_balancing_mode refused: {response.message}')
        return response

    def on_timer(self):
        """Publish the controller's BalancingCommand and status at the timer rate."""
        result = self.controller.update(self.now_s())
        stamp = self.get_clock().now().to_msg()
        command = BalancingCommand()
        command.header.stamp = stamp
        command.cell_bleed = [bool(b) for b in result.cell_bleed]
        self.command_pub.publish(command)
        status = BalancingStatus()
        status.header.stamp = stamp
        status.mode = result.mode
        status.active = result.active
        status.inhibit_reason = result.inhibit_reason
        status.cell_bleed = command.cell_bleed
        status.charge_removed_ah = [float(x) for x in result.charge_removed_ah]
        status.energy_bled_wh = float(result.energy_bled_wh)
        status.cell_voltage_spread_v = float(result.cell_voltage_spread_v)
        status.cell_soc_spread = float(result.cell_soc_spread)
        self.status_pub.publish(status)
        # the reason without its changing counter ("waiting for rest (12 of 1800 s)")
        reason = result.inhibit_reason.split(' (')[0]
        if reason != self._last_reason:
            self._last_reason = reason
            self.get_logger().info(f'balancing {"inhibited: " + reason if reason else "enabled"}')


COMPONENT = Component(Balancing, 'balancing')


def main(args=None):
    """The node alone in this process (init, spin, shutdown; exit 2 on a ConfigError)."""
    COMPONENT.main(args)


if __name__ == '__main__':
    main()
