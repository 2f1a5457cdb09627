"""Profiles and packs for the protection and supervisor ROS tests.

FakePack (the one fake pack of tests and bench) lives in test/support/fake_pack.py and is
re-exported here. SimulatedSuite instead starts the real thing: the CAN hub, pack_simulator
and can_driver, with protection and pack_supervisor, and records the contactor commands seen
on the CAN bus.
"""
import os
import socket
import threading
import time

import can
import yaml

from bms_interfaces.srv import InjectFault
from bms_ros.core.can_codec import CanProtocol, PackEncoder
from bms_ros.core.profile import config_dir

from ..profile_copy import absolute_paths
from ..support.fake_pack import CELL_V, CELLS, PACK_V, SENSORS, FakePack

__all__ = ['BusCommands', 'CELL_V', 'CELLS', 'FakePack', 'PACK_V', 'SENSORS', 'SimulatedSuite',
           'free_port', 'write_profile']


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
