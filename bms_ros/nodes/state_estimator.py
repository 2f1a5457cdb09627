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
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import BatteryState

from bms_interfaces.msg import BatteryEstimate, PackMeasurement, PackState, ProtectionStatus
from bms_interfaces.srv import SetSoc
from bms_ros.nodes.runner import Component
from bms_ros.nodes.effective import declare_effective
from bms_ros.core.errors import PersistenceError
from bms_ros.core.estimation import interface, stored_state
from bms_ros.core.estimation.config import EstimatorConfig
from bms_ros.core.estimation.estimator import PackEstimator
from bms_ros.core.profile import Profile, default_profile_path
from bms_ros.core.stamps import stamp_s
from bms_ros.nodes.energy_wiring import EnergyWiring

CONTACTORS_OPEN_STATES = (PackState.STATE_OFF, PackState.STATE_STANDBY, PackState.STATE_ERROR)
CLOCK_JUMP_S = 1.0   # s: a stamp step this far off the steady clock's step is a clock jump


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
        self.config = EstimatorConfig.from_section(profile.section('estimator'))
        self.energy = EnergyWiring(profile, self.config)     # energy: section (issue 16)
        self.n = self.pack.cells_series
        self.sensor_of_cell = self.pack.sensor_of_cell()
        self.estimator = PackEstimator(self.pack.cell, self.n, self.config)
        # this pack's own folder (namespace, serial); nothing is written until the first save
        self.state_path = state_file or stored_state.default_path(
            self.get_namespace(), self.pack.serial_number, state_dir, self.pack.state_dir)
        self._restore()

        self.rejected = 0
        self._last_reject_reason = None
        self.last_measurement = None          # (arrival s, message) of the last accepted one
        self.last_t_s = None                  # estimator time of the last accepted one
        self._last_stamp = None               # (stamp s, steady s) of the last measurement
        self._timeline_offset_s = 0.0         # estimator time = stamp + this (clock jumps)
        self.protection = None                # last ProtectionStatus
        self.pack_state = None                # last PackState
        technology = interface.TECHNOLOGY.get(self.pack.cell.chemistry, 'UNKNOWN')
        self.technology = getattr(BatteryState, 'POWER_SUPPLY_TECHNOLOGY_' + technology)

        stream = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        # the effective configuration as read-only parameters (bmsctl config)
        declare_effective(self, profile.pack, 'pack')
        declare_effective(self, self.config, 'estimator')
        self.battery_pub = self.create_publisher(BatteryState, 'battery_state', stream)
        self.estimate_pub = self.create_publisher(BatteryEstimate, 'estimate', stream)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', stream)
        self.create_subscription(PackMeasurement, 'measurement', self.on_measurement, stream)
        self.create_subscription(ProtectionStatus, 'protection_status', self.on_protection, stream)
        self.create_subscription(PackState, 'pack_state', self.on_pack_state, latched)
        self.create_service(SetSoc, 'set_soc', self.on_set_soc)
        self.energy.wire(self, BatteryState)
        self.create_timer(1.0 / self.config.publish_rate_hz, self.on_publish)
        self.create_timer(self.config.persist_period_s, self.save_state)
        self.get_logger().info(
            f'{self.pack.name}: {self.n} cells of {self.pack.cell.name} '
            f'({self.pack.cell.capacity_ah:g} Ah, {self.pack.cell.chemistry}), publishing at '
            f'{self.config.publish_rate_hz:g} Hz, state file {self.state_path}')

    # ------------------------------------------------------------------ persistence
    def _restore(self):
        try:
            if stored_state.load(self.state_path, self.estimator, self.pack.name):
                est = self.estimator.estimate()
                self.get_logger().info(
                    f'restored SoC {np.nanmin(est.cell_soc):.3f}..{np.nanmax(est.cell_soc):.3f}, '
                    f'capacity {np.min(est.cell_capacity_ah):.2f} Ah from {self.state_path}')
            else:
                self.get_logger().info(f'no saved state at {self.state_path}: SoC from OCV')
        except (PersistenceError, OSError) as error:
            self.estimator = PackEstimator(self.pack.cell, self.n, self.config)
            self.get_logger().warning(f'ignoring saved state ({error}); SoC from OCV, '
                                      'capacity and R0 from the datasheet')

    def save_state(self):
        """Write SoC, capacity and R0 per cell atomically; a failure is logged, not raised."""
        try:
            stored_state.save(self.state_path, self.estimator, self.pack.name)
        except (OSError, ValueError) as error:
            self.get_logger().error(f'cannot save state to {self.state_path}: {error}')

    # ------------------------------------------------------------------ inputs
    def now_s(self):
        return self.get_clock().now().nanoseconds * 1e-9

    def reject(self, reason):
        self.rejected += 1
        if reason != self._last_reject_reason:
            self._last_reject_reason = reason
            if self.last_measurement is None:
                # at start-up the driver publishes before every frame group has arrived once:
                # waiting, not a fault (separate call site: rclpy fixes each site's severity)
                self.get_logger().info(f'waiting for the first usable measurement: {reason}')
            else:
                self.get_logger().warning(f'measurement rejected: {reason} '
                                          f'({self.rejected} rejected so far)')

    def timeline_s(self, stamp_s_):
        """Estimator time (s) of a measurement stamped ``stamp_s_`` (ROS time).

        Stamp differences, except across a jump of the ROS clock (a simulator reset, a looped
        bag, a clock set by hand): a stamp that goes back, or runs ahead of the steady clock
        by more than CLOCK_JUMP_S, advances the estimator by the steady-clock interval, so a
        jump neither counts as hours of current nor stalls the estimator until the clock
        catches up. Protection and the supervisor run on the steady clock for the same reason.
        """
        steady_s = time.monotonic()
        if self._last_stamp is not None:
            d_stamp = stamp_s_ - self._last_stamp[0]
            d_steady = steady_s - self._last_stamp[1]
            if d_stamp < -CLOCK_JUMP_S or d_stamp > d_steady + CLOCK_JUMP_S:
                self._timeline_offset_s += d_steady - d_stamp
                self.get_logger().warning(
                    f'ROS clock jumped by {d_stamp - d_steady:+.1f} s between measurements: '
                    f'counting the {d_steady:.2f} s that passed')
        self._last_stamp = (stamp_s_, steady_s)
        return stamp_s_ + self._timeline_offset_s

    def on_measurement(self, msg):
        now = self.now_s()
        taken = stamp_s(msg.header.stamp)
        t_s = self.timeline_s(now if taken is None else taken)
        reason = interface.measurement_reject_reason(
            msg, self.n, self.pack.temperature_sensors, t_s, self.last_t_s,
            None if taken is None else now - taken, self.config.measurement_timeout_s)
        if reason is not None:
            self.reject(reason)
            return
        self._last_reject_reason = None
        valid, temperature = interface.step_from_measurement(
            self.estimator, msg, t_s, self.last_t_s, self.sensor_of_cell,
            self.config.bleed_resistance_ohm)
        self.last_t_s = t_s
        self.last_measurement = (now, msg, valid, temperature)
        self.energy.on_measurement(t_s, msg)

    def on_protection(self, msg):
        self.protection = msg

    def on_pack_state(self, msg):
        self.pack_state = msg

    # ------------------------------------------------------------------ service
    def on_set_soc(self, request, response):
        soc = np.asarray(request.cell_soc, dtype=float)
        if request.from_ocv:
            if self.last_measurement is None:
                response.success, response.message = False, 'no measurement yet'
            elif not (self.estimator.at_rest or request.force):
                response.success = False
                response.message = (f'pack not at rest ({self.estimator.rest_s:.0f} of '
                                    f'{self.config.rest_time_s:g} s): use force to re-anchor')
            else:
                _, msg, valid, temperature = self.last_measurement
                used = self.estimator.reanchor_from_ocv(
                    np.asarray(msg.cell_voltages_v, dtype=float),
                    np.where(np.isfinite(temperature), temperature, 25.0), valid)
                response.success = bool(used.any())
                response.message = (f're-anchored {int(used.sum())} of {self.n} cells from OCV'
                                    if used.any() else 'no valid cell voltage')
        elif soc.size not in (1, self.n):
            response.success = False
            response.message = f'cell_soc has {soc.size} values: give 1 or {self.n}'
        elif not np.all(np.isfinite(soc)) or np.any((soc < 0.0) | (soc > 1.0)):
            response.success, response.message = False, 'cell_soc must be within 0..1'
        else:
            self.estimator.set_soc(soc)
            response.success = True
            response.message = f'SoC set on {self.n} cells'
        if response.success:
            self.save_state()
            self.get_logger().info(f'set_soc: {response.message}')
        else:
            self.get_logger().warning(f'set_soc refused: {response.message}')
        response.cell_soc = [float(z) for z in np.nan_to_num(self.estimator.estimate().cell_soc,
                                                              nan=0.0)]
        return response

    # ------------------------------------------------------------------ outputs
    def tripped(self):
        return self.protection is not None and self.protection.trip_latched

    def on_publish(self):
        est = self.estimator.estimate()
        stamp = self.get_clock().now().to_msg()
        if self.tripped():
            for name in ('charge_current_limit_a', 'discharge_current_limit_a',
                         'charge_current_limit_long_a', 'discharge_current_limit_long_a'):
                setattr(est, name, 0.0)
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
    COMPONENT.main(args)


if __name__ == '__main__':
    main()
