"""pack_simulator: the simulated pack (bms_ros.core.pack_model) as a BMS slave on a CAN bus.

Steps the model on a wall-clock timer at ``time_scale`` simulated seconds per wall second,
sends the measurement frames of the profile's DBC at their periods, applies the contactor and
balancing commands it receives, and publishes the ground truth.

Parameters: profile (YAML path), time_scale (0 = the profile's), interface, channel, host,
port (the python-can bus; defaults from the profile's `can:` section, else socketcand on
127.0.0.1:29536, channel vcan0), tick_s (wall period of the timer, s).
Subscribes: load_demand (std_msgs/Float32, A, + = charging: overrides the profile load),
load_demand_power (std_msgs/Float32, W, + = charging: the same as a power).
Publishes: sim_truth (bms_interfaces/SimTruth, 10 Hz wall).
Services: sim/inject_fault (bms_interfaces/InjectFault).

Frame timing runs on the simulated clock divided by time_scale, so the bus carries realistic
rates in wall time (cells every 100 ms, current every 10 ms) however fast the pack is run.
"""
import math
import os
import socket
import time

import can
import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float32

from bms_interfaces.msg import SimTruth
from bms_interfaces.srv import InjectFault
from bms_ros.nodes.runner import run_node
from bms_ros.core.can_codec import CanProtocol, PackEncoder
from bms_ros.core.errors import ConfigError
from bms_ros.core.pack_model import PackModel
from bms_ros.core.profile import Profile, config_dir, default_profile_path
from bms_ros.core.sim_faults import FaultError

DEFAULT_PORT = 29536          # socketcand's registered port
TRUTH_PERIOD_S = 0.1          # seconds (wall)
MAX_TICK_WORK_S = 0.05        # seconds of simulated work per tick before the sim falls behind
RECONNECT_MIN_S = 0.5         # seconds, doubled per failure
RECONNECT_MAX_S = 5.0
MAX_FRAMES_PER_TICK = 500


def _can_settings(profile):
    """(dbc, mapping, interface, channel, host, port) from the profile's `can:` section.

    The CAN driver owns and fully validates that section; here only the keys the simulator
    needs are read, each still type-checked (ConfigError naming file and field).
    """
    can_section = profile.section('can')
    folder = os.path.join(config_dir(), 'can')
    return (can_section.path_field('dbc', os.path.join(folder, 'bms_ros.dbc')),
            can_section.path_field('mapping', os.path.join(folder, 'bms_ros_mapping.yaml')),
            can_section.string('interface', 'socketcand'),
            can_section.string('channel', 'vcan0'),
            can_section.string('host', '127.0.0.1'),
            can_section.integer('port', DEFAULT_PORT, minimum=1, maximum=65535))


class PackSimulator(Node):
    """The simulated pack on the CAN bus."""

    def __init__(self):
        super().__init__('pack_simulator')
        path = self.declare_parameter('profile', default_profile_path()).value
        # Everything that can fail on configuration happens before any publisher exists.
        profile = Profile(path)
        self.model = PackModel.from_profile(profile)
        dbc, mapping, interface, channel, host, port = _can_settings(profile)
        self.protocol = CanProtocol.from_files(dbc, mapping, profile.pack.cells_series,
                                               profile.pack.temperature_sensors)
        self.encoder = PackEncoder(self.protocol)
        scale = float(self.declare_parameter('time_scale', 0.0).value)
        if not (math.isfinite(scale) and 0.0 <= scale <= 10000.0):
            raise ConfigError(path, 'time_scale (parameter)',
                              f'expected 0 (the profile\'s) or a number in (0, 10000], '
                              f'got {scale!r}')
        self.time_scale = scale if scale > 0.0 else self.model.config.time_scale
        tick_s = float(self.declare_parameter('tick_s', 0.005).value)
        if not 0.0005 <= tick_s <= 0.1:
            raise ConfigError(path, 'tick_s (parameter)',
                              f'expected a period in [0.0005, 0.1] s, got {tick_s!r}')
        self.bus_options = {
            'interface': self.declare_parameter('interface', interface).value,
            'channel': self.declare_parameter('channel', channel).value,
            'host': self.declare_parameter('host', host).value,
            'port': int(self.declare_parameter('port', port).value),
        }
        self.bus = None
        self._reconnect_at = 0.0
        self._reconnect_wait_s = RECONNECT_MIN_S
        self.frames_received = 0
        self.frames_send_failed = 0
        self.demands_rejected = 0
        self.commands_rejected = 0
        self._behind_logged = False

        stream = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.truth_pub = self.create_publisher(SimTruth, 'sim_truth', stream)
        self.create_subscription(Float32, 'load_demand', self.on_load_demand, stream)
        self.create_subscription(Float32, 'load_demand_power', self.on_load_demand_power, stream)
        self.create_service(InjectFault, 'sim/inject_fault', self.on_inject_fault)
        self._open_bus()
        self._wall_start = time.monotonic()
        self._sim_start = self.model.sim_time_s
        self.create_timer(tick_s, self.on_tick)
        self.create_timer(TRUTH_PERIOD_S, self.publish_truth)
        pack = profile.pack
        self.get_logger().info(
            f'{pack.name}: {pack.cells_series}s{pack.cells_parallel}p, '
            f'{pack.temperature_sensors} sensors, load {self.model.load.description}, '
            f'time_scale {self.time_scale:g}, step {self.model.step_s:g} s, bus '
            f'{self.bus_options["interface"]}:{self.bus_options["channel"]}')

    # ------------------------------------------------------------------ bus

    def _open_bus(self):
        options = self.bus_options
        kwargs = {'interface': options['interface'], 'channel': options['channel']}
        if options['interface'] == 'socketcand':
            kwargs.update(host=options['host'], port=options['port'], tcp_tune=True)
        try:
            if options['interface'] == 'socketcand':
                # python-can retries a refused connection in a busy loop for 10 s: probe first
                socket.create_connection((options['host'], options['port']), timeout=0.5).close()
            self.bus = can.Bus(**kwargs)
        except (OSError, can.CanError, ValueError) as error:
            self.bus = None
            self._reconnect_at = time.monotonic() + self._reconnect_wait_s
            self.get_logger().warning(
                f'cannot open CAN bus {kwargs}: {error}; retrying in '
                f'{self._reconnect_wait_s:g} s', throttle_duration_sec=10.0)
            self._reconnect_wait_s = min(RECONNECT_MAX_S, 2.0 * self._reconnect_wait_s)
            return
        self._reconnect_wait_s = RECONNECT_MIN_S
        self.get_logger().info(f'CAN bus open: {options["interface"]} {options["channel"]}')

    def _drop_bus(self, error):
        self.get_logger().warning(f'CAN bus lost: {error}; reconnecting')
        try:
            self.bus.shutdown()
        except Exception:  # noqa: BLE001  a dead bus may fail to shut down; it is dropped anyway
            pass
        self.bus = None
        self._reconnect_at = time.monotonic() + self._reconnect_wait_s

    def _receive_commands(self):
        for _ in range(MAX_FRAMES_PER_TICK):
            msg = self.bus.recv(timeout=0.0)
            if msg is None:
                return
            self.frames_received += 1
            command = self.encoder.decode_command(msg)
            if command is None:
                continue
            if command['kind'] == 'contactor':
                self.model.set_contactors(command['negative_closed'],
                                          command['precharge_closed'],
                                          command['positive_closed'])
            else:
                try:
                    self.model.set_bleed(command['cell_bleed'])
                except ValueError as error:
                    self.commands_rejected += 1
                    self.get_logger().warning(f'balancing command rejected: {error}',
                                              throttle_duration_sec=5.0)

    # ------------------------------------------------------------------ callbacks

    def on_tick(self):
        """Receive commands, advance the model to the wall clock, send the due frames."""
        now = time.monotonic()
        if self.bus is None and now >= self._reconnect_at:
            self._open_bus()
        if self.bus is not None:
            try:
                self._receive_commands()
            except (OSError, can.CanError) as error:
                self._drop_bus(error)
        target = self._sim_start + (now - self._wall_start) * self.time_scale
        behind = target - self.model.sim_time_s
        budget = MAX_TICK_WORK_S * self.time_scale + self.model.step_s
        if behind > budget:
            # the CPU cannot keep up: run what fits and let simulated time slip
            if not self._behind_logged:
                self.get_logger().warning(
                    f'simulation slower than time_scale {self.time_scale:g}: time slips')
                self._behind_logged = True
            self._sim_start -= behind - budget
            behind = budget
        if behind > 0.0:
            self.model.advance(behind)
        frames = self.encoder.due_frames(self.model.sim_time_s / self.time_scale,
                                         self.model.measured())
        if self.bus is None:
            return
        for frame in frames:
            try:
                self.bus.send(frame, timeout=0.01)
            except (OSError, can.CanError) as error:
                self.frames_send_failed += 1
                if not isinstance(error, can.CanOperationError):
                    self._drop_bus(error)
                    return

    def on_load_demand(self, msg):
        """External demand (A, + = charging); NaN or infinite values are rejected and counted."""
        try:
            self.model.set_demand(msg.data)
        except ValueError as error:
            self.demands_rejected += 1
            self.get_logger().warning(f'load_demand rejected ({self.demands_rejected}): {error}',
                                      throttle_duration_sec=5.0)

    def on_load_demand_power(self, msg):
        """External power demand (W, + = charging); NaN or infinite values are rejected."""
        try:
            self.model.set_demand_power(msg.data)
        except ValueError as error:
            self.demands_rejected += 1
            self.get_logger().warning(f'load_demand_power rejected ({self.demands_rejected}): '
                                      f'{error}', throttle_duration_sec=5.0)

    def on_inject_fault(self, request, response):
        """Inject or clear a fault of the simulated pack."""
        try:
            if request.clear:
                response.message = self.model.clear_fault(request.fault, request.index)
            else:
                response.message = self.model.inject_fault(request.fault, request.index,
                                                           request.value)
            response.success = True
        except FaultError as error:
            response.success = False
            response.message = str(error)
            self.get_logger().warning(f'inject_fault refused: {error}')
        return response

    def publish_truth(self):
        """Publish the ground truth of the pack (10 Hz wall)."""
        truth = self.model.truth()
        msg = SimTruth()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.model.pack.name
        for name, value in truth.items():
            if isinstance(value, np.ndarray):
                value = value.tolist()
            elif not isinstance(value, bool):
                value = float(value)
            setattr(msg, name, value)
        self.truth_pub.publish(msg)

    def destroy_node(self):
        if self.bus is not None:
            self.bus.shutdown()
            self.bus = None
        super().destroy_node()


def main(args=None):
    run_node(PackSimulator, 'pack_simulator', args)


if __name__ == '__main__':
    main()
