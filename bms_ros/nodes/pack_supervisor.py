"""pack_supervisor: the pack state machine (bms_ros.core.pack_state_machine), sole contactor owner.

Parameters: profile (YAML path).
Subscribes: measurement (PackMeasurement: contactor feedback, link and pack voltage, current,
temperatures), trip_event (ProtectionEvent, transient-local: a latched trip opens at once),
protection_status (ProtectionStatus: latched trips, derated current limits), estimate
(BatteryEstimate: pack SoC for the request guards).
Publishes: pack_state (PackState, reliable + transient-local; on change and every
state_period_s), contactor_command (ContactorCommand, reliable; on change and every
command_period_s), trip_event (contactor faults: contactor_welded / contactor_stuck_open, as
ProtectionEvent), /diagnostics.
Services: request_state (RequestState).

The machine steps, and the contactor command is repeated, with each measurement (at most one
per half command_period_s); a watchdog timer does both only when no measurement came for two
command periods, then every command_period_s, and at the protection status's timeout
(bms_ros.core.measurement_watchdog): the timeouts of the machine (measurement, protection status,
feedback, pre-charge) keep their resolution and the driver its command stream, without a
10 Hz poll beside the measurement (issue 18).

Whether a trip event is history and whether a status is outdated is decided by
bms_ros.core.trip_ordering on the protection's own stamps (never this node's clock against
another node's); the machine runs on this node's steady clock.
"""
import math

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from bms_interfaces.msg import (
    BatteryEstimate,
    ContactorCommand,
    PackMeasurement,
    PackState,
    ProtectionEvent,
    ProtectionStatus,
)
from bms_interfaces.srv import RequestState
from bms_ros.core import contract
from bms_ros.core.measurement import Measurement
from bms_ros.core.measurement_watchdog import next_check_delay_s
from bms_ros.core.pack_state_machine import (
    COMMAND_ORDER,
    CONTACTOR_FAULT_IDS,
    STATE_ERROR,
    STATE_NAMES,
    STATE_OFF,
    PackStateMachine,
    load_supervisor_config,
)
from bms_ros.core.profile import Profile, default_profile_path
from bms_ros.core.protection.limits import LEVEL_TRIP
from bms_ros.core.stamps import stamp_s
from bms_ros.core.trip_ordering import LIVE, TripOrdering
from bms_ros.nodes import qos
from bms_ros.nodes.effective import declare_effective
from bms_ros.nodes.protection import event_to_msg
from bms_ros.nodes.runner import Component
from bms_ros.nodes.watchdog import Watchdog

STREAM, EVENTS, LATCHED, LATEST = qos.STREAM, qos.EVENTS, qos.LATCHED, qos.LATEST


class PackSupervisor(Node):
    """Runs the pack state machine and publishes its contactor command and state."""

    def __init__(self, **node_options):
        """``node_options``: rclpy Node keywords (cli_args, namespace, ...; a container's)."""
        super().__init__('pack_supervisor', **node_options)
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        profile_path = self.declare_parameter('profile', default_profile_path()).value
        profile = Profile(profile_path)
        self.pack = profile.pack
        self.config = load_supervisor_config(profile.section('supervisor'))
        self.machine = PackStateMachine(self.config, self._now_s())
        self.ordering = TripOrdering()   # history / outdated, on protection's own stamps

        # the effective configuration as read-only parameters (bmsctl config)
        declare_effective(self, profile.pack, 'pack')
        declare_effective(self, self.config, 'supervisor')
        self.command_pub = self.create_publisher(ContactorCommand, contract.CONTACTOR_COMMAND,
                                                 STREAM)
        self.state_pub = self.create_publisher(PackState, contract.PACK_STATE, LATCHED)
        self.event_pub = self.create_publisher(ProtectionEvent, contract.TRIP_EVENT, EVENTS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, contract.DIAGNOSTICS, STREAM)
        self.create_subscription(PackMeasurement, contract.MEASUREMENT, self._on_measurement,
                                 STREAM)
        self.create_subscription(ProtectionEvent, contract.TRIP_EVENT, self._on_trip_event, EVENTS)
        self.create_subscription(ProtectionStatus, contract.PROTECTION_STATUS, self._on_status,
                                 LATEST)
        self.create_subscription(BatteryEstimate, contract.ESTIMATE, self._on_estimate, STREAM)
        self.create_service(RequestState, contract.REQUEST_STATE, self._on_request)
        self._last_step_s = -math.inf
        self._status_s = -math.inf         # the last protection status accepted (steady s)
        # the watchdog: re-armed after each measurement (two command periods), fires only
        # when measurements stop
        self._watchdog = Watchdog(self.create_timer(self.config.command_period_s,  # seconds
                                                    self._on_command_timer, clock=self._steady))
        self.create_timer(self.config.state_period_s, self._on_state_timer,  # seconds
                          clock=self._steady)
        self._published = None       # (state, requested, reason, command) last published
        self._measurement = None
        self._warnings = []
        self.get_logger().info(f'pack supervisor of {self.pack.name}: '
                               f'{STATE_NAMES[self.machine.state]}')
        self._publish(force=True)

    def _now_s(self):
        """Seconds on the steady clock: debounce, timeouts and cool-downs must not follow a
        settable or simulated clock (a clock jump must neither cause nor delay a trip).
        """
        return self._steady.now().nanoseconds * 1e-9

    # ------------------------------------------------------------------ callbacks

    def _on_measurement(self, msg):
        self._measurement = msg
        now_s = self._now_s()
        self.machine.on_measurement(Measurement.from_message(msg), now_s)
        if now_s - self._last_step_s >= 0.5 * self.config.command_period_s:
            self._step(now_s)              # the periodic step and command, with the measurement
        else:
            self._publish()
        self._arm_watchdog(now_s, 2.0 * self.config.command_period_s)

    def _arm_watchdog(self, now_s, gap_s):
        # the status arrives just after the measurement: a step only with the measurement would
        # find its timeout up to a period late, so the watchdog also wakes at that deadline
        delay_s = next_check_delay_s(now_s, self._status_s, (self.config.protection_timeout_s,),
                                     gap_s)
        self._watchdog.arm(now_s, delay_s)

    def _on_trip_event(self, msg):
        if msg.limit_id in CONTACTOR_FAULT_IDS:
            return  # our own report coming back (stamped on our clock, not protection's)
        history = True
        if msg.level == LEVEL_TRIP and msg.active and msg.latched:
            history = self.ordering.on_trip(stamp_s(msg.header.stamp, 0.0), msg) != LIVE
        self._trip_to_machine(msg, history)
        self._publish()

    def _trip_to_machine(self, msg, history):
        self.machine.on_trip_event(msg.limit_id, msg.level, msg.active, msg.latched, msg.message,
                                   self._now_s(), index=msg.index, history=history)

    def _on_status(self, msg):
        verdict = self.ordering.on_status(stamp_s(msg.header.stamp, 0.0), msg.trip_latched)
        for event in verdict.released:   # arrived before the first status, newer than it
            self._trip_to_machine(event, history=False)
        if verdict.accepted:             # else older than a trip event already acted on
            latched = [e.limit_id if e.index < 0 else f'{e.limit_id}[{e.index}]'
                       for e in msg.active if e.latched]
            self._status_s = self._now_s()
            self.machine.on_protection_status(msg.trip_latched, latched,
                                              msg.charge_current_limit_a,
                                              msg.discharge_current_limit_a, self._status_s)
        self._publish()

    def _on_estimate(self, msg):
        self.machine.on_estimate(float(msg.pack_soc), self._now_s())

    def _on_request(self, request, response):
        accepted, reason = self.machine.request(request.state, request.requester, self._now_s())
        self.get_logger().info(
            f'request_state {STATE_NAMES.get(request.state, request.state)} by '
            f'{request.requester!r}: {"accepted: " if accepted else ""}{reason}')
        self._publish()
        response.accepted = accepted
        response.reason = reason
        response.state = self.machine.state
        return response

    def _on_command_timer(self):
        now_s = self._now_s()
        if self._watchdog.held(now_s):   # this node was held: take what arrived meanwhile first
            return
        self._step(now_s)
        self._arm_watchdog(now_s, self.config.command_period_s)

    def _step(self, now_s):
        self._last_step_s = now_s
        self.machine.step(now_s)
        if not self._publish():
            self.command_pub.publish(self._command_msg())  # the periodic repeat
        self._check_warnings()

    def _on_state_timer(self):
        self._publish(force=True)
        self._publish_diagnostics()

    # ------------------------------------------------------------------ publishing

    def _publish(self, force=False):
        """Publish fault events; state on change (or forced); the command if it changed.

        Returns True if the command was published.
        """
        for event in self.machine.pop_events():
            self.event_pub.publish(event_to_msg(event, self.get_clock().now().to_msg()))
        m = self.machine
        snapshot = (m.state, m.requested_state, m.reason, m.command.as_tuple())
        if snapshot == self._published and not force:
            return False
        command_changed = self._published is None or snapshot[3] != self._published[3]
        state_changed = self._published is None or snapshot[0] != self._published[0]
        self._published = snapshot
        if command_changed:
            self.command_pub.publish(self._command_msg())  # first: it is what opens contactors
        self.state_pub.publish(self._state_msg())
        if state_changed:
            self.get_logger().info(f'{m.state_name}: {m.reason}')
            self._publish_diagnostics()
        return command_changed

    def _check_warnings(self):
        """Diagnostics at once when a degraded input (stale estimate, unknown feedback) starts
        or ends, not only on the state timer.
        """
        names = [w.split(' (')[0] for w in self.machine.warnings(self._now_s())]
        if names != self._warnings:
            self._warnings = names
            self._publish_diagnostics()

    def _command_msg(self):
        c = self.machine.command
        msg = ContactorCommand()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.negative_closed = c.negative_closed
        msg.precharge_closed = c.precharge_closed
        msg.positive_closed = c.positive_closed
        msg.reason = c.reason
        return msg

    def _state_msg(self):
        m = self.machine
        msg = PackState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.state = m.state
        msg.requested_state = m.requested_state
        msg.state_name = m.state_name
        msg.reason = m.reason
        msg.commanded = self._command_msg()
        if self._measurement is not None:
            fb = self._measurement
            msg.negative_contactor_closed = fb.negative_contactor_closed
            msg.positive_contactor_closed = fb.positive_contactor_closed
            msg.precharge_relay_closed = fb.precharge_relay_closed
            msg.link_voltage_v = float(fb.link_voltage_v)
            msg.pack_voltage_v = float(fb.pack_voltage_v)
        else:
            msg.link_voltage_v = float('nan')
            msg.pack_voltage_v = float('nan')
        return msg

    def _publish_diagnostics(self):
        m = self.machine
        now_s = self._now_s()
        warnings = m.warnings(now_s)
        diag = DiagnosticStatus()
        diag.name = f'{self.get_fully_qualified_name()}: pack state'
        diag.hardware_id = self.pack.serial_number
        diag.level = (DiagnosticStatus.ERROR if m.state == STATE_ERROR else
                      DiagnosticStatus.WARN if m.state == STATE_OFF or warnings else
                      DiagnosticStatus.OK)
        diag.message = f'{m.state_name}: {m.reason}'
        if warnings:
            diag.message += f' [{"; ".join(warnings)}]'
        c = m.command
        age_s = m.estimate_age_s(now_s)
        estimate = ('none' if age_s is None else
                    f'{"stale" if age_s > self.config.estimate_timeout_s else "fresh"} '
                    f'({age_s:.1f} s old)')
        diag.values = [KeyValue(key=k, value=v) for k, v in (
            ('state', m.state_name), ('requested_state', STATE_NAMES[m.requested_state]),
            ('negative_closed', str(c.negative_closed)),
            ('precharge_closed', str(c.precharge_closed)),
            ('positive_closed', str(c.positive_closed)), ('command_reason', c.reason),
            ('contactor_feedback', ', '.join(f'{name} {fb}' for name, fb in
                                             zip(COMMAND_ORDER, m.feedback))),
            ('estimate', estimate),
            ('statuses_ignored', str(self.ordering.statuses_ignored)))]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [diag]
        self.diagnostics_pub.publish(array)


COMPONENT = Component(PackSupervisor, 'pack_supervisor')


def main(args=None):
    """The node alone in this process (init, spin, shutdown; exit 2 on a ConfigError)."""
    COMPONENT.main(args)


if __name__ == '__main__':
    main()
