"""can_driver: the pack's CAN bus (DBC + mapping, bms_ros.core.can_codec) wired to ROS.

Parameters: profile (YAML path; its `can:` section, validated at start-up); interface,
channel, host, port, bitrate, stale_timeout_s, publish_rate_hz, publish_can_rx override the
profile's `can:` values when set.
Publishes: measurement (PackMeasurement, publish_rate_hz), can_rx (CanFrame, every frame
received, if publish_can_rx), /diagnostics (DiagnosticArray, 1 Hz: bus state, reconnects,
frames received / rejected by reason, stale groups).
Subscribes: contactor_command (ContactorCommand; sent at once and repeated at the mapping's
period), balancing_command (BalancingCommand; sent at once).

A reader thread receives frames in batches into the assembler; the measurement is assembled on
the timer, so decoding costs no ROS message per frame. can_rx does cost one message per frame:
at a saturated 1 Mbit/s bus (8,000 frames/s) bench/can_decode.py measured the driver at ~6 %
of a core with can_rx off, ~11 % with can_rx on and no subscriber, ~24 % with a subscriber
(a recorder); set publish_can_rx false where no recording is wanted.
"""
import array
import math
import threading
import time

import can
import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from bms_interfaces.msg import BalancingCommand, CanFrame, ContactorCommand, PackMeasurement
from bms_ros.nodes.runner import run_node
from bms_ros.core.can_bus import CanBus, load_can_settings
from bms_ros.core.can_codec import (MESSAGE_FIELDS, REJECT_REASONS, VALUE_REASONS,
                                    CanProtocol, CommandEncoder, MeasurementAssembler)
from bms_ros.core.errors import ConfigError, EncodeError
from bms_ros.core.prompt_publish import PromptPolicy
from bms_ros.core.profile import Profile, default_profile_path

_OVERRIDES = {   # parameter -> (python type, profile setting it overrides)
    'interface': str, 'channel': str, 'host': str, 'port': int, 'bitrate': int,
    'stale_timeout_s': float, 'publish_rate_hz': float, 'publish_can_rx': bool,
    'prompt_min_interval_s': float,
}
_FLOAT_ARRAYS = ('cell_voltages_v', 'temperatures_degc')
_BOOL_ARRAYS = ('cell_voltage_valid', 'temperature_valid', 'cell_balancing')
_STAMPS = ('cell_voltages_stamp', 'temperatures_stamp', 'current_stamp')


def _time_msg(seconds):
    """builtin_interfaces/Time of a time in seconds (zero for NaN: never received)."""
    if not math.isfinite(seconds) or seconds <= 0.0:
        return Time()
    sec = int(seconds)
    return Time(sec=sec, nanosec=min(int((seconds - sec) * 1e9), 999_999_999))


class CanDriver(Node):
    """Reads the pack's frames into PackMeasurement and sends contactor / balancing commands."""

    def __init__(self):
        super().__init__('can_driver')
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
        self.stale_timeout_s = overrides.get('stale_timeout_s', settings.stale_timeout_s)
        publish_rate_hz = overrides.get('publish_rate_hz', settings.publish_rate_hz)
        self.publish_can_rx = overrides.get('publish_can_rx', settings.publish_can_rx)
        self.protocol = CanProtocol.from_files(settings.dbc_path, settings.mapping_path,
                                               profile.pack.cells_series,
                                               profile.pack.temperature_sensors)
        self.assembler = MeasurementAssembler(self.protocol)
        # frames that carry limit-relevant groups trigger a prompt publish (core/prompt_publish)
        self.prompt_min_interval_s = overrides.get('prompt_min_interval_s',
                                                   settings.prompt_min_interval_s)
        self.prompt = PromptPolicy(self.protocol, self.prompt_min_interval_s,
                                   settings.prompt_current_a)
        self._publish_lock = threading.Lock()
        self._last_publish = 0.0
        self.commands = CommandEncoder(self.protocol)
        self.bus = CanBus(settings.bus)
        self.commands_rejected = 0
        self.can_rx_published = 0
        self._last_contactor = None
        self._rx_rate = (time.monotonic(), 0, 0.0)   # (time, frames, frames/s)

        stream = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.measurement_pub = self.create_publisher(PackMeasurement, 'measurement', stream)
        self.can_rx_pub = None
        if self.publish_can_rx:
            self.can_rx_pub = self.create_publisher(
                CanFrame, 'can_rx', QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', stream)
        self.create_subscription(ContactorCommand, 'contactor_command', self.on_contactor, stream)
        self.create_subscription(BalancingCommand, 'balancing_command', self.on_balancing, stream)
        self.create_timer(1.0 / publish_rate_hz, self.publish_measurement)
        self.create_timer(1.0, self.publish_diagnostics)
        if self.commands.contactor_period_s:
            self.create_timer(self.commands.contactor_period_s, self.repeat_contactor)

        self._running = True
        self._reader = threading.Thread(target=self._read_loop, name='can_reader', daemon=True)
        self._reader.start()
        mapping = self.protocol.mapping
        self.get_logger().info(
            f'{profile.pack.name}: {settings.bus.describe()}, DBC {settings.dbc_path}, '
            f'{len(mapping.measurement)} measurement and {len(mapping.commands)} command '
            f'messages, {profile.pack.cells_series} cells, {profile.pack.temperature_sensors} '
            f'sensors, stale after {self.stale_timeout_s:g} s, measurement at '
            f'{publish_rate_hz:g} Hz, can_rx {"on" if self.publish_can_rx else "off"}')

    # ------------------------------------------------------------------ receiving

    def _read_loop(self):
        """Reader thread: frames in batches into the assembler (and can_rx)."""
        bus = self.bus
        assembler = self.assembler
        frame = CanFrame()
        prompt_pending = False   # a prompt frame arrived since the last publish
        while self._running:
            wait_s = 0.1
            if prompt_pending:
                wait_s = max(0.0, self._last_publish + self.prompt_min_interval_s
                             - time.monotonic())
            batch = bus.recv_batch(wait_s, 256)
            now = time.monotonic()
            if batch:
                assembler.feed_many(batch, now)
                if self.can_rx_pub is not None:
                    self._publish_frames(batch, frame)
                if self.prompt.wanted(batch, assembler):
                    prompt_pending = True
            # publish a prompt one at once, or as soon as the minimum interval allows, so the
            # rest of a burst (the other cell blocks) is never left waiting for the timer
            if prompt_pending and now - self._last_publish >= self.prompt_min_interval_s:
                prompt_pending = False
                try:
                    self.publish_measurement()
                except Exception:  # noqa: BLE001  context shut down under us
                    return

    def _publish_frames(self, batch, frame):
        """One CanFrame per received frame; one reused message object (publish copies it)."""
        frame.header.stamp = self.get_clock().now().to_msg()
        publish = self.can_rx_pub.publish
        for msg in batch:
            data = bytes(msg.data)
            frame.id = msg.arbitration_id
            frame.is_extended = msg.is_extended_id
            frame.is_rtr = msg.is_remote_frame
            frame.is_error = msg.is_error_frame
            frame.dlc = min(len(data), 8)
            frame.data = np.frombuffer(data[:8].ljust(8, b'\0'), dtype=np.uint8)
            try:
                publish(frame)
            except Exception:  # noqa: BLE001  context shut down under us
                return
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
        self._last_contactor = (msg.negative_closed, msg.precharge_closed, msg.positive_closed)
        self._send_contactor()

    def repeat_contactor(self):
        if self._last_contactor is not None:
            self._send_contactor()

    def _send_contactor(self):
        for frame in self.commands.encode_contactor_command(*self._last_contactor):
            self.bus.send(frame)

    def on_balancing(self, msg):
        try:
            frames = self.commands.encode_balancing_command(np.asarray(msg.cell_bleed, bool))
        except EncodeError as error:
            self.commands_rejected += 1
            self.get_logger().warning(f'balancing_command rejected: {error}',
                                      throttle_duration_sec=5.0)
            return
        for frame in frames:
            self.bus.send(frame)

    # ------------------------------------------------------------------ diagnostics

    def publish_diagnostics(self):
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
        elif snap.stale_groups:
            status.level = DiagnosticStatus.WARN
            status.message = f'stale: {", ".join(snap.stale_groups)}'
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
        }
        values.update({f'bus_{k}': v for k, v in bus.counters.items()})
        values.update({f'rejected_{k}': snap.counts.get(k, 0) for k in REJECT_REASONS})
        values.update({f'values_{k}': snap.counts.get(k, 0) for k in VALUE_REASONS})
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        out = DiagnosticArray()
        out.header.stamp = self.get_clock().now().to_msg()
        out.status = [status]
        self.diagnostics_pub.publish(out)

    def destroy_node(self):
        self._running = False
        if getattr(self, '_reader', None) is not None:
            self._reader.join(2.0)
        if getattr(self, 'bus', None) is not None:
            self.bus.close()
        return super().destroy_node()


def main(args=None):
    run_node(CanDriver, 'can_driver', args)


if __name__ == '__main__':
    main()
