"""state_estimator: per-cell SoC, SoH and state of power (bms_ros.core.estimation) wired to ROS.

Parameters: profile (YAML path; its `pack` and `estimator:` sections, validated at start-up),
state_file (persisted state; '' = <state_dir>/<namespace or _>/<serial>/estimator_state.json),
state_dir (base folder; '' = the profile's pack.state_dir, else $XDG_STATE_HOME/bms_ros, else
~/.local/state/bms_ros; see bms_ros.core.state_paths).
Subscribes: measurement (PackMeasurement), protection_status (ProtectionStatus: health, limits
forced to 0 while a trip is latched), pack_state (PackState: contactors for status and offset).
Publishes every 1/estimator.publish_rate_hz: battery_state (sensor_msgs/BatteryState, filled as
nav2 and opennav_docking read it), estimate (BatteryEstimate) and /diagnostics (the plausibility
checks of bms_ros.core.plausibility: cells held, flags per check and cell).
Services: set_soc (SetSoc: set every/each cell SoC, or re-anchor from OCV at rest).
Energy (bms_ros.nodes.energy_wiring, the `energy:` section): subscribes charger_present
(std_msgs/Bool), serves check_mission (CheckMission), fills the estimate's energy fields and,
with energy.docking_current_a > 0, publishes dock_battery_state (docs/robot_energy.md).
State (SoC, capacity, R0 per cell) is written every estimator.persist_period_s and at shutdown.
"""
import math
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import BatteryState

from bms_interfaces.msg import BatteryEstimate, PackMeasurement, PackState, ProtectionStatus
from bms_interfaces.srv import SetSoc
from bms_ros.core import contract
from bms_ros.core.estimation import interface, stored_state
from bms_ros.core.estimation.config import EstimatorConfig, settings_source, settings_text
from bms_ros.core.estimation.runtime import EstimatorRuntime
from bms_ros.core.profile import Profile, default_profile_path
from bms_ros.core.stamps import stamp_s
from bms_ros.nodes import qos
from bms_ros.nodes.effective import declare_effective
from bms_ros.nodes.energy_wiring import EnergyWiring
from bms_ros.nodes.runner import Component

CONTACTORS_OPEN_STATES = (PackState.STATE_OFF, PackState.STATE_STANDBY, PackState.STATE_ERROR)


class StateEstimator(Node):
    """Runs the pack estimator on each measurement and publishes its results at a fixed rate."""

    def __init__(self, **node_options):
        """``node_options``: rclpy Node keywords (cli_args, namespace, ...; a container's)."""
        super().__init__('state_estimator', **node_options)
        path = self.declare_parameter('profile', default_profile_path()).value
        state_file = self.declare_parameter('state_file', '').value
        state_dir = self.declare_parameter('state_dir', '').value
        # Configuration errors surface here, before any publisher exists.
        profile = Profile(path)
        self.pack = profile.pack
        # the cell file's estimator: section (the chemistry's tuning) under the profile's
        self.config = EstimatorConfig.for_profile(profile)
        self.get_logger().info(settings_text(self.config, settings_source(
            profile.path, self.pack.cell_single.path)))
        self.energy = EnergyWiring(profile, self.config)     # energy: section (issue 16)
        self.n = self.pack.cells_series
        self.sensor_of_cell = self.pack.sensor_of_cell()
        # everything the estimator decides lives in the core runtime (estimate_csv and the
        # offline replay run the same): time line, rejection, trips, set_soc, persistence
        self.runtime = EstimatorRuntime.from_profile(profile, self.config, self.get_logger())
        # this pack's own folder (namespace, serial); nothing is written until the first save
        self.state_path = state_file or stored_state.default_path(
            self.get_namespace(), self.pack.serial_number, state_dir, self.pack.state_dir)
        self.runtime.restore(self.state_path)
        self.protection = None                # last ProtectionStatus
        self.pack_state = None                # last PackState
        technology = interface.TECHNOLOGY.get(self.pack.cell.chemistry, 'UNKNOWN')
        self.technology = getattr(BatteryState, 'POWER_SUPPLY_TECHNOLOGY_' + technology)

        stream = qos.STREAM
        latched = qos.LATEST
        # the effective configuration as read-only parameters (bmsctl config)
        declare_effective(self, profile.pack, 'pack')
        declare_effective(self, self.config, 'estimator')
        self.battery_pub = self.create_publisher(BatteryState, contract.BATTERY_STATE, stream)
        self.estimate_pub = self.create_publisher(BatteryEstimate, contract.ESTIMATE, stream)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, contract.DIAGNOSTICS, stream)
        self.create_subscription(PackMeasurement, contract.MEASUREMENT, self.on_measurement,
                                 stream)
        self.create_subscription(ProtectionStatus, contract.PROTECTION_STATUS, self.on_protection,
                                 stream)
        self.create_subscription(PackState, contract.PACK_STATE, self.on_pack_state, latched)
        self.create_service(SetSoc, contract.SET_SOC, self.on_set_soc)
        self.energy.wire(self, BatteryState)
        self.create_timer(1.0 / self.config.publish_rate_hz, self.on_publish)
        self.create_timer(self.config.persist_period_s, self.save_state)
        self.get_logger().info(
            f'{self.pack.name}: {self.n} cells of {self.pack.cell.name} '
            f'({self.pack.cell.capacity_ah:g} Ah, {self.pack.cell.chemistry}), publishing at '
            f'{self.config.publish_rate_hz:g} Hz, state file {self.state_path}')

    # ------------------------------------------------------------------ runtime state
    @property
    def estimator(self):
        """The runtime's PackEstimator."""
        return self.runtime.estimator

    @property
    def last_measurement(self):
        """(arrival s, message, valid mask, temperature per cell) of the last accepted one."""
        return self.runtime.last_measurement

    @property
    def rejected(self):
        """Number of measurements the runtime rejected so far."""
        return self.runtime.rejected

    def save_state(self):
        """Write SoC, capacity and R0 per cell atomically; a failure is logged, not raised."""
        self.runtime.save(self.state_path)

    # ------------------------------------------------------------------ inputs
    def now_s(self):
        """The node clock's now (s)."""
        return self.get_clock().now().nanoseconds * 1e-9

    def on_measurement(self, msg):
        """Feed a PackMeasurement (taken at its stamp) to the estimator."""
        now = self.now_s()
        taken = stamp_s(msg.header.stamp)
        t_s = self.runtime.on_measurement(msg, taken, now, time.monotonic(),
                                          None if taken is None else now - taken)
        if t_s is not None:
            self.energy.on_measurement(t_s, msg)

    def on_protection(self, msg):
        """Keep the protection status; a latched trip zeroes the published limits."""
        self.protection = msg
        self.runtime.on_protection(msg.trip_latched)

    def on_pack_state(self, msg):
        """Keep the latest PackState."""
        self.pack_state = msg

    # ------------------------------------------------------------------ service
    def on_set_soc(self, request, response):
        """SetSoc service: set the cell SoC (0..1) directly or from the OCV."""
        response.success, response.message = self.runtime.set_soc(
            request.cell_soc, request.from_ocv, request.force)
        if response.success:
            self.save_state()
            self.get_logger().info(f'set_soc: {response.message}')
        else:
            self.get_logger().warning(f'set_soc refused: {response.message}')
        response.cell_soc = [float(z) for z in np.nan_to_num(self.estimator.estimate().cell_soc,
                                                              nan=0.0)]
        return response

    # ------------------------------------------------------------------ outputs
    def on_publish(self):
        """Publish the BatteryEstimate and BatteryState at the publish rate."""
        est = self.runtime.estimate()      # limits 0 while protection has a trip latched
        stamp = self.get_clock().now().to_msg()
        self.estimate_pub.publish(self.estimate_msg(est, stamp))
        battery = self.battery_msg(est, stamp)
        self.battery_pub.publish(battery)
        self.energy.publish_docking(battery)
        self.diagnostics_pub.publish(self.diagnostics_msg(stamp))

    def diagnostics_msg(self, stamp):
        """The plausibility checks' report (which cells, which check, counts)."""
        level, message, values = self.estimator.plausibility.diagnostic()
        diag = DiagnosticStatus()
        diag.name = f'{self.get_fully_qualified_name()}: plausibility'
        diag.hardware_id = self.pack.serial_number
        diag.level = DiagnosticStatus.WARN if level == 'WARN' else DiagnosticStatus.OK
        diag.message = message
        diag.values = [KeyValue(key=k, value=v) for k, v in
                       values + [('measurements_rejected', str(self.rejected))]]
        array = DiagnosticArray()
        array.header.stamp = stamp
        array.status = [diag]
        return array

    def estimate_msg(self, est, stamp):
        """A BatteryEstimate message of estimate ``est`` stamped ``stamp``."""
        msg = BatteryEstimate()
        msg.header.stamp = stamp
        msg.header.frame_id = self.pack.frame_id
        msg.cell_soc = [float(z) for z in est.cell_soc]
        msg.cell_capacity_ah = [float(q) for q in est.cell_capacity_ah]
        msg.cell_r0_ohm = [float(r) for r in est.cell_r0_ohm]
        for name in ('pack_soc', 'pack_soc_min', 'pack_soc_max', 'remaining_charge_ah',
                     'capacity_ah', 'soh_capacity', 'soh_resistance', 'charge_current_limit_a',
                     'discharge_current_limit_a', 'charge_current_limit_long_a',
                     'discharge_current_limit_long_a', 'horizon_short_s', 'horizon_long_s',
                     'current_offset_a'):
            setattr(msg, name, float(getattr(est, name)))
        msg.at_rest = bool(est.at_rest)
        msg.measurements_rejected = self.rejected
        self.energy.fill_estimate(msg, est)
        return msg

    def battery_msg(self, est, stamp):
        """A sensor_msgs/BatteryState of estimate ``est`` stamped ``stamp``."""
        msg = BatteryState()
        msg.header.stamp = stamp
        msg.header.frame_id = self.pack.frame_id      # the profile's pack.frame_id (TF frame)
        nan = float('nan')
        recent = self.last_measurement is not None and \
            self.now_s() - self.last_measurement[0] <= self.config.measurement_timeout_s
        if self.last_measurement is not None:
            _, m, valid, temperature = self.last_measurement
            volts = np.where(valid, np.asarray(m.cell_voltages_v, dtype=float), np.nan)
            pack_v = float(m.pack_voltage_v)
            if not math.isfinite(pack_v) and valid.all():
                pack_v = float(np.sum(volts))
            msg.voltage = pack_v
            msg.temperature = float(np.nanmax(temperature)) if np.isfinite(temperature).any() \
                else nan
            msg.current = float(m.pack_current_a)
            msg.cell_voltage = [float(v) for v in volts]
            msg.cell_temperature = [float(t) for t in temperature]
        else:
            msg.voltage = msg.temperature = msg.current = nan
            msg.cell_voltage = [nan] * self.n
            msg.cell_temperature = [nan] * self.n
        msg.charge = float(est.remaining_charge_ah)
        msg.capacity = float(est.capacity_ah)
        msg.design_capacity = float(self.pack.capacity_ah)
        msg.percentage = interface.battery_percentage(est.pack_soc)   # NaN reads 0 ("low")
        contactors = None
        if self.pack_state is not None:
            contactors = self.pack_state.state not in CONTACTORS_OPEN_STATES
        status = interface.power_supply_status(
            msg.current if recent else nan, est.pack_soc, self.config.status_current_threshold_a,
            self.config.full_soc, contactors, measured=recent,
            charger_present=self.energy.charger_present())
        msg.power_supply_status = getattr(BatteryState, 'POWER_SUPPLY_STATUS_' + status)
        events = None if self.protection is None else [
            (e.limit_id, e.level) for e in self.protection.active]
        msg.power_supply_health = getattr(
            BatteryState, 'POWER_SUPPLY_HEALTH_' + interface.power_supply_health(events))
        msg.power_supply_technology = self.technology
        msg.present = bool(recent)
        msg.location = self.pack.location
        msg.serial_number = self.pack.serial_number
        return msg


COMPONENT = Component(StateEstimator, 'state_estimator',
                      on_shutdown=lambda node: node.save_state())


def main(args=None):
    """The node alone in this process (init, spin, shutdown; exit 2 on a ConfigError)."""
    COMPONENT.main(args)


if __name__ == '__main__':
    main()
