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
import math
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
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
from bms_ros.core.errors import ConfigError
from bms_ros.core.estimation import interface
from bms_ros.core.pack_report import (
    REQUESTABLE,
    STATE_NAMES,
    UNKNOWN_NAME,
    ReportDecoder,
    RequestEncoder,
    RequestHold,
    battery_health,
    check_style,
    disagreements,
    estimate_fields,
    load_control,
    pack_state_fields,
    protection_fields,
    trip_disagreement,
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
        if not self.control.pack_controls:
            raise ConfigError(profile.path, 'can.control',
                              "the pack_report node needs control: pack (with 'bms_ros' the "
                              'pack supervisor owns the contactors)')
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
        self.own_soc = _NAN
        self.own_limits = (_NAN, _NAN)
        self.own_trips = ()
        self._own_seen = False
        self.requests_sent = 0
        self._last_disagreement = ()
        technology = interface.TECHNOLOGY.get(self.pack.cell.chemistry, 'UNKNOWN')
        self.technology = getattr(BatteryState, 'POWER_SUPPLY_TECHNOLOGY_' + technology)

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
        self.create_timer(1.0 / self.control.publish_rate_hz, self._publish)
        self.create_timer(mapping.state_request.period_s, self._send_request)
        self.create_timer(1.0, self._publish_diagnostics)
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
        self.own_soc = float(msg.pack_soc)
        self._own_seen = True

    def _on_own_status(self, msg):
        self.own_limits = (float(msg.charge_current_limit_a), float(msg.discharge_current_limit_a))
        self.own_trips = tuple(e.limit_id for e in msg.active if e.latched)

    def _on_request(self, request, response):
        report = self._report()
        name = STATE_NAMES.get(request.state, str(request.state))
        if request.state not in REQUESTABLE.values():
            accepted, reason = False, f'{name} cannot be requested (STANDBY, DRIVE or CHARGE)'
        elif report.state_name == UNKNOWN_NAME and name != 'STANDBY':
            accepted, reason = False, f'{name} refused: {report.reason}'
        else:
            accepted = True
            reason = (f'{name} forwarded as {self.protocol.mapping.state_request.signal} = '
                      f'{self.request.value_of(request.state)}; the pack decides')
            self.hold.set(request.state, time.monotonic())
            self._send_request()        # at once, then at the frame's period
        self.get_logger().info(f'request_state {name} by {request.requester!r}: {reason}')
        response.accepted = accepted
        response.reason = reason
        response.state = report.state
        return response

    # ------------------------------------------------------------------ publishing

    def _measurement_fields(self):
        m = self.measurement
        if m is None:
            return None
        return {'negative_contactor_closed': m.negative_contactor_closed,
                'positive_contactor_closed': m.positive_contactor_closed,
                'precharge_relay_closed': m.precharge_relay_closed,
                'pack_voltage_v': float(m.pack_voltage_v),
                'link_voltage_v': float(m.link_voltage_v)}

    def _publish(self):
        report = self._report()
        stamp = self.get_clock().now().to_msg()
        state = PackState()
        state.header.stamp = stamp
        for name, value in pack_state_fields(report, self.hold.state,
                                             self._measurement_fields()).items():
            setattr(state, name, value)
        state.commanded.header.stamp = stamp
        state.commanded.reason = 'the pack BMS owns its contactors'
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
        self.battery_pub.publish(self._battery_msg(report, stamp))

    def _battery_msg(self, report, stamp):
        msg = BatteryState()
        msg.header.stamp = stamp
        m = self.measurement
        msg.voltage = report.pack_voltage_v
        msg.current = report.pack_current_a
        msg.temperature = _NAN
        if m is not None and not m.current_stale:
            if not math.isfinite(msg.voltage):
                msg.voltage = float(m.pack_voltage_v)
            if not math.isfinite(msg.current):
                msg.current = float(m.pack_current_a)
        if m is not None:
            msg.cell_voltage = [float(v) if ok else _NAN
                                for v, ok in zip(m.cell_voltages_v, m.cell_voltage_valid)]
            temps = [float(t) if ok else _NAN
                     for t, ok in zip(m.temperatures_degc, m.temperature_valid)]
            finite = [t for t in temps if math.isfinite(t)]
            msg.temperature = max(finite) if finite else _NAN
        soh = report.soh_capacity
        msg.design_capacity = float(self.pack.capacity_ah)
        msg.capacity = soh * self.pack.capacity_ah if math.isfinite(soh) else _NAN
        msg.charge = report.pack_soc * msg.capacity if math.isfinite(msg.capacity) else _NAN
        msg.percentage = interface.battery_percentage(report.pack_soc)   # never NaN
        unknown = report.state_name == UNKNOWN_NAME
        closed = None if unknown else report.state in (PackState.STATE_DRIVE,
                                                       PackState.STATE_CHARGE)
        status = interface.power_supply_status(msg.current, report.pack_soc, 0.5, 0.98, closed,
                                               measured=not unknown)
        msg.power_supply_status = getattr(BatteryState, 'POWER_SUPPLY_STATUS_' + status)
        msg.power_supply_health = getattr(
            BatteryState, 'POWER_SUPPLY_HEALTH_' + battery_health(report,
                                                                  interface.power_supply_health))
        msg.power_supply_technology = self.technology
        msg.present = not unknown
        msg.location = self.pack.location
        msg.serial_number = self.pack.serial_number
        return msg

    def _publish_diagnostics(self):
        report = self._report()
        name = self.get_fully_qualified_name()
        status = DiagnosticStatus()
        status.name = f'{name}: pack report'
        status.hardware_id = self.pack.serial_number
        if report.state_name == UNKNOWN_NAME:
            status.level = DiagnosticStatus.ERROR
        elif report.stale or report.flags:
            status.level = DiagnosticStatus.WARN
        else:
            status.level = DiagnosticStatus.OK
        status.message = f'{report.state_name}: {report.reason}'
        values = {'state': report.state_name, 'requested_state': STATE_NAMES[self.hold.state],
                  'age_s': f'{report.age_s:.3f}', 'stale_fields': ' '.join(report.stale_fields),
                  'requests_sent': self.requests_sent,
                  'flags': ' '.join(f[0] for f in report.flags)}
        values.update({f'report_{k}': v for k, v in report.counts.items()})
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        out = DiagnosticArray()
        out.header.stamp = self.get_clock().now().to_msg()
        out.status = [status]
        if self.control.second_opinion:
            out.status.append(self._second_opinion_status(report))
        self.diagnostics_pub.publish(out)

    def _second_opinion_status(self, report):
        status = DiagnosticStatus()
        status.name = f'{self.get_fully_qualified_name()}: second opinion'
        status.hardware_id = self.pack.serial_number
        rows = disagreements(report, self.own_soc, self.own_limits, self.control)
        trips = trip_disagreement(report, self.own_trips)
        if not self._own_seen:
            status.level = DiagnosticStatus.OK
            status.message = 'no own estimate yet (own/estimate)'
        elif rows or trips:
            status.level = DiagnosticStatus.WARN
            status.message = 'pack and bms_ros disagree: ' + '; '.join(
                [f'{what} pack {theirs:.3g} vs ours {ours:.3g} (|diff| {diff:.3g} > {bound:g})'
                 for what, theirs, ours, diff, bound in rows] + ([trips] if trips else []))
        else:
            status.level = DiagnosticStatus.OK
            status.message = 'pack and bms_ros agree within the bounds'
        if [r[0] for r in rows] != list(self._last_disagreement):
            self._last_disagreement = tuple(r[0] for r in rows)
            if rows:
                self.get_logger().warning(status.message)
        status.values = [KeyValue(key=k, value=v) for k, v in (
            ('pack_soc', f'{report.pack_soc:.4f}'), ('own_soc', f'{self.own_soc:.4f}'),
            ('pack_charge_current_limit_a', f'{report.charge_current_limit_a:.2f}'),
            ('own_charge_current_limit_a', f'{self.own_limits[0]:.2f}'),
            ('pack_discharge_current_limit_a', f'{report.discharge_current_limit_a:.2f}'),
            ('own_discharge_current_limit_a', f'{self.own_limits[1]:.2f}'),
            ('own_trips', ' '.join(self.own_trips)),
            ('disagreeing', ' '.join([r[0] for r in rows] + (['trips'] if trips else []))))]
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
