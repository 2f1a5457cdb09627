"""protection: limit checks of one pack (bms_ros.core.protection); reports, never acts.

Parameters: profile (YAML path), state_dir (base folder of persisted state; '' = the profile's
pack.state_dir, else $XDG_STATE_HOME/bms_ros, else ~/.local/state/bms_ros): latched_trips.json
and reset_requests.log live in <base>/<namespace or _>/<serial_number>/ (core/state_paths.py).
Subscribes: measurement (PackMeasurement; every message is checked at once, so a trip is one
hop away), estimate (BatteryEstimate: its state-of-power limits cap the derated limits).
Publishes: trip_event (ProtectionEvent, reliable + transient-local, depth 100: every raise and
clear), protection_status (ProtectionStatus, reliable + transient-local depth 1: periodic and on
change), /diagnostics (diagnostic_msgs/DiagnosticArray).
Services: reset_trips (ResetTrips).

protection_status goes out with the evaluation of a measurement (at most one per half
status_period_s) and at once on any event. Without measurements a watchdog timer (timing
rules in bms_ros.core.measurement_watchdog) checks the stale limit at each of its levels exactly
and publishes the status at least every status_period_s; while measurements flow it never
fires, so the node wakes once per measurement instead of also on a 10 Hz poll (issue 18).
"""
import math

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from bms_interfaces.msg import BatteryEstimate, PackMeasurement, ProtectionEvent, ProtectionStatus
from bms_interfaces.srv import ResetTrips
from bms_ros.core import contract
from bms_ros.core.measurement_watchdog import deadlines_after, next_check_delay_s
from bms_ros.core.profile import Profile, default_profile_path
from bms_ros.core.protection import (
    LEVEL_ALARM,
    LEVEL_NAMES,
    LEVEL_TRIP,
    LEVEL_WARNING,
    Measurement,
    Protection,
    TripLatch,
    load_protection_config,
)
from bms_ros.core.state_paths import state_folder
from bms_ros.nodes import qos
from bms_ros.nodes.effective import declare_effective
from bms_ros.nodes.runner import Component
from bms_ros.nodes.watchdog import Watchdog

STREAM, EVENTS, LATEST = qos.STREAM, qos.EVENTS, qos.LATEST
DIAGNOSTIC_LEVEL = {0: DiagnosticStatus.OK, LEVEL_WARNING: DiagnosticStatus.WARN,
                    LEVEL_ALARM: DiagnosticStatus.WARN, LEVEL_TRIP: DiagnosticStatus.ERROR}


def event_to_msg(event, stamp):
    """A ProtectionEvent message from a core Event."""
    msg = ProtectionEvent()
    msg.header.stamp = stamp
    msg.limit_id = event.limit_id
    msg.level = int(event.level)
    msg.index = int(event.index)
    msg.value = float(event.value)
    msg.threshold = float(event.threshold)
    msg.unit = event.unit
    msg.active = bool(event.active)
    msg.latched = bool(event.latched)
    msg.message = event.message
    return msg


class ProtectionNode(Node):
    """Checks every measurement against the profile's limits and reports events and status."""

    def __init__(self, **node_options):
        """``node_options``: rclpy Node keywords (cli_args, namespace, ...; a container's)."""
        super().__init__('protection', **node_options)
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        profile_path = self.declare_parameter('profile', default_profile_path()).value
        state_dir = self.declare_parameter('state_dir', '').value
        # everything that can fail on configuration happens before any publisher exists
        profile = Profile(profile_path)
        self.pack = profile.pack
        self.config = load_protection_config(profile.section('protection'), profile.pack)
        # this pack's own folder (namespace, serial): never a neighbour's trips; nothing is
        # written before the configuration has loaded (the first save creates the folder)
        self.state_dir = state_folder(self.get_namespace(), self.pack.serial_number,
                                      state_dir, self.pack.state_dir)
        latch = TripLatch(self.state_dir)
        restored = latch.load()
        if latch.load_problem:
            self.get_logger().error(f'latched-trip file unreadable: {latch.load_problem}')
        self.protection = Protection(self.config, self.pack.cells_series,
                                     self.pack.temperature_sensors, latch, self._now_s())

        # the effective configuration as read-only parameters (bmsctl config)
        declare_effective(self, profile.pack, 'pack')
        declare_effective(self, self.config, 'protection')
        self.event_pub = self.create_publisher(ProtectionEvent, contract.TRIP_EVENT, EVENTS)
        self.status_pub = self.create_publisher(ProtectionStatus, contract.PROTECTION_STATUS,
                                                LATEST)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, contract.DIAGNOSTICS, STREAM)
        self.create_subscription(PackMeasurement, contract.MEASUREMENT, self._on_measurement,
                                 STREAM)
        self.create_subscription(BatteryEstimate, contract.ESTIMATE, self._on_estimate, STREAM)
        self.create_service(ResetTrips, contract.RESET_TRIPS, self._on_reset)
        stale = next(limit for limit in self.config.limits
                     if limit.limit_id == 'stale_measurement')
        self._stale_deadlines_s = deadlines_after(stale.thresholds, stale.debounce_s)
        self._last_status_s = -math.inf
        # the watchdog: re-armed after each measurement for the next stale level or status
        self._watchdog = Watchdog(self.create_timer(self.config.status_period_s,  # seconds
                                                    self._on_status_timer, clock=self._steady))
        self.create_timer(self.config.diagnostics_period_s, self._publish_diagnostics,  # seconds
                          clock=self._steady)
        self._last_diagnostic_level = None

        self._publish_events(self.protection.restored_events(self._now_s()))
        self.protection.save_if_changed()
        for trip in restored:
            self.get_logger().warning(f'restored latched trip from {latch.path}: {trip.message}')
        self.get_logger().info(
            f'protection of {self.pack.name}: {len(self.config.limits)} limits, '
            f'{len(restored)} latched trip(s) restored, state in {self.state_dir}')
        self._publish_status()

    def _now_s(self):
        """Seconds on the steady clock: debounce, timeouts and cool-downs must not follow a
        settable or simulated clock (a clock jump must neither cause nor delay a trip).
        """
        return self._steady.now().nanoseconds * 1e-9

    # ------------------------------------------------------------------ callbacks

    def _on_measurement(self, msg):
        now_s = self._now_s()
        events = self.protection.evaluate(Measurement.from_message(msg), now_s)
        if events:
            self._publish_events(events)   # first: latency to the supervisor matters most
            self._publish_status()
            self.protection.save_if_changed()
            self._publish_diagnostics_if_level_changed()
        elif now_s - self._last_status_s >= 0.5 * self.config.status_period_s:
            self._publish_status()         # the periodic status, with the measurement
            self.protection.save_if_changed()   # retries a failed save, as the poll did
        # the next measurement is due in one period: the watchdog waits two (it must not
        # race the measurement) or less, for a stale level counted from the last one
        self._arm_watchdog(now_s, 2.0 * self.config.status_period_s)

    def _arm_watchdog(self, now_s, gap_s):
        delay_s = next_check_delay_s(now_s, self.protection.signals.last_arrival_s,
                                     self._stale_deadlines_s, gap_s)
        self._watchdog.arm(now_s, delay_s)

    def _on_estimate(self, msg):
        self.protection.update_estimate(float(msg.charge_current_limit_a),
                                        float(msg.discharge_current_limit_a), self._now_s())

    def _on_status_timer(self):
        now_s = self._now_s()
        if self._watchdog.held(now_s):   # this node was held: take what arrived meanwhile first
            return
        events = self.protection.check_timeout(now_s)
        self._publish_events(events)
        self._publish_status()
        self.protection.save_if_changed()
        if events:
            self._publish_diagnostics_if_level_changed()
        self._arm_watchdog(now_s, self.config.status_period_s)

    def _on_reset(self, request, response):
        now_s = self._now_s()
        result = self.protection.reset(now_s, request.requester, request.reason)
        self.get_logger().info(
            f'reset_trips requested by {request.requester!r} (reason {request.reason!r}): '
            f'{"granted" if result.success else "not granted"}: {result.message}')
        self._publish_events(self.protection.reset_events(result, now_s, request.requester))
        self.protection.save_if_changed()
        self._publish_status()
        self._publish_diagnostics_if_level_changed()
        response.success = result.success
        response.message = result.message
        response.still_latched = list(result.still_latched)
        return response

    # ------------------------------------------------------------------ publishing

    def _publish_events(self, events):
        if not events:
            return
        stamp = self.get_clock().now().to_msg()
        for event in events:
            self.event_pub.publish(event_to_msg(event, stamp))
        for event in events:  # after publishing: logging must not delay the events
            text = f'{LEVEL_NAMES[event.level]} {event.limit_id}[{event.index}]: {event.message}'
            if event.active:
                self.get_logger().warning(f'RAISE {text}')
            else:
                self.get_logger().info(f'CLEAR {text}')

    def _publish_status(self):
        if not self.protection.has_something_to_report():
            return            # nothing measured, rejected or latched: no status yet
        status = self.protection.status(self._now_s())
        msg = ProtectionStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.max_level = int(status.max_level)
        msg.trip_latched = status.trip_latched
        msg.active = [event_to_msg(e, msg.header.stamp) for e in status.active]
        msg.charge_current_limit_a = float(status.charge_current_limit_a)
        msg.discharge_current_limit_a = float(status.discharge_current_limit_a)
        msg.measurements_rejected = int(status.measurements_rejected)
        self.status_pub.publish(msg)
        self._last_status_s = self._now_s()

    def _publish_diagnostics_if_level_changed(self):
        status = self.protection.status(self._now_s())
        if status.max_level != self._last_diagnostic_level:
            self._publish_diagnostics()

    def _publish_diagnostics(self):
        status = self.protection.status(self._now_s())
        self._last_diagnostic_level = status.max_level
        diag = DiagnosticStatus()
        diag.name = f'{self.get_fully_qualified_name()}: protection'
        diag.hardware_id = self.pack.serial_number
        diag.level = DIAGNOSTIC_LEVEL[status.max_level]
        if status.trip_latched:
            diag.message = f'trip latched ({sum(e.latched for e in status.active)}): reset needed'
        elif status.active:
            diag.message = f'{len(status.active)} limit(s) active, highest ' \
                           f'{LEVEL_NAMES[status.max_level]}'
        else:
            diag.message = 'all limits OK'
        values = [('pack', self.pack.name),
                  ('trip_latched', str(status.trip_latched)),
                  ('charge_current_limit_a', _num(status.charge_current_limit_a)),
                  ('discharge_current_limit_a', _num(status.discharge_current_limit_a)),
                  ('measurements_rejected', str(status.measurements_rejected))]
        for event in status.active:
            key = event.limit_id if event.index < 0 else f'{event.limit_id}[{event.index}]'
            values.append((f'{LEVEL_NAMES[event.level]}: {key}', event.message))
        diag.values = [KeyValue(key=k, value=v) for k, v in values]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [diag]
        self.diagnostics_pub.publish(array)


def _num(value):
    return 'nan' if not math.isfinite(value) else f'{value:.1f}'


COMPONENT = Component(ProtectionNode, 'protection')


def main(args=None):
    """The node alone in this process (init, spin, shutdown; exit 2 on a ConfigError)."""
    COMPONENT.main(args)


if __name__ == '__main__':
    main()
