"""A stand-in pack for protection and supervisor ROS tests, run from the test probe.

It publishes PackMeasurement at 10 Hz (as the CAN driver does) and a BatteryEstimate, and
answers ContactorCommand like the real hardware: contactor feedback follows the command after
a closing delay (unless welded or stuck open), and the DC link charges through the pre-charge
resistor (time constant tau) or is shorted (it never rises).

SimulatedSuite instead starts the real thing: the CAN hub, pack_simulator and can_driver, with
protection and pack_supervisor, and records the contactor commands seen on the CAN bus.
"""
import math
import os
import socket
import threading
import time

import can
import yaml

from bms_interfaces.msg import BatteryEstimate, ContactorCommand, PackMeasurement
from bms_interfaces.srv import InjectFault
from bms_ros.core.can_codec import CanProtocol, PackEncoder
from bms_ros.core.profile import config_dir

from ..profile_copy import absolute_paths
from .harness import RELIABLE

CELLS = 16
SENSORS = 8
CELL_V = 3.3
PACK_V = CELLS * CELL_V


def write_profile(folder, protection=None, supervisor=None, base='lfp_16s.yaml', can=None,
                  simulator=None):
    """A copy of a shipped profile with edited protection/supervisor fields; returns its path.

    ``protection`` maps limit ids (or operating fields) to a dict of fields to change. Without
    ``can`` the simulator, CAN and other sections are dropped (nodes not started); with it they
    are kept and ``can`` / ``simulator`` update them (e.g. the hub's port).
    """
    profiles = os.path.join(config_dir(), 'profiles')
    with open(os.path.join(profiles, base), encoding='utf-8') as stream:
        data = absolute_paths(yaml.safe_load(stream), profiles)
    for key, value in (protection or {}).items():
        if isinstance(value, dict):
            data['protection'][key].update(value)
        else:
            data['protection'][key] = value
    data['supervisor'].update(supervisor or {})
    if can is None:
        for section in ('simulator', 'can', 'estimator', 'balancing', 'gazebo'):
            data.pop(section, None)   # not read by the nodes under test
    else:
        data['can'].update(can)
        data['simulator'].update(simulator or {})
    path = os.path.join(str(folder), 'profile.yaml')
    with open(path, 'w', encoding='utf-8') as stream:
        yaml.safe_dump(data, stream)
    return path


class FakePack:
    """Contactors, DC link and sensor values of a pack, driven by contactor_command."""

    def __init__(self, env, delay_s=0.015, tau_s=0.048, soc=0.5):
        self.env = env
        self.delay_s = delay_s
        self.tau_s = tau_s
        self.soc = soc
        self.welded = set()        # contactor indices (0 negative, 1 precharge, 2 positive)
        self.stuck_open = set()
        self.link_shorted = False  # pre-charge cannot lift the link
        # the contactor status frames stop: the driver flags the group stale and its bools
        # decode as False (open), whatever the contactors really are
        self.contactors_stale = False
        self.estimates = True      # False: the state estimator stops publishing
        self.cells_v = [CELL_V] * CELLS
        self.temperatures_degc = [25.0] * SENSORS
        self.current_a = 0.0
        self.pack_v = None         # None: the sum of cells
        self.valid_cells = [True] * CELLS
        self._lock = threading.Lock()
        self._command = (False, False, False)
        self._changed_s = [0.0, 0.0, 0.0]
        self.closed = [False, False, False]
        self.link_v = 0.0
        self._link_from = (0.0, 0.0)   # (time, voltage) the current link transient starts at
        self.commands = []             # (monotonic time, (neg, pre, pos), link_v at that time)
        self.measurement_pub = env.publisher(PackMeasurement, 'measurement')
        self.estimate_pub = env.publisher(BatteryEstimate, 'estimate')
        env.node.create_subscription(ContactorCommand, 'contactor_command', self._on_command,
                                     RELIABLE)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.published = 0

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(2.0)

    def set(self, **values):
        with self._lock:
            for name, value in values.items():
                if not hasattr(self, name):
                    raise AttributeError(name)
                setattr(self, name, value)

    def _on_command(self, msg):
        command = (msg.negative_closed, msg.precharge_closed, msg.positive_closed)
        now = time.monotonic()
        with self._lock:
            self._update(now)
            if command != self._command:
                for i in range(3):
                    if command[i] != self._command[i]:
                        self._changed_s[i] = now
                self._command = command
                self.commands.append((now, command, self.link_v))

    def _update(self, now):
        before = tuple(self.closed)
        for i in range(3):
            want = self._command[i]
            if want == self.closed[i] or now - self._changed_s[i] < self.delay_s:
                continue
            if (want and i in self.stuck_open) or (not want and i in self.welded):
                continue
            self.closed[i] = want
        negative, precharge, positive = self.closed
        pack_v = self._pack_v()
        if negative and positive:
            self.link_v = pack_v
        elif negative and precharge and not self.link_shorted:
            if tuple(self.closed) != before:
                self._link_from = (now, self.link_v)
            start_s, start_v = self._link_from
            self.link_v = pack_v - (pack_v - start_v) * math.exp(-(now - start_s) / self.tau_s)
        elif self.link_shorted:
            self.link_v = 0.05 * pack_v
        else:
            self._link_from = (now, self.link_v)

    def _pack_v(self):
        return sum(self.cells_v) if self.pack_v is None else self.pack_v

    def measurement(self):
        now = time.monotonic()
        with self._lock:
            self._update(now)
            msg = PackMeasurement()
            stamp = self.env.node.get_clock().now().to_msg()
            msg.header.stamp = stamp
            msg.cell_voltages_v = [float(v) for v in self.cells_v]
            msg.cell_voltage_valid = list(self.valid_cells)
            msg.temperatures_degc = [float(t) for t in self.temperatures_degc]
            msg.temperature_valid = [True] * len(self.temperatures_degc)
            msg.pack_current_a = float(self.current_a)
            msg.pack_voltage_v = float(self._pack_v())
            msg.link_voltage_v = float(self.link_v)
            msg.negative_contactor_closed, msg.precharge_relay_closed, \
                msg.positive_contactor_closed = ((False,) * 3 if self.contactors_stale
                                                 else self.closed)
            msg.contactors_stale = self.contactors_stale
            msg.cell_balancing = [False] * len(self.cells_v)
            msg.cell_voltages_stamp = msg.temperatures_stamp = msg.current_stamp = stamp
        return msg

    def publish_once(self):
        self.measurement_pub.publish(self.measurement())
        self.published += 1

    def _run(self):
        next_s = time.monotonic()
        k = 0
        while not self._stop.is_set():
            try:
                self.publish_once()
            except Exception:  # the probe is shutting down (test over or failed)
                if self.env.context.ok() and not self._stop.is_set():
                    raise
                return
            if k % 5 == 0 and self.estimates:
                estimate = BatteryEstimate()
                estimate.header.stamp = self.env.node.get_clock().now().to_msg()
                estimate.pack_soc = float(self.soc)
                estimate.charge_current_limit_a = 100.0
                estimate.discharge_current_limit_a = 500.0
                self.estimate_pub.publish(estimate)
            k += 1
            next_s += 0.1   # seconds: 10 Hz, as the CAN driver
            self._stop.wait(max(0.0, next_s - time.monotonic()))

    def command_sequence(self):
        """The distinct commands received, in order."""
        with self._lock:
            return [command for _, command, _ in self.commands]


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class BusCommands:
    """Contactor commands as they appear on the CAN bus, decoded from a hub client, in order."""

    def __init__(self, port, protocol, timeout_s=15.0):
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection(('127.0.0.1', port), timeout=0.5).close()
                self.bus = can.Bus(interface='socketcand', channel='vcan0', host='127.0.0.1',
                                   port=port)
                break
            except (OSError, can.CanError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.decoder = PackEncoder(protocol)
        self.sequence = []         # distinct consecutive (negative, precharge, positive)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            msg = self.bus.recv(timeout=0.05)
            command = self.decoder.decode_command(msg) if msg is not None else None
            if command and command['kind'] == 'contactor':
                state = (command['negative_closed'], command['precharge_closed'],
                         command['positive_closed'])
                with self._lock:
                    if not self.sequence or self.sequence[-1] != state:
                        self.sequence.append(state)

    def commands(self):
        with self._lock:
            return list(self.sequence)

    def stop(self):
        self._stop.set()
        self._thread.join(2.0)
        self.bus.shutdown()


class SimulatedSuite:
    """CAN hub, pack simulator, CAN driver, protection and pack supervisor, each a process."""

    def __init__(self, env, folder, protection=None, supervisor=None, time_scale=1.0,
                 simulator=None):
        self.env = env
        self.port = free_port()
        self.profile = write_profile(folder, protection, supervisor, can={'port': self.port},
                                     simulator=simulator)
        self.state_dir = os.path.join(str(folder), 'state')
        env.start_module('bms_ros.tools.can_hub', '--host', '127.0.0.1', '--port',
                         str(self.port), name='can_hub', ros_args=False)
        env.start_module('bms_ros.nodes.pack_simulator', name='pack_simulator',
                         params={'profile': self.profile, 'time_scale': time_scale})
        env.start_module('bms_ros.nodes.can_driver', name='can_driver',
                         params={'profile': self.profile})
        env.start_module('bms_ros.nodes.protection', name='protection',
                         params={'profile': self.profile, 'state_dir': self.state_dir})
        env.start_module('bms_ros.nodes.pack_supervisor', name='pack_supervisor',
                         params={'profile': self.profile})
        protocol = CanProtocol.from_files(os.path.join(config_dir(), 'can', 'bms_ros.dbc'),
                                          os.path.join(config_dir(), 'can',
                                                       'bms_ros_mapping.yaml'), CELLS, SENSORS)
        self.bus = BusCommands(self.port, protocol)

    def fault(self, name, index=0, value=0.0, clear=False):
        request = InjectFault.Request(fault=name, index=index, value=value, clear=clear)
        return self.env.call(InjectFault, 'sim/inject_fault', request, timeout_s=20.0)

    def close(self):
        self.bus.stop()
