"""pack_simulator: the simulated pack (bms_ros.core.pack_model) as a BMS slave on a CAN bus.

Steps the model on a wall-clock timer at ``time_scale`` simulated seconds per wall second,
sends the measurement frames of the profile's DBC at their periods, applies the contactor and
balancing commands it receives, and publishes the ground truth.

Parameters: profile (YAML path), time_scale (0 = the profile's), interface, channel, host,
port (the python-can bus; defaults from the profile's `can:` section, opened by
bms_ros.core.can_bus.CanBus with its reconnect and back-off), tick_s (wall period of the
timer, s; 0, the default, = the fastest measurement frame period of the mapping, 10 ms).
Subscribes: load_demand (std_msgs/Float32, A, + = charging: overrides the profile load),
load_demand_power (std_msgs/Float32, W, + = charging: the same as a power).
Publishes: sim_truth (bms_interfaces/SimTruth, 10 Hz wall).
Services: sim/inject_fault (bms_interfaces/InjectFault).

Frame timing runs on the simulated clock divided by time_scale, so the bus carries realistic
rates in wall time (cells every 100 ms, current every 10 ms) however fast the pack is run. The
pack's command timeouts (bms_ros.core.pack_model.CommandWatchdog) run on the wall clock, as a
real controller's timer does, so a tick thread held under load (the simulation slips behind)
does not extend them: no contactor command frame for simulator.contactors.command_timeout_s
opens every contactor, no balancing command for simulator.balancing_command_timeout_s stops
bleeding. Frame faults
(can_silent, can_frozen: bms_ros.core.sim_frame_faults) act on the encoded frames.

The tick runs in its own thread, not on an rclpy timer: at 100 ticks/s the executor's wake-ups
cost two thirds of the simulator's CPU (py-spy, issue 18). One lock serialises the tick and
every callback that touches the model, as one executor thread did; an exception in the tick
is raised again on the executor's thread (the truth timer), so the process exits as before.
"""
import math
import threading
import time
from dataclasses import replace

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from std_msgs.msg import Float32

from bms_interfaces.msg import PackState, ProtectionStatus, SimTruth
from bms_interfaces.srv import InjectFault
from bms_ros.core import contract
from bms_ros.core.can_bus import CanBus, load_can_settings
from bms_ros.core.can_codec import CanProtocol, PackEncoder
from bms_ros.core.errors import ConfigError
from bms_ros.core.pack_model import CommandWatchdog, PackModel, check_command_timeout
from bms_ros.core.pack_model.pacing import RealTimePacer, next_tick_s
from bms_ros.core.profile import Profile, default_profile_path
from bms_ros.core.sim_faults import FRAME_FAULTS, FaultError
from bms_ros.core.sim_frame_faults import FrameFaults
from bms_ros.nodes import qos
from bms_ros.nodes.effective import declare_effective
from bms_ros.nodes.runner import Component

TRUTH_PERIOD_S = 0.1          # seconds (wall)
MAX_TICK_WORK_S = 0.05        # seconds of simulated work per tick before the sim falls behind
MAX_FRAMES_PER_TICK = 500
HELD_S = 0.1                  # a tick or a truth this late is logged as held (wall s)


class PackSimulator(Node):
    """The simulated pack on the CAN bus."""

    def __init__(self, **node_options):
        """``node_options``: rclpy Node keywords (cli_args, namespace, ...; a container's)."""
        super().__init__('pack_simulator', **node_options)
        path = self.declare_parameter('profile', default_profile_path()).value
        # Everything that can fail on configuration happens before any publisher exists.
        profile = Profile(path)
        self.model = PackModel.from_profile(profile)
        settings = load_can_settings(profile)
        self.protocol = CanProtocol.from_files(settings.dbc_path, settings.mapping_path,
                                               profile.pack.cells_series,
                                               profile.pack.temperature_sensors)
        check_command_timeout(self.model.config,
                              getattr(self.protocol.mapping.command('contactor'), 'period_s', None),
                              path)
        self.encoder = PackEncoder(self.protocol)
        self.frame_faults = FrameFaults(self.protocol)
        scale = float(self.declare_parameter('time_scale', 0.0).value)
        if not (math.isfinite(scale) and 0.0 <= scale <= 10000.0):
            raise ConfigError(path, 'time_scale (parameter)',
                              f'expected 0 (the profile\'s) or a number in (0, 10000], '
                              f'got {scale!r}')
        self.time_scale = scale if scale > 0.0 else self.model.config.time_scale
        # the command timeouts on the wall clock: a slipped simulation must not delay them
        self.watchdog = CommandWatchdog(self.model, self.time_scale, clock=time.monotonic)
        tick_s = float(self.declare_parameter('tick_s', 0.0).value)
        if not (tick_s == 0.0 or 0.0005 <= tick_s <= 0.1):
            raise ConfigError(path, 'tick_s (parameter)',
                              f'expected 0 (the fastest frame period) or a period in '
                              f'[0.0005, 0.1] s, got {tick_s!r}')
        if tick_s == 0.0:
            # frames run on bus time (wall rate): a tick per fastest frame is all they need;
            # a faster tick only spins (5 ms cost 17 % of a core at rest, issue 18)
            tick_s = min(0.1, max(0.0005, min(self.protocol.periods_s().values(),
                                              default=0.01)))
        bus = settings.bus
        settings = settings.with_overrides(
            interface=self.declare_parameter('interface', bus.interface).value,
            channel=self.declare_parameter('channel', bus.channel).value,
            host=self.declare_parameter('host', bus.host).value,
            port=int(self.declare_parameter('port', bus.port).value))
        bus = settings.bus
        if bus.interface == 'socketcand' and 'tcp_tune' not in bus.options:
            # no Nagle delay on the measurement frames (the pack sends ~150 frames/s)
            bus = replace(bus, options={**bus.options, 'tcp_tune': True})
        self.bus = CanBus(bus)
        self.frames_received = 0
        self.demands_rejected = 0
        self.commands_rejected = 0

        # the effective configuration as read-only parameters (bmsctl config)
        declare_effective(self, profile.pack, 'pack')
        declare_effective(self, self.model.config, 'simulator')
        stream = qos.STREAM
        self.truth_pub = self.create_publisher(SimTruth, contract.SIM_TRUTH, stream)
        self.create_subscription(Float32, contract.LOAD_DEMAND, self.on_load_demand, stream)
        self.create_subscription(Float32, contract.LOAD_DEMAND_POWER, self.on_load_demand_power,
                                 stream)
        self.create_service(InjectFault, contract.INJECT_FAULT, self.on_inject_fault)
        # the demo's charger: plugged in while the supervisor is in CHARGE, following the
        # BMS's allowed charge current as a CAN charger would (bms_ros.core.pack_model)
        latched = qos.LATEST
        self.create_subscription(PackState, contract.PACK_STATE, self.on_pack_state, latched)
        self.create_subscription(ProtectionStatus, contract.PROTECTION_STATUS,
                                 self.on_protection_status, stream)
        # the ambient temperature, settable at run time (bmsctl sim ambient)
        self.declare_parameter('ambient_degc', float(self.model.ambient_degc))
        self.add_on_set_parameters_callback(self.on_set_parameters)
        self.bus.open()
        self._pacer = RealTimePacer(time.monotonic(), self.model.sim_time_s, self.time_scale,
                                    self.model.step_s, MAX_TICK_WORK_S)
        self._lock = threading.Lock()      # the model: tick thread against callbacks
        self._stop = threading.Event()
        self._tick_error = None            # raised again on the executor's thread
        self._truth_due_s = time.monotonic() + TRUTH_PERIOD_S
        self.create_timer(TRUTH_PERIOD_S, self.publish_truth)
        self._ticker = threading.Thread(target=self._tick_main, args=(tick_s,),
                                        name='pack_tick', daemon=True)
        self._ticker.start()
        pack = profile.pack
        config = self.model.config
        self.get_logger().info(
            f'{pack.name}: {pack.cells_series}s{pack.cells_parallel}p, '
            f'{pack.temperature_sensors} sensors, load {self.model.load.description}, '
            f'time_scale {self.time_scale:g}, step {self.model.step_s:g} s, tick '
            f'{tick_s * 1e3:g} ms, bus '
            f'{bus.describe()}, thermal time constant '
            f'{self.model.thermal_time_constant_s / 60.0:.1f} min, charger CC '
            f'{self.model.charger.current_a:g} A CV {self.model.charger.cell_voltage_v:g} V/cell, '
            f'command timeouts {config.contactor_command_timeout_s:g} s '
            f'(contactors), {config.balancing_command_timeout_s:g} s (balancing) of bus time')

    # ------------------------------------------------------------------ bus

    def _receive_commands(self):
        """Apply the command frames queued on the bus (CanBus reconnects, never raises)."""
        for msg in self.bus.recv_batch(0.0, MAX_FRAMES_PER_TICK):
            self.frames_received += 1
            command = self.encoder.decode_command(msg)
            if command is None:
                continue
            if command['kind'] == 'contactor':
                self.watchdog.contactor_command(command['negative_closed'],
                                                command['precharge_closed'],
                                                command['positive_closed'])
            else:
                try:
                    self.watchdog.balancing_command(command['cell_bleed'])
                except ValueError as error:
                    self.commands_rejected += 1
                    self.get_logger().warning(f'balancing command rejected: {error}',
                                              throttle_duration_sec=5.0)

    # ------------------------------------------------------------------ callbacks

    def _tick_main(self, tick_s):
        """Tick thread: on_tick every ``tick_s`` (wall s) on the monotonic clock until stopped."""
        next_s = time.monotonic()
        try:
            while not self._stop.is_set() and self.context.ok():
                with self._lock:
                    self.on_tick()
                now = time.monotonic()
                next_s = next_tick_s(next_s, now, tick_s)
                # the stop event, not time.sleep: a plain sleep measured ~15 us less CPU a tick
                # alone, yet the suite used more (can_hub +0.5 % of a core, issue 18)
                self._stop.wait(max(0.0, next_s - now))
        except Exception as error:   # handed to the executor's thread (publish_truth)
            self._tick_error = error

    def on_tick(self):
        """Receive commands, advance the model to the wall clock, apply the command timeouts,
        send the due frames.
        """
        self._receive_commands()
        slipped_s = self._pacer.slipped_s
        behind, first_slip = self._pacer.due_s(time.monotonic(), self.model.sim_time_s)
        if first_slip:   # the CPU cannot keep up: the pacer runs what fits, time slips
            self.get_logger().warning(
                f'simulation slower than time_scale {self.time_scale:g}: time slips')
        if self._pacer.slipped_s - slipped_s > HELD_S:   # a held tick thread (load, a stall)
            self.get_logger().warning(
                f'tick held: time slipped {self._pacer.slipped_s - slipped_s:.3f} s (wall) at '
                f'this tick, {self._pacer.slipped_s:.3f} s in total')
        if behind > 0.0:
            self.model.advance(behind)
        # separate call sites: rclpy fixes the severity of each logging call site
        for level, text in self.watchdog.check():
            if level == 'warning':
                self.get_logger().warning(text)
            else:
                self.get_logger().info(text)
        # the readings only of what the due frames carry (its noise drawn at every tick)
        frames = self.encoder.due_frames_measured(self.watchdog.bus_time_s, self.model.measured)
        if not self.bus.connected:
            return
        for frame in self.frame_faults.apply(frames):
            if not self.bus.send(frame):
                return      # the bus dropped (counted in CanBus); it reopens after the back-off

    def on_load_demand(self, msg):
        """External demand (A, + = charging); NaN or infinite values are rejected and counted."""
        try:
            with self._lock:
                self.model.set_demand(msg.data)
        except ValueError as error:
            self.demands_rejected += 1
            self.get_logger().warning(f'load_demand rejected ({self.demands_rejected}): {error}',
                                      throttle_duration_sec=5.0)

    def on_load_demand_power(self, msg):
        """External power demand (W, + = charging); NaN or infinite values are rejected."""
        try:
            with self._lock:
                self.model.set_demand_power(msg.data)
        except ValueError as error:
            self.demands_rejected += 1
            self.get_logger().warning(f'load_demand_power rejected ({self.demands_rejected}): '
                                      f'{error}', throttle_duration_sec=5.0)

    def on_pack_state(self, msg):
        """The charger is plugged in while the pack is in CHARGE."""
        with self._lock:
            self.model.set_charger(msg.state == PackState.STATE_CHARGE)

    def on_protection_status(self, msg):
        """The charger follows the BMS's allowed charge current (A, magnitude)."""
        with self._lock:
            self.model.set_charger(self.model.charger_enabled, msg.charge_current_limit_a)

    def on_set_parameters(self, parameters):
        """ambient_degc at run time; a bad value is refused with the reason."""
        for parameter in parameters:
            if parameter.name == 'ambient_degc':
                try:
                    with self._lock:
                        self.model.set_ambient(parameter.value)
                except (TypeError, ValueError) as error:
                    return SetParametersResult(successful=False, reason=str(error))
                self.get_logger().info(f'ambient set to {self.model.ambient_degc:g} degC')
        return SetParametersResult(successful=True)

    def on_inject_fault(self, request, response):
        """Inject or clear a fault of the simulated pack."""
        with self._lock:
            return self._inject_fault(request, response)

    def _inject_fault(self, request, response):
        try:
            if request.fault in FRAME_FAULTS:
                faults = self.frame_faults
                response.message = faults.clear(request.fault, request.index) if request.clear \
                    else faults.inject(request.fault, request.index)
            elif request.clear:
                response.message = self.model.clear_fault(request.fault, request.index)
                if request.fault == 'all':
                    self.frame_faults.clear_all()
            else:
                response.message = self.model.inject_fault(request.fault, request.index,
                                                           request.value)
            response.success = True
            self.get_logger().info(f'inject_fault: {response.message}')
        except FaultError as error:
            response.success = False
            response.message = str(error)
            self.get_logger().warning(f'inject_fault refused: {error}')
        return response

    def publish_truth(self):
        """Publish the ground truth of the pack (10 Hz wall); raise the tick thread's failure."""
        if self._tick_error is not None:
            raise self._tick_error
        now = time.monotonic()
        late_s = now - self._truth_due_s
        self._truth_due_s = max(self._truth_due_s + TRUTH_PERIOD_S, now)
        if late_s > HELD_S:   # the executor thread held (the fault campaign discounts it)
            self.get_logger().warning(f'truth held: sim_truth {late_s:.3f} s late')
        with self._lock:
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
        """Stop the tick thread, close the CAN bus, then destroy the node."""
        self._stop.set()
        if self._ticker.is_alive():
            self._ticker.join(timeout=2.0)
        self.bus.close()
        super().destroy_node()


COMPONENT = Component(PackSimulator, 'pack_simulator')


def main(args=None):
    """The node alone in this process (init, spin, shutdown; exit 2 on a ConfigError)."""
    COMPONENT.main(args)


if __name__ == '__main__':
    main()
