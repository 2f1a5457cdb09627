"""End-to-end trip latency: limit-crossing measurement -> trip event -> contactor open command.

The protection and pack-supervisor nodes run in their own processes; this process publishes
PackMeasurement as the CAN driver would and answers ContactorCommand like the contactors
(feedback follows the command at once, the DC link follows the contactors). Each round closes
the contactors (STANDBY -> DRIVE), publishes one measurement with cell 3 at 3.80 V (trip level
3.75 V, debounce set to 0 for the measurement), and times, in this process:

- publish -> ProtectionEvent (trip) received: one hop through the protection process;
- publish -> ContactorCommand with all contactors open: two hops (protection, supervisor).

Then it resets the trip and returns to STANDBY. Goal: p99 < 50 ms + the configured debounce.

On the CAN path (hub, can_driver, protection, pack_supervisor) this process is the BMS slave
on the bus: it sends the measurement frames of the profile's DBC at their periods, answers the
contactor command frames, and times the frame carrying cell 3 at 3.80 V -> the contactor
command frame with everything open, on the bus. The driver publishes its measurement at once
when cell, temperature or contactor frames arrive (at most every `can.prompt_min_interval_s`,
20 ms) besides its 10 Hz timer; the path is measured as profiled and with the prompt publish
off (timer only, which adds up to one 100 ms period). A second CAN round sends only the current
frame with a short-circuit current (-1,600 A, beyond the instant trip level): the driver
publishes at once when |I| >= `can.prompt_current_a`; with that at 0 the crossing waits for
the timer or the next cell frame.

    .venv/bin/python -m bench.run trip_latency        # BMS_BENCH_TRIPS=200, BMS_BENCH_CAN_TRIPS=30
"""
import os
import random
import socket
import tempfile
import threading
import time

import numpy as np
import yaml

import test.conftest  # noqa: F401  (reserves a private block of ROS domain ids)
from bms_interfaces.msg import (
    ContactorCommand,
    PackMeasurement,
    PackState,
    ProtectionEvent,
    ProtectionStatus,
)
from bms_interfaces.srv import RequestState, ResetTrips
from bms_ros.core import contract
from bms_ros.core.can_codec import CanProtocol
from bms_ros.core.profile import config_dir
from bms_ros.core.prompt_publish import CURRENT_FIELD
from test.ros.harness import LATCHED, RELIABLE, RosTestEnv
from test.support.can_pack import CanPack
from test.support.fake_pack import FakePack

TRIPS = int(os.environ.get('BMS_BENCH_TRIPS', '200'))
CAN_TRIPS = int(os.environ.get('BMS_BENCH_CAN_TRIPS', '30'))
CELLS, SENSORS, CELL_V = 16, 8, 3.3


def bench_profile(folder, supervisor=None, can=None):
    """The LFP profile with cell over-voltage and discharge over-current debounce 0 and no
    cool-down (bench only).
    """
    profiles = os.path.join(config_dir(), 'profiles')
    with open(os.path.join(profiles, 'lfp_16s.yaml'), encoding='utf-8') as f:
        data = yaml.safe_load(f)
    data['pack']['cell'] = os.path.join(profiles, data['pack']['cell'])
    data['protection']['cell_overvoltage'].update(debounce_s=0.0, release_s=0.0,
                                                  reset_cooldown_s=0.0)
    data['protection']['discharge_overcurrent'].update(debounce_s=0.0, reset_cooldown_s=0.0)
    # the instant stand-in pack below charges the link at once: no too-fast check then
    data['supervisor'].update({'precharge_min_time_s': 0.0} if supervisor is None else supervisor)
    for section in ('simulator', 'estimator', 'balancing', 'gazebo'):
        data.pop(section, None)
    if can is None:
        data.pop('can', None)
    else:
        for key in ('dbc', 'mapping'):
            data['can'][key] = os.path.normpath(os.path.join(profiles, data['can'][key]))
        data['can'].update(can)
    path = os.path.join(folder, 'profile.yaml')
    with open(path, 'w', encoding='utf-8') as f:
        yaml.safe_dump(data, f)
    return path


class Stamped:
    """perf_counter time of the first message matching a predicate, per round."""

    def __init__(self, env, msg_type, topic, qos, predicate):
        self.predicate = predicate
        self.event = threading.Event()
        self.time = None
        self.msg = None               # the matching message (its header stamp: its sender's)
        self.armed = False
        env.node.create_subscription(msg_type, topic, self._on, qos)

    def arm(self):
        self.time = None
        self.msg = None
        self.event.clear()
        self.armed = True

    def _on(self, msg):
        if self.armed and self.predicate(msg):
            self.time = time.perf_counter()
            self.msg = msg
            self.armed = False
            self.event.set()

    def stamp_s(self, timeout_s=5.0):
        """Header stamp (s, the sender's ROS clock: wall time here) of the matching message."""
        self.wait(timeout_s)
        return self.msg.header.stamp.sec + self.msg.header.stamp.nanosec * 1e-9

    def wait(self, timeout_s=5.0):
        if not self.event.wait(timeout_s):
            raise TimeoutError('no matching message')
        return self.time


def start_nodes(env, profile, state_dir):
    env.start_module('bms_ros.nodes.protection', name='protection',
                     params={'profile': profile, 'state_dir': state_dir})
    env.start_module('bms_ros.nodes.pack_supervisor', name='pack_supervisor',
                     params={'profile': profile})


def wait_state(env, states, state, timeout_s=10.0):
    states.wait_for(lambda s: s.state == state, timeout_s=timeout_s)


def request(env, state, requester='bench'):
    return env.call(RequestState, contract.REQUEST_STATE,
                    RequestState.Request(state=state, requester=requester))


def watch(env, limit_id='cell_overvoltage'):
    """Subscriptions of a round: pack_state, protection_status and the trip of ``limit_id``."""
    states = env.subscribe(PackState, 'pack_state', LATCHED)
    status = env.subscribe(ProtectionStatus, 'protection_status', LATCHED)
    trip = Stamped(env, ProtectionEvent, 'trip_event', LATCHED,
                   lambda e: e.limit_id == limit_id and e.level == 3 and e.active)
    return states, status, trip


def reset_to_standby(env, status, poll_s):
    """After a round: reset the trip, wait until it is no longer latched, back to STANDBY
    (each step retried every ``poll_s`` s for at most 5 s).
    """
    reset = ResetTrips.Request(requester='bench', reason='next round')
    deadline = time.monotonic() + 5.0
    while not env.call(ResetTrips, contract.RESET_TRIPS, reset).success:
        if time.monotonic() > deadline:
            raise TimeoutError('reset not granted')
        time.sleep(poll_s)
    status.clear()
    status.wait_for(lambda s: not s.trip_latched, timeout_s=5.0)
    deadline = time.monotonic() + 5.0
    while not request(env, PackState.STATE_STANDBY).accepted:
        if time.monotonic() > deadline:
            raise TimeoutError('STANDBY refused')
        time.sleep(poll_s)


def measure(trips=TRIPS):
    """Run ``trips`` rounds; return (event latencies, command latencies) in seconds."""
    with tempfile.TemporaryDirectory(prefix='bms_trip_latency_') as folder:
        env = RosTestEnv(folder)
        pack = None
        try:
            profile = bench_profile(folder)
            start_nodes(env, profile, os.path.join(folder, 'state'))
            states, status, trip = watch(env)
            opened = Stamped(env, ContactorCommand, 'contactor_command', RELIABLE,
                             lambda c: not (c.negative_closed or c.positive_closed
                                            or c.precharge_closed))
            # contactors follow the command at once, the link at pack voltage at once
            pack = FakePack(env, delay_s=0.0, tau_s=0.0, publish_on_change=True)
            env.wait_for_subscribers(pack.measurement_pub, count=2, timeout_s=30.0)
            pack.start()
            wait_state(env, states, PackState.STATE_STANDBY, 30.0)
            to_event, to_open = [], []
            for _ in range(trips):
                states.clear()
                answer = request(env, PackState.STATE_DRIVE)
                assert answer.accepted, answer.reason
                wait_state(env, states, PackState.STATE_DRIVE)
                trip.arm()
                opened.arm()
                start = pack.set_cell(3, 3.8)
                to_event.append(trip.wait() - start)
                to_open.append(opened.wait() - start)
                pack.set_cell(3, CELL_V)
                reset_to_standby(env, status, 0.01)
            return np.array(to_event), np.array(to_open)
        finally:
            if pack is not None:
                pack.stop()
            env.close()


def evaluate_cost_s(profile_name='nmc_96s.yaml', repeats=2000):
    """Mean time of Protection.evaluate on one measurement (s), every limit checked."""
    from bms_ros.core.profile import Profile
    from bms_ros.core.protection import Measurement, Protection, load_protection_config
    profile = Profile(os.path.join(config_dir(), 'profiles', profile_name))
    pack = profile.pack
    protection = Protection(load_protection_config(profile.section('protection'), pack),
                            pack.cells_series, pack.temperature_sensors)
    m = Measurement.simple(np.full(pack.cells_series, 3.7), np.full(pack.temperature_sensors,
                                                                    25.0), -30.0)
    start = time.perf_counter()
    for k in range(repeats):
        protection.evaluate(m, 0.1 * k)
    return (time.perf_counter() - start) / repeats


def bus_pack(port):
    """The BMS slave on the CAN bus (test/support/can_pack.CanPack): measurement frames at
    their periods from a state whose contactor feedback follows the command frames at once;
    times the first all-open command frame after ``send_now``.
    """
    protocol = CanProtocol.from_files(os.path.join(config_dir(), 'can', 'bms_ros.dbc'),
                                      os.path.join(config_dir(), 'can', 'bms_ros_mapping.yaml'),
                                      CELLS, SENSORS)
    cells = np.full(CELLS, CELL_V)
    state = {'cell_voltages_v': cells, 'temperatures_degc': np.full(SENSORS, 25.0),
             'pack_current_a': 0.0, 'pack_voltage_v': float(cells.sum()), 'link_voltage_v': 0.0,
             'negative_contactor_closed': False, 'positive_contactor_closed': False,
             'precharge_relay_closed': False, 'cell_balancing': np.zeros(CELLS, bool)}
    return CanPack(protocol, port, state, follow_contactors=True, tcp_tune=True)


def send_trip(pack, volts=None, current_a=None):
    """Send now every measurement frame with cell 3 at ``volts``, or only the current frames
    with ``current_a``; perf_counter before.
    """
    if current_a is None:
        set_cell(pack, volts)
        return pack.send_now()
    pack.update(pack_current_a=current_a)
    return pack.send_now(keys=pack.protocol.frame_keys((CURRENT_FIELD,)))


def set_cell(pack, volts):
    """Cell 3 at ``volts`` (and the pack voltage with it) from the next frames on."""
    with pack.lock:
        cells = pack.state['cell_voltages_v'].copy()
        cells[3] = volts
        pack.state['cell_voltages_v'] = cells
        pack.state['pack_voltage_v'] = float(cells.sum())
        if pack.state['link_voltage_v'] > 0.0:     # the link follows the pack while closed
            pack.state['link_voltage_v'] = pack.state['pack_voltage_v']


# discharge over-current round: beyond the LFP profile's instant trip level (1,500 A)
SHORT_CIRCUIT_A = -1600.0


def measure_can(trips=CAN_TRIPS, publish_rate_hz=None, prompt_min_interval_s=None,
                over_current=False, prompt_current_a=None):
    """CAN frame -> trip_event and -> contactor-open frame on the bus (s), over ``trips``:
    cell 3 over-voltage, or with ``over_current`` a short-circuit current frame.
    """
    with tempfile.TemporaryDirectory(prefix='bms_trip_latency_can_') as folder:
        env = RosTestEnv(folder)
        slave = None
        try:
            with socket.socket() as sock:
                sock.bind(('127.0.0.1', 0))
                port = sock.getsockname()[1]
            can = {'port': port}
            if prompt_current_a is not None:
                can['prompt_current_a'] = float(prompt_current_a)
            profile = bench_profile(folder, supervisor={'precharge_min_time_s': 0.0,
                                                        'require_estimate': False},
                                    can=can)
            env.start_module('bms_ros.tools.can_hub', '--host', '127.0.0.1', '--port',
                             str(port), name='can_hub', ros_args=False)
            driver = {'profile': profile, 'publish_can_rx': False}
            if publish_rate_hz:
                driver['publish_rate_hz'] = float(publish_rate_hz)
            if prompt_min_interval_s is not None:
                driver['prompt_min_interval_s'] = float(prompt_min_interval_s)
            env.start_module('bms_ros.nodes.can_driver', name='can_driver', params=driver)
            start_nodes(env, profile, os.path.join(folder, 'state'))
            states, status, trip = watch(
                env, 'discharge_overcurrent' if over_current else 'cell_overvoltage')
            # where the time goes: the header stamps of the hops (every process stamps with
            # the same system clock here), from the frame sent to the open frame received
            crossed = ((lambda m: m.pack_current_a <= 0.5 * SHORT_CIRCUIT_A) if over_current
                       else (lambda m: len(m.cell_voltages_v) > 3 and m.cell_voltages_v[3] >= 3.75))
            crossings = []     # header stamps of every measurement showing the crossing

            def on_measurement(msg):
                if crossed(msg):
                    crossings.append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
            env.node.create_subscription(PackMeasurement, contract.MEASUREMENT, on_measurement,
                                         RELIABLE)
            opened = Stamped(env, ContactorCommand, 'contactor_command', RELIABLE,
                             lambda c: not (c.negative_closed or c.precharge_closed
                                            or c.positive_closed))
            slave = bus_pack(port)
            wait_state(env, states, PackState.STATE_STANDBY, 30.0)
            to_event, to_open, hops = [], [], []
            rng = random.Random(1)
            while len(to_open) < trips:
                states.clear()
                answer = request(env, PackState.STATE_DRIVE)
                if not answer.accepted:       # e.g. the first complete measurement not in yet
                    time.sleep(0.1)
                    continue
                wait_state(env, states, PackState.STATE_DRIVE)
                # DRIVE follows a driver measurement: without a random phase the frame would
                # always arrive just after the driver's timer, the worst case every time
                time.sleep(rng.uniform(0.0, 0.1))
                trip.arm()
                crossings.clear()
                opened.arm()
                start = send_trip(slave, current_a=SHORT_CIRCUIT_A) if over_current \
                    else send_trip(slave, 3.8)
                to_event.append(trip.wait() - start)
                if not slave.open_event.wait(5.0):
                    raise TimeoutError('no contactor-open frame')
                to_open.append(slave.open_time - start)
                # the measurement protection tripped on: the last crossing before the event
                event_s = trip.stamp_s()
                before = [t for t in crossings if slave.sent_wall <= t <= event_s]
                if before:
                    marks = (slave.sent_wall, max(before), event_s, opened.stamp_s(),
                             slave.open_wall)
                    hops.append(np.diff(marks))
                set_cell(slave, CELL_V)
                slave.update(pack_current_a=0.0)
                reset_to_standby(env, status, 0.02)
            measure_can.hops = np.array(hops).reshape(-1, 4)   # (trips, 4): see HOPS
            return np.array(to_event), np.array(to_open)
        finally:
            if slave is not None:
                slave.close()
            env.close()


HOPS = ('frame sent -> measurement published (hub, decode, prompt wait)',
        'measurement -> trip_event published (DDS hop 1, protection)',
        'trip_event -> contactor_command published (DDS hop 2, supervisor)',
        'contactor_command -> open frame received (DDS hop 3, driver, hub)')


def _rows(name, values, goal, note):
    return [{'benchmark': f'trip latency p{q}: {name}',
             'value': float(np.percentile(values, q)) * 1e3, 'unit': 'ms',
             'goal': goal if q == 99 else '', 'note': note} for q in (50, 99)]


def run():
    cost = evaluate_cost_s()
    to_event, to_open = measure()
    debounce = 'debounce 0 s for the measurement (profile: 0.2 s for cell voltages)'
    rows = []
    for name, values, hops in (('measurement -> trip_event (other process)', to_event, 1),
                               ('measurement -> contactor_command open', to_open, 2)):
        rows += _rows(name, values, '< 50 ms + debounce',
                      f'{len(values)} trips, {hops} process hop(s), {debounce}')
    rows.append({'benchmark': 'protection check of one measurement (96 cells, 48 sensors)',
                 'value': cost * 1e3, 'unit': 'ms', 'goal': '< 10 ms (the measurement period / 10)',
                 'note': '21 limits, core only (Protection.evaluate)'})
    rows.append({'benchmark': 'trip latency max: measurement -> contactor_command open',
                 'value': float(np.max(to_open)) * 1e3, 'unit': 'ms', 'goal': '',
                 'note': f'{len(to_open)} trips'})
    for prompt, label in ((None, 'driver as profiled: 10 Hz timer + prompt publish of cell frames'),
                          (0.0, 'driver on its 10 Hz timer only (prompt publish off)')):
        can_event, can_open = measure_can(prompt_min_interval_s=prompt)
        note = f'{len(can_open)} trips, {label}, debounce 0 s'
        rows += _rows('CAN frame -> trip_event (other process)', can_event, '', note)
        rows += _rows('CAN frame -> contactor-open frame on the bus', can_open,
                      '<= 10 ms + debounce (issue 13)', note)
        if prompt is None:
            hops = measure_can.hops
            for k, hop in enumerate(HOPS):
                rows += _rows(f'  where: {hop}', hops[:, k], '',
                              f'{len(hops)} of {len(can_open)} trips (stamps of each hop)')
    for prompt_current, label in ((None, 'prompt publish at |I| >= can.prompt_current_a '
                                          '(90 A, as profiled)'),
                                  (0.0, 'prompt_current_a 0: timer and cell-frame prompts only')):
        can_event, can_open = measure_can(over_current=True, prompt_current_a=prompt_current)
        note = f'{len(can_open)} trips at {SHORT_CIRCUIT_A:.0f} A, {label}, debounce 0 s'
        rows += _rows('current frame -> contactor-open frame on the bus', can_open,
                      '< 50 ms + debounce', note)
    return rows


if __name__ == '__main__':
    for row in run():
        print(row)
