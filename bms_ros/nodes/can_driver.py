"""can_driver: the pack's CAN bus (DBC + mapping, bms_ros.core.can_codec) wired to ROS.

Parameters: profile (YAML path; its `can:` section, validated at start-up); interface,
channel, host, port, bitrate, stale_timeout_s, publish_rate_hz, publish_can_rx override the
profile's `can:` values when set.
Publishes: measurement (PackMeasurement, publish_rate_hz; earlier on a limit crossing, while
a value stays beyond the lowest warning levels and on a contactor feedback change:
bms_ros.core.prompt_publish), can_rx (CanFrame, every frame received, if publish_can_rx and
while it has a subscriber), /diagnostics (DiagnosticArray, 1 Hz: bus state, reconnects,
frames received / rejected by reason, rolling-counter errors, reader restarts, stale groups;
one status per command stream).
Subscribes: contactor_command (ContactorCommand; sent at once and repeated at the mapping's
period), balancing_command (BalancingCommand; sent at once).

Fail-safe (bms_ros.core.command_deadline, on the monotonic clock): a contactor_command older
than can.command_deadline_s is no longer repeated; all-open frames go out at the command
period instead (ERROR on /diagnostics, one error in the log) until a fresh command arrives. A
balancing_command older than can.balancing_deadline_s is replaced by an all-zero bleed command
(once per deadline period). The reader thread restarts after an exception (logged with its
traceback, counted as reader_restarts); more than can.reader_restart_max restarts in 60 s send
all-open frames and exit the node with code 1, for bringup's respawn.

A reader thread receives frames in batches into the assembler; the measurement is assembled on
the timer, so decoding costs no ROS message per frame. can_rx does cost one message per frame:
at a saturated 1 Mbit/s bus (8,000 frames/s) bench/can_decode.py measured the driver at ~6 %
of a core with can_rx off, ~11 % with can_rx on and no subscriber, ~24 % with a subscriber
(a recorder); set publish_can_rx false where no recording is wanted.
"""
import array
import math
import os
import threading
import time

import can
import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from bms_interfaces.msg import BalancingCommand, CanFrame, ContactorCommand, PackMeasurement
from bms_ros.core import contract
from bms_ros.core.can_bus import CanBus, load_can_settings
from bms_ros.core.can_codec import (
    COUNTER_REASONS,
    MESSAGE_FIELDS,
    REJECT_REASONS,
    VALUE_REASONS,
    CanProtocol,
    CommandEncoder,
    MeasurementAssembler,
)
from bms_ros.core.command_deadline import (
    EXPIRED,
    FRESH,
    CommandDeadline,
    RestartBudget,
    load_can_failsafe,
    run_with_restarts,
)
from bms_ros.core.errors import ConfigError, EncodeError
from bms_ros.core.pack_report import check_style, load_control
from bms_ros.core.profile import Profile, default_profile_path
from bms_ros.core.prompt_publish import PromptPolicy
from bms_ros.nodes import qos
from bms_ros.nodes.effective import declare_effective
from bms_ros.nodes.runner import Component

_OVERRIDES = {   # parameter -> (python type, profile setting it overrides)
    'interface': str, 'channel': str, 'host': str, 'port': int, 'bitrate': int,
    'stale_timeout_s': float, 'publish_rate_hz': float, 'publish_can_rx': bool,
    'prompt_min_interval_s': float,
}
_FLOAT_ARRAYS = ('cell_voltages_v', 'temperatures_degc')
_BOOL_ARRAYS = ('cell_voltage_valid', 'temperature_valid', 'cell_balancing')
_STAMPS = ('cell_voltages_stamp', 'temperatures_stamp', 'current_stamp')
_ALL_OPEN = (False, False, False)      # negative, precharge, positive
_MAX_ID = 0x1FFFFFFF
# Tests only: the reader's first N runs raise (no real fault reaches the reader: CanBus and the
# assembler absorb every bus and frame error), so test/ros/test_can_driver.py can prove the
# restart and the exit. Unset in every real launch.
_TEST_READER_FAULTS = 'BMS_ROS_TEST_READER_FAULTS'


def _time_msg(seconds):
    """builtin_interfaces/Time of a time in seconds (zero for NaN: never received)."""
    if not math.isfinite(seconds) or seconds <= 0.0:
        return Time()
    sec = int(seconds)
    return Time(sec=sec, nanosec=min(int((seconds - sec) * 1e9), 999_999_999))


def _in_turn(callbacks):
    """One timer callback that runs ``callbacks`` in order."""
    def run():
        for callback in callbacks:
            callback()
    return run


class CanDriver(Node):
    """Reads the pack's frames into PackMeasurement and sends contactor / balancing commands."""

    def __init__(self, **node_options):
        """``node_options``: rclpy Node keywords (cli_args, namespace, ...; a container's)."""
        super().__init__('can_driver', **node_options)
        path = self.declare_parameter('profile', default_profile_path()).value
        dynamic = ParameterDescriptor(dynamic_typing=True)
        overrides = {}
        for name, kind in _OVERRIDES.items():
            value = self.declare_parameter(name, None, dynamic).value
            if value is None or value == '':
                continue
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ConfigError('parameter', name,
                                  f'expected {kind.__name__}, got {value!r}')
            if name == 'prompt_min_interval_s':
                if not 0.0 <= value <= 10.0:   # 0 turns the prompt publish off
                    raise ConfigError('parameter', name,
                                      f'expected a number in 0..10, got {value!r}')
            elif kind in (int, float) and not value > 0:
                raise ConfigError('parameter', name, f'expected a number > 0, got {value!r}')
            if name == 'interface' and value not in can.interfaces.VALID_INTERFACES:
                raise ConfigError('parameter', name, 'expected one of '
                                  f'{", ".join(sorted(can.interfaces.VALID_INTERFACES))}, '
                                  f'got {value!r}')
            overrides[name] = value
        # Configuration errors surface here, before any publisher exists.
        profile = Profile(path)
        settings = load_can_settings(profile).with_overrides(
            **{k: overrides.get(k) for k in ('interface', 'channel', 'host', 'port', 'bitrate')})
        self.settings = settings
        self.failsafe = load_can_failsafe(profile.section('can'))
        self.stale_timeout_s = overrides.get('stale_timeout_s', settings.stale_timeout_s)
        publish_rate_hz = overrides.get('publish_rate_hz', settings.publish_rate_hz)
        self.publish_can_rx = overrides.get('publish_can_rx', settings.publish_can_rx)
        self.protocol = CanProtocol.from_settings(settings, profile.pack.cells_series,
                                                  profile.pack.temperature_sensors)
        # style (b), the pack's own BMS owns the contactors: no contactor command here
        self.control = load_control(profile.section('can'))
        check_style(self.control, self.protocol.mapping, profile.path)
        self.assembler = MeasurementAssembler(self.protocol,
                                              self.failsafe.counter_errors_stale)
        # frames that carry limit-relevant groups trigger a prompt publish (core/prompt_publish)
        self.prompt_min_interval_s = overrides.get('prompt_min_interval_s',
                                                   settings.prompt_min_interval_s)
        self.prompt = PromptPolicy(self.protocol, self.prompt_min_interval_s,
                                   settings.prompt_current_a, settings.prompt_cell_voltage_v)
        self._publish_lock = threading.Lock()
        self._last_publish = 0.0
        self.commands = CommandEncoder(self.protocol)
        self.bus = CanBus(settings.bus)
        self.commands_rejected = 0
        self.can_rx_published = 0
        self.can_rx_skipped = 0          # frames whose id does not fit CanFrame
        self._rx_rate = (time.monotonic(), 0, 0.0)   # (time, frames, frames/s)
        start = time.monotonic()
        period_s = self.commands.contactor_period_s if self.commands.contactor else None
        deadline_s = self.failsafe.command_deadline_s
        self.contactor_deadline = None if self.commands.contactor is None else CommandDeadline(
            deadline_s, _ALL_OPEN, repeat_s=period_s or deadline_s, start_s=start,
            safe_before_first=True, repeat_fresh=bool(period_s))
        self.balancing_deadline = None
        if self.commands.balancing is not None:
            self.balancing_deadline = CommandDeadline(
                self.failsafe.balancing_deadline_s,
                np.zeros(self.protocol.cells_series, dtype=bool),
                repeat_s=self.failsafe.balancing_deadline_s, start_s=start,
                safe_before_first=False, repeat_fresh=False)
        self.reader_budget = RestartBudget(self.failsafe.reader_restart_max, window_s=60.0)
        self._reader_down = False        # in the back-off after a failure
        self._fatal = None               # the reader's restart budget is spent: exit 1
        self._test_faults = int(os.environ.get(_TEST_READER_FAULTS, '0') or 0)
        self._stop = threading.Event()

        # the effective configuration as read-only parameters (bmsctl config)
        declare_effective(self, profile.pack, 'pack')
        declare_effective(self, self.settings, 'can')
        stream = qos.STREAM
        self.measurement_pub = self.create_publisher(PackMeasurement, contract.MEASUREMENT, stream)
        self.can_rx_pub = None
        if self.publish_can_rx:
            self.can_rx_pub = self.create_publisher(
                CanFrame, contract.CAN_RX, qos.of(contract.CAN_RX))
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, contract.DIAGNOSTICS, stream)
        if self.contactor_deadline is not None:
            self.create_subscription(ContactorCommand, contract.CONTACTOR_COMMAND,
                                     self.on_contactor, stream)
        self.create_subscription(BalancingCommand, contract.BALANCING_COMMAND, self.on_balancing,
                                 stream)
        periodic = [(1.0 / publish_rate_hz, self.publish_measurement),
                    (1.0, self.publish_diagnostics)]
        # the contactor timer repeats the command and enforces its deadline
        if self.contactor_deadline is not None:
            periodic.append((period_s or deadline_s / 5.0, self.repeat_contactor))
        if self.balancing_deadline is not None:
            periodic.append((self.failsafe.balancing_deadline_s / 10.0, self.check_balancing))
        periodic.append((0.1, self._check_reader))      # last: it may exit the node
        # callbacks of one period share one timer: one executor wake-up instead of several
        # (measurement, contactor repeat and reader check are all 0.1 s in the profiles)
        by_period = {}
        for period, callback in periodic:
            by_period.setdefault(period, []).append(callback)
        for period, callbacks in by_period.items():
            self.create_timer(period, callbacks[0] if len(callbacks) == 1
                              else _in_turn(tuple(callbacks)))

        self._running = True
        self._reader = threading.Thread(target=self._reader_main, name='can_reader',
                                        daemon=True)
        self._reader.start()
        mapping = self.protocol.mapping
        self.get_logger().info(
            f'{profile.pack.name}: {settings.bus.describe()}, DBC '
            f'{", ".join(f"{d.name}: {d.dbc_path}" for d in self.protocol.devices)}, '
            f'{len(mapping.measurement)} measurement and {len(mapping.commands)} command '
            f'messages, {profile.pack.cells_series} cells, {profile.pack.temperature_sensors} '
            f'sensors, stale after {self.stale_timeout_s:g} s, measurement at '
            f'{publish_rate_hz:g} Hz, can_rx {"on" if self.publish_can_rx else "off"}, '
            f'command deadlines {deadline_s:g} s (contactors) / '
            f'{self.failsafe.balancing_deadline_s:g} s (balancing)')

    # ------------------------------------------------------------------ receiving

    def _reading(self):
        """True while the reader should run (not stopping, context alive)."""
        return self._running and self.context.ok()

    def _reader_main(self):
        """Reader thread: the read loop, restarted after a failure within the budget."""
        def wait(delay_s):
            self._reader_down = True
            stopped = self._stop.wait(delay_s)
            self._reader_down = False
            return stopped
        if not run_with_restarts(self._read_loop, self.reader_budget, self._reading,
                                 time.monotonic, wait, name='CAN reader thread'):
            self._fatal = (f'CAN reader thread failed more than '
                           f'{self.reader_budget.max_restarts} times within 60 s')

    def _read_loop(self):
        """Frames in batches into the assembler (and can_rx); returns when stopping."""
        if self._test_faults > 0:
            self._test_faults -= 1
            raise RuntimeError(f'fault injected by {_TEST_READER_FAULTS} (tests only)')
        bus = self.bus
        assembler = self.assembler
        frame = CanFrame()
        prompt_pending = False   # a prompt frame arrived since the last publish
        while self._reading():
            wait_s = 0.1
            if prompt_pending:
                wait_s = max(0.0, self._last_publish + self.prompt_min_interval_s
                             - time.monotonic())
            batch = bus.recv_batch(wait_s, 256)
            now = time.monotonic()
            if batch:
                assembler.feed_many(batch, now)
                # one message per frame costs even without a reader (~150/s at rest): only
                # while something (a recorder) subscribes
                if self.can_rx_pub is not None and self.can_rx_pub.get_subscription_count():
                    self._publish_frames(batch, frame)
                wanted, urgent = self.prompt.assess(batch, assembler)
                prompt_pending = prompt_pending or wanted
            else:
                urgent = False
            # publish a prompt one at once, or as soon as the minimum interval allows, so the
            # rest of a burst (the other cell blocks) is never left waiting for the timer; a
            # crossing (core/prompt_publish) does not wait for the interval at all
            if prompt_pending and (urgent or
                                   now - self._last_publish >= self.prompt_min_interval_s):
                prompt_pending = False
                self.publish_measurement()   # raises only when shutting down (run quietly)

    def _publish_frames(self, batch, frame):
        """One CanFrame per received frame; one reused message object (publish copies it)."""
        frame.header.stamp = self.get_clock().now().to_msg()
        publish = self.can_rx_pub.publish
        for msg in batch:
            if not 0 <= msg.arbitration_id <= _MAX_ID:   # a broken interface plug-in's frame
                self.can_rx_skipped += 1
                continue
            data = bytes(msg.data)
            frame.id = msg.arbitration_id
            frame.is_extended = msg.is_extended_id
            frame.is_rtr = msg.is_remote_frame
            frame.is_error = msg.is_error_frame
            frame.dlc = min(len(data), 8)
            frame.data = np.frombuffer(data[:8].ljust(8, b'\0'), dtype=np.uint8)
            publish(frame)
            self.can_rx_published += 1

    def publish_measurement(self):
        """Publish a snapshot; called by the timer and, promptly, by the reader thread."""
        with self._publish_lock:
            self._last_publish = time.monotonic()
            self._publish_measurement()

    def _publish_measurement(self):
        now_ros = self.get_clock().now()
        now_mono = time.monotonic()
        snap = self.assembler.snapshot(now_mono, self.stale_timeout_s)
        msg = PackMeasurement()
        msg.header.stamp = now_ros.to_msg()
        now_ros_s = now_ros.nanoseconds * 1e-9
        for name in MESSAGE_FIELDS:
            value = getattr(snap, name)
            if name in _FLOAT_ARRAYS:
                value = array.array('f', np.asarray(value, dtype=np.float32).tobytes())
            elif name in _BOOL_ARRAYS:
                value = np.asarray(value, dtype=bool).tolist()
            elif name in _STAMPS:
                # receive time on the monotonic clock -> the same age on the ROS clock
                value = _time_msg(now_ros_s - (now_mono - value)) if math.isfinite(value) \
                    else Time()
            elif name in ('frames_received', 'frames_rejected'):
                value = int(value) & 0xFFFFFFFF
            elif isinstance(value, float):
                value = float(value)
            setattr(msg, name, value)
        self.measurement_pub.publish(msg)
        self._last_snapshot = snap

    # ------------------------------------------------------------------ commands

    def on_contactor(self, msg):
        """Forward a ContactorCommand to the pack and restart its command deadline."""
        command = (bool(msg.negative_closed), bool(msg.precharge_closed),
                   bool(msg.positive_closed))
        if self.contactor_deadline.receive(command, time.monotonic()):
            self.get_logger().info('contactor_command resumed: forwarding it again')
        self._send_contactor(command)

    def repeat_contactor(self):
        """Timer: repeat the last command, or all open once it is past its deadline."""
        command, expired = self.contactor_deadline.tick(time.monotonic())
        if expired:
            self.get_logger().error(self._contactor_lost_text())
        if command is not None:
            self._send_contactor(command)

    def _contactor_lost_text(self):
        deadline = self.contactor_deadline
        if deadline.received:
            return (f'contactor_command lost: none for {deadline.deadline_s:g} s (supervisor '
                    'dead or hung?): sending all open')
        return (f'no contactor_command within {deadline.deadline_s:g} s of start: '
                'sending all open')

    def _send_contactor(self, command):
        if self.commands.contactor is None:   # style (b): the pack owns its contactors
            return
        for frame in self.commands.encode_contactor_command(*command):
            self.bus.send(frame)

    def on_balancing(self, msg):
        """Encode a BalancingCommand's cell bleed flags as frames and send them."""
        try:
            cell_bleed = np.asarray(msg.cell_bleed, bool)
            frames = self.commands.encode_balancing_command(cell_bleed)
        except EncodeError as error:
            self.commands_rejected += 1
            self.get_logger().warning(f'balancing_command rejected: {error}',
                                      throttle_duration_sec=5.0)
            return
        if self.balancing_deadline.receive(cell_bleed, time.monotonic()):
            self.get_logger().info('balancing_command resumed: forwarding it again')
        for frame in frames:
            self.bus.send(frame)

    def check_balancing(self):
        """Timer: an all-zero bleed command once the balancing command is past its deadline."""
        command, expired = self.balancing_deadline.tick(time.monotonic())
        if expired:
            self.get_logger().warning(
                f'balancing_command lost: none for {self.balancing_deadline.deadline_s:g} s: '
                'bleeding off')
        if command is not None:
            for frame in self.commands.encode_balancing_command(command):
                self.bus.send(frame)

    def _check_reader(self):
        """Timer: exit with code 1 (all open first) once the reader's budget is spent."""
        if self._fatal is None:
            return
        self.get_logger().fatal(f'{self._fatal}: sending all open and exiting (code 1)')
        self.bus.open()                  # the reader opens the bus; it may never have run
        self._send_contactor(_ALL_OPEN)
        self.publish_diagnostics()
        raise SystemExit(1)

    # ------------------------------------------------------------------ diagnostics

    def publish_diagnostics(self):
        """Publish the bus's and the decoder's counters as /diagnostics."""
        snap = getattr(self, '_last_snapshot', None) or self.assembler.snapshot(
            time.monotonic(), self.stale_timeout_s)
        bus = self.bus
        now = time.monotonic()
        then, frames_then, _ = self._rx_rate
        frames = self.assembler.frames_received
        rate = (frames - frames_then) / max(now - then, 1e-3)
        self._rx_rate = (now, frames, rate)
        status = DiagnosticStatus()
        status.name = f'{self.get_fully_qualified_name()}: CAN bus'
        status.hardware_id = self.settings.bus.describe()
        if not bus.connected:
            status.level = DiagnosticStatus.ERROR
            status.message = f'bus {bus.state}: {bus.last_error}'
        elif self._fatal is not None:
            status.level = DiagnosticStatus.ERROR
            status.message = self._fatal
        elif self._reader_down:
            status.level = DiagnosticStatus.ERROR
            status.message = (f'reader thread failed, restarting (restart '
                              f'{self.reader_budget.restarts})')
        elif snap.stale_groups:
            status.level = DiagnosticStatus.WARN
            status.message = f'stale: {", ".join(snap.stale_groups)}'
            if snap.counter_stale:
                status.message += f' (rolling counter: {", ".join(snap.counter_stale)})'
        else:
            status.level = DiagnosticStatus.OK
            status.message = f'receiving {rate:.0f} frames/s'
        values = {
            'bus_state': bus.state,
            'last_error': bus.last_error,
            'frames_per_s': f'{rate:.1f}',
            'frames_received': snap.frames_received,
            'frames_rejected': snap.frames_rejected,
            'frames_ignored': self.assembler.frames_ignored,
            'stale_groups': ' '.join(snap.stale_groups),
            'commands_rejected': self.commands_rejected,
            'can_rx_published': self.can_rx_published,
            'can_rx_skipped': self.can_rx_skipped,
            'reader_restarts': self.reader_budget.restarts,
            'counter_stale': ' '.join(snap.counter_stale),
        }
        values.update({f'bus_{k}': v for k, v in bus.counters.items()})
        values.update({f'rejected_{k}': snap.counts.get(k, 0) for k in REJECT_REASONS})
        values.update({f'values_{k}': snap.counts.get(k, 0) for k in VALUE_REASONS})
        values.update({k: snap.counts.get(k, 0) for k in COUNTER_REASONS})
        if len(snap.device_counts) > 1:    # several devices: '<device>.<reason>', non-zero
            values.update({f'{device}.{k}': v for device, c in snap.device_counts.items()
                           for k, v in c.items() if v})
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        out = DiagnosticArray()
        out.header.stamp = self.get_clock().now().to_msg()
        out.status = [status]
        if self.contactor_deadline is not None:
            out.status.append(self._command_status('contactor_command', self.contactor_deadline,
                                                   now))
        if self.balancing_deadline is not None:
            out.status.append(self._command_status('balancing_command', self.balancing_deadline,
                                                   now))
        self.diagnostics_pub.publish(out)

    def _command_status(self, topic, deadline, now):
        """One command stream's deadline as a DiagnosticStatus."""
        status = DiagnosticStatus()
        status.name = f'{self.get_fully_qualified_name()}: {topic}'
        status.hardware_id = self.settings.bus.describe()
        state = deadline.state(now)
        age = deadline.age_s(now)
        contactors = topic == 'contactor_command'
        if state == FRESH:
            status.level = DiagnosticStatus.OK
            status.message = f'forwarding (last {age:.2f} s ago)'
        elif state != EXPIRED:
            status.level = DiagnosticStatus.OK
            status.message = f'waiting for the first {topic}'
        elif contactors:
            status.level = DiagnosticStatus.ERROR
            status.message = self._contactor_lost_text()
        elif deadline.received:
            status.level = DiagnosticStatus.WARN
            status.message = f'{topic} lost: none for {age:.1f} s: bleeding off'
        else:
            status.level = DiagnosticStatus.OK
            status.message = f'no {topic} received: no bleeding commanded'
        status.values = [KeyValue(key=k, value=str(v)) for k, v in (
            ('state', state), ('age_s', f'{age:.3f}'), ('deadline_s', f'{deadline.deadline_s:g}'),
            ('expiries', deadline.expiries))]
        return status

    def destroy_node(self):
        """Stop the reader thread and close the bus, then destroy the node."""
        self._running = False
        self._stop.set()
        if getattr(self, '_reader', None) is not None:
            self._reader.join(2.0)
        if getattr(self, 'bus', None) is not None:
            self.bus.close()
        return super().destroy_node()


COMPONENT = Component(CanDriver, 'can_driver')


def main(args=None):
    """The node alone in this process (init, spin, shutdown; exit 2 on a ConfigError)."""
    COMPONENT.main(args)   # SystemExit(1) from _check_reader passes through


if __name__ == '__main__':
    main()
