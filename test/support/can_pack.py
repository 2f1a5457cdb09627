"""The one fake pack on the CAN bus (the hub), for the CAN driver tests and bench/trip_latency.

It plays the measurement frames of a state (a dict named as PackEncoder's fields) at their
periods and decodes the command frames it receives. With ``follow_contactors`` the contactor
feedback of the state follows the contactor command frames at once (the DC link at pack
voltage while negative and pre-charge or positive are closed); ``send_now`` sends every
frame at once and times the first all-open command after it.

The ROS-topic fake pack is test/support/fake_pack.FakePack; the real simulated pack is
bms_ros.nodes.pack_simulator (test/ros/pack_plant.SimulatedSuite).
"""
import re
import socket
import threading
import time

import can

from bms_ros.core.can_bus import quiet_socketcand_logging
from bms_ros.core.can_codec import PackEncoder


class CanPack:
    """A pack on the socketcand hub at 127.0.0.1:``port`` speaking ``protocol``."""

    def __init__(self, protocol, port, state, follow_contactors=False, tcp_tune=False,
                 connect_timeout_s=20.0):
        """:param state: PackEncoder fields (cell_voltages_v, pack_current_a, ...), shared: an
            array changed in place is sent as changed.
        :param connect_timeout_s: how long to wait for the hub to accept, s.
        """
        quiet_socketcand_logging()
        self.protocol = protocol
        self.encoder = PackEncoder(protocol)
        self.lock = threading.Lock()
        self.state = state
        self.follow_contactors = follow_contactors
        self.paused = False            # True: no measurement frames (commands still decoded)
        self.commands = []             # every decoded command, in order
        self.arrivals = []             # (time.monotonic() at arrival, command)
        self.error = None              # an exception of the thread, reported by the waits
        self.open_event = threading.Event()
        self.open_time = None          # perf_counter of the first all-open after send_now
        self.open_wall = None          # time.time() of it
        self.sent_wall = None          # time.time() when send_now sent
        self._armed = False
        deadline = time.monotonic() + connect_timeout_s
        while True:
            try:
                socket.create_connection(('127.0.0.1', port), timeout=0.5).close()
                self.bus = can.Bus(interface='socketcand', channel='vcan0', host='127.0.0.1',
                                   port=port, tcp_tune=tcp_tune)
                break
            except (OSError, can.CanError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)    # retry interval while the hub starts
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send_loop, daemon=True),
                         threading.Thread(target=self._recv_loop, daemon=True)]
        for thread in self._threads:
            thread.start()

    def update(self, **fields):
        """Change state fields (the next due frames carry them)."""
        with self.lock:
            self.state.update(fields)

    def send_now(self, keys=None):
        """Send every measurement frame (or those of ``keys``) now and time the next all-open
        command from here; returns perf_counter just before sending.
        """
        with self.lock:
            frames = self.encoder.encode_all(self.state, keys=keys)
            self.open_event.clear()
            self._armed = True
            start = time.perf_counter()
            self.sent_wall = time.time()
            for frame in frames:
                self.bus.send(frame)
        return start

    def _send_loop(self):
        # frames are sent under the lock, in encoding order: a frame overtaken by another of
        # its message would look like a rolling counter stepping back, and be dropped
        try:
            while not self._stop.wait(0.005):   # seconds: the frame schedule's tick
                with self.lock:
                    if self.paused:
                        continue
                    for frame in self.encoder.due_frames(time.monotonic(), self.state):
                        self.bus.send(frame)
        except Exception as error:  # noqa: BLE001  reported by the waits
            self.error = error

    def _recv_loop(self):
        try:
            while not self._stop.is_set():
                msg = self.bus.recv(timeout=0.05)
                command = self.encoder.decode_command(msg) if msg is not None else None
                if command is None:
                    continue
                now, perf = time.monotonic(), time.perf_counter()
                self.arrivals.append((now, command))
                self.commands.append(command)
                if command['kind'] != 'contactor':
                    continue
                closed = (command['negative_closed'], command['precharge_closed'],
                          command['positive_closed'])
                if self.follow_contactors:
                    self._follow(closed)
                if self._armed and not any(closed):
                    self._armed = False
                    self.open_time = perf
                    self.open_wall = time.time()
                    self.open_event.set()
        except Exception as error:  # noqa: BLE001  reported by the waits
            self.error = error

    def _follow(self, closed):
        negative, precharge, positive = closed
        with self.lock:
            pack_v = self.state['pack_voltage_v']
            self.state.update(negative_contactor_closed=negative,
                              precharge_relay_closed=precharge,
                              positive_contactor_closed=positive,
                              link_voltage_v=pack_v if negative and (precharge or positive)
                              else 0.0)

    def wait_command(self, predicate, env, timeout_s=10.0):
        """The first decoded command matching ``predicate``; AssertionError on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.error is None, self.error
            for command in list(self.commands):
                if predicate(command):
                    return command
            time.sleep(0.02)    # poll interval
        raise AssertionError(f'no matching command on the bus ({len(self.commands)} seen)\n'
                             + env.process_logs())

    def wait_arrival(self, predicate, after_s, env, timeout_s=10.0):
        """The first (arrival time, command) after ``after_s`` (monotonic) matching."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.error is None, self.error
            for arrival in list(self.arrivals):
                if arrival[0] > after_s and predicate(arrival[1]):
                    return arrival
            time.sleep(0.01)    # poll interval
        raise AssertionError(f'no matching command on the bus after {after_s:.3f}\n'
                             + env.process_logs())

    def close(self):
        """Stop both threads and shut the bus down."""
        self._stop.set()
        for thread in self._threads:
            thread.join(2.0)
        self.bus.shutdown()


def start_hub(env):
    """Start the CAN hub on a free port of 127.0.0.1 in ``env``; the port it listens on."""
    hub = env.start_module('bms_ros.tools.can_hub', '--port', '0', '--grace-s', '0.1',
                           ros_args=False, name='can_hub')
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        match = re.search(r'listening on 127\.0\.0\.1:(\d+)', hub.log_tail())
        if match:
            return int(match.group(1))
        assert hub.alive(), hub.log_tail()
        time.sleep(0.05)
    raise AssertionError('hub did not start\n' + hub.log_tail())
