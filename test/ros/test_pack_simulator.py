"""pack_simulator in its own process: truth, faults, config errors, its frames on the CAN hub."""
import os
import socket
import threading
import time

import can
import numpy as np
import pytest
import yaml
from std_msgs.msg import Float32

from bms_interfaces.msg import SimTruth
from bms_interfaces.srv import InjectFault
from bms_ros.core.can_codec import CanProtocol, CommandEncoder, MeasurementAssembler
from bms_ros.core.profile import config_dir

pytestmark = pytest.mark.ros

CONFIG = config_dir()
LFP_PROFILE = os.path.join(CONFIG, 'profiles', 'lfp_16s.yaml')
SIM = 'bms_ros.nodes.pack_simulator'


def fault(ros_env, name, index=0, value=0.0, clear=False):
    request = InjectFault.Request(fault=name, index=index, value=value, clear=clear)
    return ros_env.call(InjectFault, 'sim/inject_fault', request)


def wait_exit(process, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while process.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process.alive(), 'node still running\n' + process.log_tail()
    return process.popen.returncode


def test_truth_and_fault_service(ros_env):
    ros_env.start_module(SIM, params={'profile': LFP_PROFILE, 'interface': 'virtual',
                                      'time_scale': 100.0})
    truth = ros_env.subscribe(SimTruth, 'sim_truth')
    first = truth.wait_for(lambda m: m.sim_time_s > 1.0, timeout_s=20.0, what='sim running')
    assert len(first.cell_soc) == 16 and len(first.cell_bleed) == 16
    assert 0.55 < min(first.cell_soc) and max(first.cell_soc) < 0.65   # initial 0.6 +- 3 sigma
    assert not (first.negative_contactor_closed or first.positive_contactor_closed
                or first.precharge_relay_closed)
    assert first.pack_current_a == 0.0 and first.link_voltage_v == 0.0
    assert first.pack_voltage_v == pytest.approx(sum(first.cell_voltages_v), abs=1e-3)
    assert np.allclose(first.cell_temperatures_degc, 25.0, atol=0.01)
    assert np.allclose(first.cell_capacity_ah, 23.0, rtol=0.06)

    answer = fault(ros_env, 'thermal_event', 3, 20.0)
    assert answer.success, answer.message
    # 20 W into a 10p group (760 J/K, 0.5 W/K to ambient): > +5 K within ~100 simulated s
    hot = truth.wait_for(lambda m: m.cell_temperatures_degc[3] > 30.0, timeout_s=20.0,
                         what='cell 3 heating')
    assert hot.cell_temperatures_degc[12] < 26.0        # far from the event
    assert hot.cell_temperatures_degc[3] == max(hot.cell_temperatures_degc)

    answer = fault(ros_env, 'gremlins', 0)
    assert not answer.success and 'unknown fault' in answer.message
    answer = fault(ros_env, 'open_wire', 99)
    assert not answer.success and 'out of range 0..15' in answer.message
    assert fault(ros_env, 'all', -1, clear=True).success


def test_config_error_exits_2_naming_file_and_field(ros_env, tmp_path):
    data = yaml.safe_load(open(LFP_PROFILE, encoding='utf-8'))
    data['pack']['cell'] = os.path.join(CONFIG, 'cells', 'lfp_a123_anr26650.yaml')
    data['simulator']['load']['file'] = os.path.join(CONFIG, 'load_profiles',
                                                     'ece15_urban_c_rate.csv')
    data['simulator']['noise']['current_a'] = -1.0
    bad = tmp_path / 'bad.yaml'
    bad.write_text(yaml.safe_dump(data))
    process = ros_env.start_module(SIM, params={'profile': str(bad), 'interface': 'virtual'})
    assert wait_exit(process) == 2
    log = process.log_tail()
    assert f'{bad}: simulator.noise.current_a: expected a number >= 0.0, got -1.0' in log


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _open_bus(port, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(('127.0.0.1', port), timeout=0.5).close()
            return can.Bus(interface='socketcand', channel='vcan0', host='127.0.0.1', port=port)
        except (OSError, can.CanError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class BusReader:
    """Feeds every frame from the bus into a MeasurementAssembler, in a thread."""

    def __init__(self, bus, protocol):
        self.bus = bus
        self.assembler = MeasurementAssembler(protocol)
        self.frame_ids = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            msg = self.bus.recv(timeout=0.05)
            if msg is not None:
                self.frame_ids.add(msg.arbitration_id)
                self.assembler.feed(msg, time.monotonic())

    def wait(self, predicate, what, timeout_s=15.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            m = self.assembler.snapshot(time.monotonic(), 1.0)
            if predicate(m):
                return m
            time.sleep(0.02)
        raise AssertionError(f'timeout waiting for {what}: last {m}')

    def stop(self):
        self._stop.set()
        self._thread.join(2.0)


def test_frames_on_the_hub_match_truth_and_commands_act(ros_env):
    port = _free_port()
    ros_env.start_module('bms_ros.tools.can_hub', '--host', '127.0.0.1', '--port', str(port),
                         ros_args=False)
    ros_env.start_module(SIM, params={'profile': LFP_PROFILE, 'interface': 'socketcand',
                                      'host': '127.0.0.1', 'port': port, 'time_scale': 1.0})
    truth = ros_env.subscribe(SimTruth, 'sim_truth')
    protocol = CanProtocol.from_files(os.path.join(CONFIG, 'can', 'bms_ros.dbc'),
                                      os.path.join(CONFIG, 'can', 'bms_ros_mapping.yaml'), 16, 8)
    commands = CommandEncoder(protocol)
    bus = _open_bus(port)
    reader = BusReader(bus, protocol)
    try:
        m = reader.wait(lambda m: not (m.cell_voltages_stale or m.temperatures_stale
                                       or m.current_stale or m.contactors_stale),
                        'a complete measurement')
        t = truth.wait_for(timeout_s=10.0)
        # noise 1 mV, quantisation 1 mV, the pack at rest: readings equal the truth
        np.testing.assert_allclose(m.cell_voltages_v, t.cell_voltages_v, atol=0.006)
        assert m.pack_voltage_v == pytest.approx(t.pack_voltage_v, abs=0.25)
        assert abs(m.pack_current_a) < 0.25 and m.link_voltage_v < 0.25
        assert reader.frame_ids >= {0x100, 0x110, 0x120, 0x130, 0x140}

        def send_contactors(negative, precharge, positive):
            for frame in commands.encode_contactor_command(negative, precharge, positive):
                bus.send(frame)

        send_contactors(True, True, False)               # pre-charge the DC link
        m = reader.wait(lambda m: m.precharge_relay_closed and m.negative_contactor_closed
                        and m.link_voltage_v > 0.95 * m.pack_voltage_v, 'pre-charge done')
        assert not m.positive_contactor_closed
        send_contactors(True, False, True)
        reader.wait(lambda m: m.positive_contactor_closed and not m.precharge_relay_closed,
                    'main contactors closed')

        demand = ros_env.publisher(Float32, 'load_demand')
        ros_env.wait_for_subscribers(demand)
        demand.publish(Float32(data=-20.0))
        m = reader.wait(lambda m: abs(m.pack_current_a + 20.0) < 0.3, 'a 20 A discharge')
        t = truth.wait_for(lambda t: t.pack_current_a == pytest.approx(-20.0), timeout_s=10.0)
        assert t.positive_contactor_closed and t.link_voltage_v == pytest.approx(t.pack_voltage_v)
        demand.publish(Float32(data=float('nan')))      # rejected: the demand holds
        time.sleep(0.3)
        truth.clear()
        assert truth.wait_for(timeout_s=5.0).pack_current_a == pytest.approx(-20.0)

        bleed = np.zeros(16, dtype=bool)
        bleed[5] = True
        for frame in commands.encode_balancing_command(bleed):
            bus.send(frame)
        m = reader.wait(lambda m: m.cell_balancing[5], 'balancing feedback of cell 5')
        assert m.cell_balancing.sum() == 1
        truth.wait_for(lambda t: t.cell_bleed[5] and sum(t.cell_bleed) == 1, timeout_s=5.0)

        assert fault(ros_env, 'open_wire', 2).success
        reader.wait(lambda m: not m.cell_voltage_valid[2] and m.cell_voltage_valid[3],
                    'cell 2 invalid on the bus')
    finally:
        reader.stop()
        bus.shutdown()
