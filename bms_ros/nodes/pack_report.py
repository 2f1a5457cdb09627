"""pack_report: a pack with its own BMS (profile ``can.control: pack``) wired to ROS.

The pack's BMS owns its contactors; this node stands where the pack supervisor, estimator and
protection stand in style (a). All logic is in bms_ros.core.pack_report.

Parameters: profile (YAML path; its `can:` section with control: pack and pack_bms, and the
mapping's pack_report / state_request sections, validated at start-up).
Publishes at can.pack_bms.publish_rate_hz, from the pack's report: pack_state (PackState,
reliable + transient-local), estimate (BatteryEstimate: SoC, SoH, limits; NaN what the pack
does not give), protection_status (ProtectionStatus, reliable + transient-local: the pack's
flags as events), battery_state (sensor_msgs/BatteryState; voltage, current, cells from
measurement); /diagnostics (1 Hz: the report, the request, the second opinion).
Sends the state-request frame at its period (STANDBY until a request is accepted).
Subscribes: measurement (PackMeasurement), own/estimate and own/protection_status (our own
estimator and protection as a second opinion, when can.pack_bms.second_opinion).
Services: request_state (RequestState: STANDBY, DRIVE, CHARGE; DRIVE and CHARGE are refused
while the report is unknown or stale).
"""
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import BatteryState

from bms_interfaces.msg import (
    BatteryEstimate,
    PackMeasurement,
    PackState,
    ProtectionEvent,
    ProtectionStatus,
)
from bms_interfaces.srv import RequestState
from bms_ros.core import contract
from bms_ros.core.can_bus import CanBus, load_can_settings
from bms_ros.core.can_codec import CanProtocol
from bms_ros.core.pack_report import (
    COMMANDED_REASON,
    STATE_NAMES,
    ReportDecoder,
    RequestEncoder,
    RequestHold,
    SecondOpinion,
    battery_state_fields,
    check_style,
    estimate_fields,
    load_control,
    pack_state_fields,
    protection_fields,
    report_diagnostic,
    request_decision,
    require_pack_control,
)
from bms_ros.core.profile import Profile, default_profile_path
from bms_ros.nodes import qos
from bms_ros.nodes.runner import Component

STREAM, LATCHED, LATEST = qos.STREAM, qos.LATCHED, qos.LATEST
_NAN = float('nan')


def _nan_message(msg_type):
    """A message whose float fields are NaN and float arrays empty (unknown by default)."""
    msg = msg_type()
    for name, kind in msg_type.get_fields_and_field_types().items():
        if kind == 'float':
            setattr(msg, name, _NAN)
    return msg


class PackReportNode(Node):
    """Publishes our messages from the pack BMS's report and forwards request_state."""

    def __init__(self, **node_options):
        """``node_options``: rclpy Node keywords (cli_args, namespace, ...; a container's)."""
        super().__init__('pack_report', **node_options)
        path = self.declare_parameter('profile', default_profile_path()).value
        # Configuration errors surface here, before any publisher exists.
        profile = Profile(path)
        self.pack = profile.pack
        settings = load_can_settings(profile)
        self.control = load_control(profile.section('can'))
        require_pack_control(self.control, profile.path)
        self.protocol = CanProtocol.from_settings(settings, self.pack.cells_series,
                                                  self.pack.temperature_sensors)
        mapping = self.protocol.mapping
        check_style(self.control, mapping, profile.path)
        self.decoder = ReportDecoder(mapping)
        self.request = RequestEncoder(mapping.state_request)
        self.hold = RequestHold(self.control.request_hold_s)
        self.bus = CanBus(settings.bus)
        self._lock = threading.Lock()
        self.measurement = None
        self.second_opinion = SecondOpinion(self.control)
        self.requests_sent = 0

        self.state_pub = self.create_publisher(PackState, contract.PACK_STATE, LATCHED)
        self.estimate_pub = self.create_publisher(BatteryEstimate, contract.ESTIMATE, STREAM)
        self.status_pub = self.create_publisher(ProtectionStatus, contract.PROTECTION_STATUS,
                                                LATEST)
        self.battery_pub = self.create_publisher(BatteryState, contract.BATTERY_STATE, STREAM)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, contract.DIAGNOSTICS, STREAM)
        self.create_subscription(PackMeasurement, contract.MEASUREMENT, self._on_measurement,
                                 STREAM)
        if self.control.second_opinion:
            self.create_subscription(BatteryEstimate, contract.own(contract.ESTIMATE),
                                     self._on_own_estimate, STREAM)
            self.create_subscription(ProtectionStatus, contract.own(contract.PROTECTION_STATUS),
                                     self._on_own_status, LATEST)
        self.create_service(RequestState, contract.REQUEST_STATE, self._on_request)
        # the bus side on the steady clock, as the CAN driver's (a paused /clock must not
        # stop the state request the pack's BMS times out on)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(1.0 / self.control.publish_rate_hz, self._publish, clock=steady)
        self.create_timer(mapping.state_request.period_s, self._send_request, clock=steady)
        self.create_timer(1.0, self._publish_diagnostics, clock=steady)
        self._running = True
        self._reader = threading.Thread(target=self._read_loop, name='pack_report_reader',
                                        daemon=True)
        self._reader.start()
        self.get_logger().info(
            f'{self.pack.name}: the pack BMS owns its contactors; report from '
            f'{", ".join(m.name for m in mapping.pack_report)} (stale after '
            f'{self.control.report_timeout_s:g} s), request {mapping.state_request.name} every '
            f'{mapping.state_request.period_s:g} s on {settings.bus.describe()}')

    # ------------------------------------------------------------------ bus

    def _read_loop(self):
        while self._running and self.context.ok():
            batch = self.bus.recv_batch(0.1, 256)
            if not batch:
                continue
            now = time.monotonic()
            with self._lock:
                for msg in batch:
                    self.decoder.feed(msg, now)

    def _send_request(self):
        state = self.hold.current(time.monotonic())
        self.bus.send(self.request.frame(state))
        self.requests_sent += 1

    def _report(self):
        with self._lock:
            return self.decoder.snapshot(time.monotonic(), self.control.report_timeout_s)

    # ------------------------------------------------------------------ callbacks

    def _on_measurement(self, msg):
        self.measurement = msg

    def _on_own_estimate(self, msg):
        self.second_opinion.on_estimate(msg.pack_soc)

    def _on_own_status(self, msg):
        self.second_opinion.on_status(msg.charge_current_limit_a, msg.discharge_current_limit_a,
                                      (e.limit_id for e in msg.active if e.latched))

    def _on_request(self, request, response):
        report = self._report()
        name = STATE_NAMES.get(request.state, str(request.state))
        accepted, reason = request_decision(request.state, report, self.request)
        if accepted:
            self.hold.set(request.state, time.monotonic())
            self._send_request()        # at once, then at the frame's period
        self.get_logger().info(f'request_state {name} by {request.requester!r}: {reason}')
        response.accepted = accepted
        response.reason = reason
        response.state = report.state
        return response

    # ------------------------------------------------------------------ publishing

    def _measurement_fields(self):
        """The latest measurement as a dict of the PackMeasurement fields core reads (None)."""
        m = self.measurement
        if m is None:
            return None
        return {'negative_contactor_closed': m.negative_contactor_closed,
                'positive_contactor_closed': m.positive_contactor_closed,
                'precharge_relay_closed': m.precharge_relay_closed,
                'pack_voltage_v': float(m.pack_voltage_v),
                'link_voltage_v': float(m.link_voltage_v),
                'pack_current_a': float(m.pack_current_a),
                'current_stale': m.current_stale,
                'cell_voltages_v': m.cell_voltages_v,
                'cell_voltage_valid': m.cell_voltage_valid,
                'temperatures_degc': m.temperatures_degc,
                'temperature_valid': m.temperature_valid}

    def _publish(self):
        report = self._report()
        stamp = self.get_clock().now().to_msg()
        measurement = self._measurement_fields()
        state = PackState()
        state.header.stamp = stamp
        for name, value in pack_state_fields(report, self.hold.state, measurement).items():
            setattr(state, name, value)
        state.commanded.header.stamp = stamp
        state.commanded.reason = COMMANDED_REASON
        self.state_pub.publish(state)

        estimate = _nan_message(BatteryEstimate)
        estimate.header.stamp = stamp
        for name, value in estimate_fields(report, self.pack.cells_series).items():
            setattr(estimate, name, value)
        self.estimate_pub.publish(estimate)

        status = ProtectionStatus()
        status.header.stamp = stamp
        fields = protection_fields(report)
        status.max_level = fields['max_level']
        status.trip_latched = fields['trip_latched']
        status.charge_current_limit_a = fields['charge_current_limit_a']
        status.discharge_current_limit_a = fields['discharge_current_limit_a']
        for event in fields['active']:
            msg = ProtectionEvent()
            msg.header.stamp = stamp
            for key, value in event.items():
                setattr(msg, key, value)
            status.active.append(msg)
        self.status_pub.publish(status)
        self.battery_pub.publish(self._battery_msg(report, stamp, measurement))

    def _battery_msg(self, report, stamp, measurement):
        msg = BatteryState()
        msg.header.stamp = stamp
        for name, value in battery_state_fields(report, measurement, self.pack).items():
            if name.startswith('power_supply_'):     # enumerations by name
                value = getattr(BatteryState, f'{name.upper()}_{value}')
            setattr(msg, name, value)
        return msg

    def _publish_diagnostics(self):
        report = self._report()
        level, message, values = report_diagnostic(report, self.hold.state, self.requests_sent)
        status = DiagnosticStatus(name=f'{self.get_fully_qualified_name()}: pack report',
                                  hardware_id=self.pack.serial_number,
                                  level=getattr(DiagnosticStatus, level), message=message)
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        out = DiagnosticArray()
        out.header.stamp = self.get_clock().now().to_msg()
        out.status = [status]
        if self.control.second_opinion:
            out.status.append(self._second_opinion_status(report))
        self.diagnostics_pub.publish(out)

    def _second_opinion_status(self, report):
        opinion = self.second_opinion.status(report)
        if opinion.warn_log:
            self.get_logger().warning(opinion.message)
        status = DiagnosticStatus(name=f'{self.get_fully_qualified_name()}: second opinion',
                                  hardware_id=self.pack.serial_number,
                                  level=getattr(DiagnosticStatus, opinion.level),
                                  message=opinion.message)
        status.values = [KeyValue(key=k, value=v) for k, v in opinion.values]
        return status

    def destroy_node(self):
        """Stop the reader thread and close the bus, then destroy the node."""
        self._running = False
        if getattr(self, '_reader', None) is not None:
            self._reader.join(2.0)
        if getattr(self, 'bus', None) is not None:
            self.bus.close()
        return super().destroy_node()


COMPONENT = Component(PackReportNode, 'pack_report')


def main(args=None):
    """The node alone in this process (init, spin, shutdown; exit 2 on a ConfigError)."""
    COMPONENT.main(args)


if __name__ == '__main__':
    main()
