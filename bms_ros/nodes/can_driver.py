"""can_driver: the pack's CAN bus (DBC + mapping, bms_ros.core.can_codec) wired to ROS.

Wiring only: the rules are in core: can_settings (the can: section and the parameters that
override it), can_driver_runtime (command deadlines, timer periods, prompt timing, the time
line of stamps, message fields) and can_driver_status (counters, /diagnostics and log texts).

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
from __future__ import annotations

import os
import threading
import time
from typing import Any

import can
import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from bms_interfaces.msg import BalancingCommand, CanFrame, ContactorCommand, PackMeasurement
from bms_ros.core import contract
from bms_ros.core.can_bus import CanBus
from bms_ros.core.can_codec import CanProtocol, CommandEncoder, MeasurementAssembler
from bms_ros.core.can_driver_runtime import (
    ALL_OPEN,
    READER_CHECK_S,
    STAMPS,
    can_rx_fields,
    contactor_command_of,
    driver_deadlines,
    in_turn,
    measurement_fields,
    prompt_due,
    reader_wait_s,
    startup_text,
    timer_groups,
)
from bms_ros.core.can_driver_status import (
    RESTART_WINDOW_S,
    DriverCounters,
    balancing_lost_text,
    bus_status,
    bus_values,
    command_status,
    contactor_lost_text,
    reader_fatal_text,
    resumed_text,
)
from bms_ros.core.can_settings import (
    BUS_OVERRIDES,
    DRIVER_OVERRIDES,
    check_overrides,
    load_can_settings,
)
from bms_ros.core.command_deadline import RestartBudget, load_can_failsafe, run_with_restarts
from bms_ros.core.errors import EncodeError
from bms_ros.core.pack_report import check_style, load_control
from bms_ros.core.profile import Profile, default_profile_path
from bms_ros.core.prompt_publish import PromptPolicy
from bms_ros.nodes import qos
from bms_ros.nodes.effective import declare_effective
from bms_ros.nodes.runner import Component

# Tests only: the reader's first N runs raise (no real fault reaches the reader: CanBus and the
# assembler absorb every bus and frame error), so test/ros/test_can_driver.py can prove the
# restart and the exit. Unset in every real launch.
_TEST_READER_FAULTS = 'BMS_ROS_TEST_READER_FAULTS'


def _time(stamp: tuple[int, int]) -> Time:
    """builtin_interfaces/Time of a (sec, nanosec) pair."""
    return Time(sec=stamp[0], nanosec=stamp[1])


class CanDriver(Node):
    """Reads the pack's frames into PackMeasurement and sends contactor / balancing commands."""

    def __init__(self, **node_options: Any) -> None:
        """``node_options``: rclpy Node keywords (cli_args, namespace, ...; a container's)."""
        super().__init__('can_driver', **node_options)
        path = self.declare_parameter('profile', default_profile_path()).value
        dynamic = ParameterDescriptor(dynamic_typing=True)
        # Configuration errors surface here, before any publisher exists.
        overrides = check_overrides({name: self.declare_parameter(name, None, dynamic).value
                                     for name in DRIVER_OVERRIDES})
        profile = Profile(path)
        settings = load_can_settings(profile).with_overrides(
            **{k: overrides.get(k) for k in BUS_OVERRIDES})
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
        self.counters = DriverCounters()
        start = time.monotonic()
        self.counters.start(start)
        deadlines = driver_deadlines(self.commands, self.failsafe, self.protocol.cells_series,
                                     start)
        self.contactor_deadline = deadlines.contactor
        self.balancing_deadline = deadlines.balancing
        self.reader_budget = RestartBudget(self.failsafe.reader_restart_max,
                                          window_s=RESTART_WINDOW_S)
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
            periodic.append((deadlines.contactor_timer_s, self.repeat_contactor))
        if self.balancing_deadline is not None:
            periodic.append((deadlines.balancing_timer_s, self.check_balancing))
        periodic.append((READER_CHECK_S, self._check_reader))      # last: it may exit the node
        # the bus side runs on the steady clock: with use_sim_time a paused or not yet
        # started /clock (Gazebo paused, a bag not yet playing) must not stop the measurement
        # stream and the contactor repeat, which protection would then see as a lost driver
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        for period, callbacks in timer_groups(periodic):
            self.create_timer(period, callbacks[0] if len(callbacks) == 1
                              else in_turn(callbacks), clock=steady)

        self._running = True
        self._reader = threading.Thread(target=self._reader_main, name='can_reader',
                                        daemon=True)
        self._reader.start()
        mapping = self.protocol.mapping
        self.get_logger().info(startup_text(
            profile.pack.name, settings.bus.describe(),
            [(d.name, d.dbc_path) for d in self.protocol.devices], len(mapping.measurement),
            len(mapping.commands), profile.pack.cells_series, profile.pack.temperature_sensors,
            self.stale_timeout_s, publish_rate_hz, self.publish_can_rx,
            self.failsafe.command_deadline_s, self.failsafe.balancing_deadline_s))

    # ------------------------------------------------------------------ receiving

    def _reading(self) -> bool:
        """True while the reader should run (not stopping, context alive)."""
        return self._running and self.context.ok()

    def _reader_main(self) -> None:
        """Reader thread: the read loop, restarted after a failure within the budget."""
        def wait(delay_s: float) -> bool:
            self._reader_down = True
            stopped = self._stop.wait(delay_s)
            self._reader_down = False
            return stopped
        if not run_with_restarts(self._read_loop, self.reader_budget, self._reading,
                                 time.monotonic, wait, name='CAN reader thread'):
            self._fatal = reader_fatal_text(self.reader_budget.max_restarts)

    def _read_loop(self) -> None:
        """Frames in batches into the assembler (and can_rx); returns when stopping."""
        if self._test_faults > 0:
            self._test_faults -= 1
            raise RuntimeError(f'fault injected by {_TEST_READER_FAULTS} (tests only)')
        bus = self.bus
        assembler = self.assembler
        frame = CanFrame()
        prompt_pending = False   # a prompt frame arrived since the last publish
        while self._reading():
            wait_s = reader_wait_s(prompt_pending, self._last_publish,
                                   self.prompt_min_interval_s, time.monotonic())
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
            if prompt_due(prompt_pending, urgent, self._last_publish,
                          self.prompt_min_interval_s, now):
                prompt_pending = False
                self.publish_measurement()   # raises only when shutting down (run quietly)

    def _publish_frames(self, batch: list[can.Message], frame: CanFrame) -> None:
        """One CanFrame per received frame; one reused message object (publish copies it)."""
        frame.header.stamp = self.get_clock().now().to_msg()
        publish = self.can_rx_pub.publish
        counters = self.counters
        for msg in batch:
            fields = can_rx_fields(msg)
            if fields is None:
                counters.can_rx_skipped += 1
                continue
            frame.id, frame.is_extended, frame.is_rtr, frame.is_error, frame.dlc, data = fields
            frame.data = np.frombuffer(data, dtype=np.uint8)
            publish(frame)
            counters.can_rx_published += 1

    def publish_measurement(self) -> None:
        """Publish a snapshot; called by the timer and, promptly, by the reader thread."""
        with self._publish_lock:
            self._last_publish = time.monotonic()
            self._publish_measurement()

    def _publish_measurement(self) -> None:
        now_ros = self.get_clock().now()
        now_mono = time.monotonic()
        snap = self.assembler.snapshot(now_mono, self.stale_timeout_s)
        msg = PackMeasurement()
        msg.header.stamp = now_ros.to_msg()
        for name, value in measurement_fields(snap, now_mono, now_ros.nanoseconds * 1e-9).items():
            setattr(msg, name, _time(value) if name in STAMPS else value)
        self.measurement_pub.publish(msg)
        self._last_snapshot = snap

    # ------------------------------------------------------------------ commands

    def on_contactor(self, msg: ContactorCommand) -> None:
        """Forward a ContactorCommand to the pack (at once if it is new; the same command again
        goes out with the cyclic repeat) and restart its command deadline.
        """
        command = contactor_command_of(msg.negative_closed, msg.precharge_closed,
                                       msg.positive_closed)
        if self.contactor_deadline.receive(command, time.monotonic()):
            self.get_logger().info(resumed_text(contract.CONTACTOR_COMMAND))
        if self.contactor_deadline.forward_now:   # else the cyclic repeat sends it
            self._send_contactor(command)

    def repeat_contactor(self) -> None:
        """Timer: repeat the last command, or all open once it is past its deadline."""
        now_s = time.monotonic()
        command, expired = self.contactor_deadline.tick(now_s)
        if expired:
            # the age says whether this timer ran late or the last command arrived late
            self.get_logger().error(contactor_lost_text(
                self.contactor_deadline, self.contactor_deadline.age_s(now_s)))
        if command is not None:
            self._send_contactor(command)

    def _send_contactor(self, command: tuple[bool, bool, bool]) -> None:
        if self.commands.contactor is None:   # style (b): the pack owns its contactors
            return
        for frame in self.commands.encode_contactor_command(*command):
            self.bus.send(frame)

    def on_balancing(self, msg: BalancingCommand) -> None:
        """Encode a BalancingCommand's cell bleed flags as frames and send them."""
        try:
            cell_bleed = np.asarray(msg.cell_bleed, bool)
            frames = self.commands.encode_balancing_command(cell_bleed)
        except EncodeError as error:
            self.counters.commands_rejected += 1
            self.get_logger().warning(f'balancing_command rejected: {error}',
                                      throttle_duration_sec=5.0)
            return
        if self.balancing_deadline.receive(cell_bleed, time.monotonic()):
            self.get_logger().info(resumed_text(contract.BALANCING_COMMAND))
        for frame in frames:
            self.bus.send(frame)

    def check_balancing(self) -> None:
        """Timer: an all-zero bleed command once the balancing command is past its deadline."""
        command, expired = self.balancing_deadline.tick(time.monotonic())
        if expired:
            self.get_logger().warning(balancing_lost_text(self.balancing_deadline))
        if command is not None:
            for frame in self.commands.encode_balancing_command(command):
                self.bus.send(frame)

    def _check_reader(self) -> None:
        """Timer: exit with code 1 (all open first) once the reader's budget is spent."""
        if self._fatal is None:
            return
        self.get_logger().fatal(f'{self._fatal}: sending all open and exiting (code 1)')
        self.bus.open()                  # the reader opens the bus; it may never have run
        self._send_contactor(ALL_OPEN)
        self.publish_diagnostics()
        raise SystemExit(1)

    # ------------------------------------------------------------------ diagnostics

    def publish_diagnostics(self) -> None:
        """Publish the bus's and the decoder's counters as /diagnostics."""
        snap = getattr(self, '_last_snapshot', None) or self.assembler.snapshot(
            time.monotonic(), self.stale_timeout_s)
        bus = self.bus
        now = time.monotonic()
        self.counters.update_rate(now, self.assembler.frames_received)
        level, message = bus_status(bus.connected, bus.state, bus.last_error, self._fatal,
                                    self._reader_down, self.reader_budget.restarts, snap,
                                    self.counters.rate_per_s)
        values = bus_values(bus.state, bus.last_error, bus.counters, snap,
                            self.assembler.frames_ignored, self.counters,
                            self.reader_budget.restarts)
        out = DiagnosticArray()
        out.header.stamp = self.get_clock().now().to_msg()
        out.status = [self._status('CAN bus', level, message, values)]
        for topic, deadline in ((contract.CONTACTOR_COMMAND, self.contactor_deadline),
                                (contract.BALANCING_COMMAND, self.balancing_deadline)):
            if deadline is not None:
                out.status.append(self._status(topic, *command_status(topic, deadline, now)))
        self.diagnostics_pub.publish(out)

    def _status(self, what: str, level: str, message: str,
                values: dict[str, str]) -> DiagnosticStatus:
        """One DiagnosticStatus of this node ('<node>: <what>')."""
        return DiagnosticStatus(
            name=f'{self.get_fully_qualified_name()}: {what}',
            hardware_id=self.settings.bus.describe(), level=getattr(DiagnosticStatus, level),
            message=message, values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def destroy_node(self) -> None:
        """Stop the reader thread and close the bus, then destroy the node."""
        self._running = False
        self._stop.set()
        if getattr(self, '_reader', None) is not None:
            self._reader.join(2.0)
        if getattr(self, 'bus', None) is not None:
            self.bus.close()
        return super().destroy_node()


COMPONENT = Component(CanDriver, 'can_driver')


def main(args: list[str] | None = None) -> None:
    """The node alone in this process (init, spin, shutdown; exit 2 on a ConfigError)."""
    COMPONENT.main(args)   # SystemExit(1) from _check_reader passes through


if __name__ == '__main__':
    main()
