"""The whole bms_ros graph for one test: CAN hub, pack simulator, CAN driver, state estimator,
protection, pack supervisor and balancing, each in its own process, in the test's ROS domain.

The command lines are bringup's (bms_ros.tools.bringup.command_lines, built from
bms_ros.graph), so the tests start exactly what `make run` starts; the suite only adds a free
hub port, a private profile copy (with the test's edits), and state files in the test's tmp
folder. Any process can be killed (SIGKILL, as a crash), stopped (SIGINT) and restarted with
the same command line. Every wait is bounded and fails with the processes' log tails.

    suite = Suite(ros_env, tmp_path, edits={'protection': {'startup_grace_s': 2.0}},
                  time_scale=20.0).start()
    suite.wait_ready()
    suite.request(PackState.STATE_DRIVE)
    suite.kill('can_driver')
"""
import copy
import os
import socket
import time

import numpy as np
import yaml
from sensor_msgs.msg import BatteryState
from std_msgs.msg import Float32

from bms_interfaces.msg import (
    BatteryEstimate,
    PackMeasurement,
    PackState,
    ProtectionEvent,
    ProtectionStatus,
    SimTruth,
)
from bms_interfaces.srv import InjectFault, RequestState, ResetTrips, SetSoc
from bms_ros.core.profile import config_dir
from bms_ros.core.stamps import message_time_ns
from bms_ros.core.state_paths import state_folder
from bms_ros.tools.bringup import command_lines

from ..profile_copy import absolute_paths
from .harness import LATCHED, RELIABLE, NodeProcess

STANDBY, DRIVE, CHARGE, ERROR = (PackState.STATE_STANDBY, PackState.STATE_DRIVE,
                                 PackState.STATE_CHARGE, PackState.STATE_ERROR)
TRIP = ProtectionEvent.LEVEL_TRIP
NODES = ('can_hub', 'pack_simulator', 'can_driver', 'state_estimator', 'protection',
         'pack_supervisor', 'balancing')


def free_port():
    """A TCP port free on 127.0.0.1 now (the hub binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def merge_edits(target, edits):
    """Nested dict update: a dict value updates the dict below it, anything else replaces."""
    for key, value in edits.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_edits(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def write_profile(path, base='lfp_16s.yaml', edits=None):
    """Copy of a shipped profile with ``edits`` ({section: {field: value}}, nested) applied."""
    profiles = os.path.join(config_dir(), 'profiles')
    with open(os.path.join(profiles, base), encoding='utf-8') as stream:
        data = absolute_paths(yaml.safe_load(stream), profiles)
    merge_edits(data, edits or {})
    with open(path, 'w', encoding='utf-8') as stream:
        yaml.safe_dump(data, stream, sort_keys=False)
    return str(path)


def is_trip(limit_id, index=None):
    """Predicate: a raised, latched trip of ``limit_id`` (at ``index`` if given)."""
    return lambda e: (e.limit_id == limit_id and e.level == TRIP and e.active and e.latched
                      and (index is None or e.index == index))


def contactors_open(m):
    """Predicate on PackMeasurement, SimTruth or PackState feedback: every contactor open."""
    return not (m.negative_contactor_closed or m.positive_contactor_closed
                or m.precharge_relay_closed)


class Suite:
    """The graph of bringup, started from a test; ``logs`` hold every message the probe saw."""

    def __init__(self, env, folder, base='lfp_16s.yaml', edits=None, time_scale=1.0,
                 use_sim_time=False, balancing=True, namespace='', state_dir=None,
                 single_process=False):
        """``namespace``: the pack's ROS namespace ('' = root; the probe's topics and services
        follow it); ``state_dir``: base folder of persisted state (default <folder>/state);
        ``single_process``: the BMS nodes in one process, as `bringup --single-process` (the
        process is named 'container'; the per-node helpers take that name then).
        """
        self.env = env
        self.namespace = namespace.strip('/')
        self.folder = str(folder)
        self.port = free_port()
        edits = merge_edits(copy.deepcopy(edits or {}), {'can': {'port': self.port}})
        self.profile = write_profile(os.path.join(self.folder, 'profile.yaml'), base, edits)
        with open(self.profile, encoding='utf-8') as stream:
            pack = yaml.safe_load(stream)['pack']
        self.cells = pack['cells_series']
        self.sensors = pack['temperature_sensors']
        # the nodes get the base (bringup --state-dir); their files land in this pack's folder
        self.state_base = os.path.abspath(state_dir or os.path.join(self.folder, 'state'))
        self.state_dir = state_folder('/' + self.namespace, pack['serial_number'],
                                      self.state_base)
        self.estimator_file = os.path.join(self.state_dir, 'estimator_state.json')
        self.latch_file = os.path.join(self.state_dir, 'latched_trips.json')
        # nothing of a test may land in ~/.local/state, whatever a node defaults to
        env.env['XDG_STATE_HOME'] = os.path.join(self.folder, 'xdg_state')
        lines = command_lines(self.namespace, profile=self.profile, can_port=self.port,
                              time_scale=time_scale,
                              use_sim_time='true' if use_sim_time else 'false',
                              balancing='true' if balancing else 'false',
                              state_dir=self.state_base, single_process=single_process)
        self.single_process = single_process
        self.argv = dict(lines)
        # the same graph as one bringup process (start_bringup): bringup's own respawn
        self.bringup_args = ['--profile', self.profile, '--can-port', str(self.port),
                             '--time-scale', str(time_scale),
                             '--use-sim-time', 'true' if use_sim_time else 'false',
                             '--balancing', 'true' if balancing else 'false',
                             '--state-dir', self.state_base,
                             '--log-dir', os.path.join(self.folder, 'bringup')]
        if self.namespace:
            self.bringup_args += ['--namespace', self.namespace]
        if single_process:
            self.bringup_args += ['--single-process']
        self.bringup = None
        self.processes = {}
        self.starts = dict.fromkeys(self.argv, 0)
        # subscribed before anything starts, so no message is missed
        self.states = env.subscribe(PackState, self.ns('pack_state'), LATCHED)
        self.events = env.subscribe(ProtectionEvent, self.ns('trip_event'), LATCHED)
        self.status = env.subscribe(ProtectionStatus, self.ns('protection_status'), LATCHED)
        self.estimates = env.subscribe(BatteryEstimate, self.ns('estimate'), RELIABLE)
        self.battery = env.subscribe(BatteryState, self.ns('battery_state'), RELIABLE)
        self.truth = env.subscribe(SimTruth, self.ns('sim_truth'), RELIABLE)
        self.measurements = env.subscribe(PackMeasurement, self.ns('measurement'), RELIABLE)
        self.demand_pub = env.publisher(Float32, self.ns('load_demand'))

    def ns(self, name):
        """A topic or service name of this pack, as the probe (in the root namespace) sees it."""
        return f'/{self.namespace}/{name}' if self.namespace else name

    # ------------------------------------------------------------------ processes

    def start(self, names=None):
        """Start ``names`` (default: the whole graph, in bringup's order); returns self."""
        for name in names or list(self.argv):
            self.start_node(name)
        return self

    def start_node(self, name):
        """Start (or start again) one process with its bringup command line."""
        if name in self.processes and self.processes[name].alive():
            raise AssertionError(f'{name} is already running')
        self.starts[name] += 1
        log_path = os.path.join(self.folder, f'{name}-{self.starts[name]}.log')
        process = NodeProcess(self.argv[name], self.env.env, log_path)
        process.label = f'{name}#{self.starts[name]}'
        self.env.processes.append(process)
        self.processes[name] = process
        if name == 'can_hub':
            self._wait_port(10.0)
        return process

    def start_bringup(self):
        """Start the graph under ``python -m bms_ros.tools.bringup`` instead (it respawns a dead
        node by bms_ros.graph's policy, as on a robot); returns bringup's NodeProcess. The
        per-node helpers (pid, kill, restart, log) do not apply then: use bringup_pids().
        """
        self.bringup = self.env.start_module('bms_ros.tools.bringup', *self.bringup_args,
                                             name='bringup', ros_args=False)
        return self.bringup

    def bringup_pids(self):
        """{process name: pid} of bringup's live children (empty once bringup has exited)."""
        import psutil
        found = {}
        try:
            children = psutil.Process(self.bringup.popen.pid).children()
        except psutil.NoSuchProcess:
            return found
        for child in children:
            try:
                argv = child.cmdline()
                if child.status() != psutil.STATUS_ZOMBIE and '-m' in argv:
                    found[argv[argv.index('-m') + 1].rsplit('.', 1)[-1]] = child.pid
            except psutil.NoSuchProcess:
                pass
        return found

    def _wait_port(self, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f'CAN hub did not open port {self.port} in {timeout_s} s\n'
                             + self.env.process_logs())

    def kill(self, name):
        """SIGKILL ``name`` (a crash: no clean-up, no last save); returns the monotonic time."""
        self.processes[name].kill()
        return time.monotonic()

    def stop(self, name):
        """SIGINT ``name`` and wait for it (a clean shutdown); returns its exit code."""
        return self.processes[name].stop()

    def restart(self, name):
        """Kill ``name`` if it runs, then start it again with the same command line."""
        if self.processes[name].alive():
            self.kill(name)
        return self.start_node(name)

    def alive(self, name):
        return self.processes[name].alive()

    def dead(self):
        """Names of the processes that exited (with their codes)."""
        return {n: p.popen.returncode for n, p in self.processes.items() if not p.alive()}

    def log(self, name):
        """Whole log of the latest run of ``name``."""
        process = self.processes[name]
        process._log.flush()
        with open(process.log_path, 'rb') as stream:
            return stream.read().decode(errors='replace')

    def pid(self, name):
        return self.processes[name].popen.pid

    # ------------------------------------------------------------------ waits and services

    def wait_ready(self, timeout_s=45.0, state=STANDBY):
        """The supervisor in ``state``, a protection status and an estimate with a pack SoC."""
        deadline = time.monotonic() + timeout_s
        self.states.wait_for(lambda s: s.state == state, timeout_s=timeout_s,
                             what=f'state {state}')
        self.status.wait_for(timeout_s=max(1.0, deadline - time.monotonic()),
                             what='a protection status')
        self.estimates.wait_for(lambda e: e.pack_soc == e.pack_soc,
                                timeout_s=max(1.0, deadline - time.monotonic()),
                                what='an estimate with a pack SoC')
        return self

    def request(self, state, requester='test', timeout_s=15.0, retry_s=0.0):
        """RequestState; with ``retry_s`` asks again (every 0.5 s) until accepted."""
        request = RequestState.Request(state=state, requester=requester)
        deadline = time.monotonic() + retry_s
        while True:
            answer = self.env.call(RequestState, self.ns('request_state'), request,
                                   timeout_s=timeout_s)
            if answer.accepted or time.monotonic() >= deadline:
                return answer
            time.sleep(0.5)

    def drive(self, timeout_s=20.0):
        """Request DRIVE (retrying while the suite settles) and wait for it."""
        self.states.clear()
        answer = self.request(DRIVE, retry_s=10.0)
        assert answer.accepted, f'DRIVE refused: {answer.reason}\n' + self.env.process_logs()
        return self.states.wait_for(lambda s: s.state == DRIVE, timeout_s=timeout_s,
                                    what='DRIVE')

    def reset(self, requester='test', reason='test', timeout_s=10.0):
        return self.env.call(ResetTrips, self.ns('reset_trips'),
                             ResetTrips.Request(requester=requester, reason=reason),
                             timeout_s=timeout_s)

    def reset_until(self, predicate, timeout_s, requester='test', reason='test'):
        """Ask for a reset every 0.5 s until ``predicate(answer)``; the last answer."""
        deadline = time.monotonic() + timeout_s
        answer = self.reset(requester, reason)
        while not predicate(answer):
            if time.monotonic() > deadline:
                raise AssertionError(f'reset answer never matched in {timeout_s} s; last: '
                                     f'{answer.success} {answer.message!r}\n'
                                     + self.env.process_logs())
            time.sleep(0.5)
            answer = self.reset(requester, reason)
        return answer

    def fault(self, name, index=0, value=0.0, clear=False):
        """sim/inject_fault; asserts success and returns the simulator's message."""
        request = InjectFault.Request(fault=name, index=index, value=float(value), clear=clear)
        answer = self.env.call(InjectFault, self.ns('sim/inject_fault'), request, timeout_s=20.0)
        assert answer.success, answer.message
        return answer.message

    def set_soc(self, cell_soc, timeout_s=10.0):
        request = SetSoc.Request(from_ocv=False, force=False, cell_soc=list(cell_soc))
        return self.env.call(SetSoc, self.ns('set_soc'), request, timeout_s=timeout_s)

    def demand(self, current_a):
        """Hold the simulated load at ``current_a`` (A, + = charging) from now on."""
        self.env.wait_for_subscribers(self.demand_pub, timeout_s=20.0)
        self.demand_pub.publish(Float32(data=float(current_a)))

    def topic_names(self):
        """Every topic name the probe sees in the graph now."""
        return {name for name, _ in self.env.node.get_topic_names_and_types()}


# ---------------------------------------------------------------------------------------------
# soak: the whole graph for a while, watched for lost messages, memory growth, latency drift


def _poll(predicate, timeout_s, what, fail=True):
    """Poll ``predicate`` every 0.05 s until it holds; after ``timeout_s`` raise (``fail``) or
    return False, leaving the caller's assertions to say what is missing.
    """
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            if fail:
                raise AssertionError(f'timeout after {timeout_s} s: {what}')
            return False
        time.sleep(0.05)    # poll interval
    return True


def _slope_per_min(times_s, values):
    """Least-squares slope of ``values`` per minute (NaN with fewer than 3 samples)."""
    if len(times_s) < 3:
        return float('nan')
    t = np.asarray(times_s, dtype=float)
    return float(np.polyfit(t - t[0], np.asarray(values, dtype=float), 1)[0] * 60.0)


def run_soak(env, folder, wall_s, time_scale, base='nmc_96s.yaml', fault_period_s=5.0,
             fault_on_s=1.5):
    """Run the whole graph in DRIVE for ``wall_s`` wall seconds at ``time_scale``; return figures.

    Events: every ``fault_period_s`` one cell reading is stuck for ``fault_on_s`` just above the
    cell over-voltage warning level (below alarm and trip; shorter than the spread debounce), so
    protection raises and clears exactly one warning per cycle: the events the probe receives on
    trip_event (reliable, transient-local) are counted against the RAISE/CLEAR lines protection
    logged for them (what it published). Every reliable subscription of the probe (trip_event,
    measurement, can_rx) counts the samples DDS reports lost (message_lost event). Measurements:
    count, largest stamp gap, age (receive time - header stamp) in the first and last third.
    can_rx: frames received against the driver's can_rx_published counter (/diagnostics), both
    counted between the same two diagnostics stamps (the frames by their own stamps). RSS
    of every process sampled each second; growth and slope over the second half (warm-up done).
    """
    import psutil
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.event_handler import SubscriptionEventCallbacks

    from bms_interfaces.msg import CanFrame
    from bms_ros.nodes import qos

    with open(os.path.join(config_dir(), 'profiles', base), encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    warning_v = data['protection']['cell_overvoltage']['warning_v']
    alarm_v = data['protection']['cell_overvoltage']['alarm_v']
    stuck_v = 0.5 * (warning_v + alarm_v)
    rate_hz = data['can']['publish_rate_hz']
    suite = Suite(env, folder, base=base, time_scale=time_scale)
    lost = {'measurement': 0, 'trip_event': 0, 'can_rx': 0}
    ages = []        # (receive monotonic s, age s, stamp s) of every measurement
    frame_stamps = []   # header stamp (ns) of every frame received on can_rx
    published = {}      # latest (can_rx_published, stamp ns) of the driver's diagnostics

    def lost_counter(topic):
        def on_lost(info):
            lost[topic] += info.total_count_change
        return SubscriptionEventCallbacks(message_lost=on_lost)

    wall_minus_mono = time.time() - time.monotonic()

    def on_measurement(msg):
        now = time.monotonic()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        ages.append((now, now + wall_minus_mono - stamp, stamp))

    def on_frame(msg):
        frame_stamps.append(message_time_ns(msg, 0))

    def on_diagnostics(msg):
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if 'can_rx_published' in values:
                published['can_rx'] = (int(values['can_rx_published']),
                                       message_time_ns(msg, 0))

    node = env.node
    node.create_subscription(PackMeasurement, 'measurement', on_measurement, RELIABLE,
                             event_callbacks=lost_counter('measurement'))
    node.create_subscription(ProtectionEvent, 'trip_event', lambda _: None, LATCHED,
                             event_callbacks=lost_counter('trip_event'))
    node.create_subscription(CanFrame, 'can_rx', on_frame,
                             qos.FRAMES,
                             event_callbacks=lost_counter('can_rx'))
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, RELIABLE)
    suite.start()
    suite.wait_ready(timeout_s=60.0)
    suite.drive()
    processes = {name: psutil.Process(suite.pid(name)) for name in NODES}
    rss = {name: [] for name in NODES}
    samples_t = []
    cpu0 = {name: sum(p.cpu_times()[:2]) for name, p in processes.items()}
    _poll(lambda: 'can_rx' in published, 20.0,
          'a first diagnostics message with the can_rx counter\n' + env.process_logs())
    can_rx_start = published.get('can_rx')
    start = time.monotonic()
    ages.clear()
    suite.events.clear()
    cycles = 0
    next_fault = start + 1.0
    next_sample = start
    while time.monotonic() - start < wall_s:
        now = time.monotonic()
        if now >= next_sample:
            samples_t.append(now - start)
            for name, process in processes.items():
                rss[name].append(process.memory_info().rss)
            next_sample += 1.0
        if now >= next_fault and now - start + fault_period_s < wall_s:
            cell = (7 * cycles) % suite.cells
            suite.fault('stuck_cell_voltage', cell, stuck_v)
            time.sleep(fault_on_s)    # the workload: the fault held for fault_on_s
            suite.fault('stuck_cell_voltage', cell, clear=True)
            cycles += 1
            next_fault += fault_period_s
        time.sleep(0.05)              # the schedule's tick
    elapsed = time.monotonic() - start
    cpu = {name: 100.0 * (sum(p.cpu_times()[:2]) - cpu0[name]) / elapsed
           for name, p in processes.items()}
    can_rx_end = published.get('can_rx')

    def logged_events():
        """RAISE / CLEAR lines protection logged for the cell over-voltage warnings."""
        return sum(1 for line in suite.log('protection').splitlines()
                   if 'RAISE warning cell_overvoltage[' in line
                   or 'CLEAR warning cell_overvoltage[' in line)

    # the last clear (release 1 s) reaches the probe: every raise and clear received, and
    # logged (protection logs an event after publishing it, so its line may come later)
    _poll(lambda: sum(1 for _, e in list(suite.events.messages)
                      if e.limit_id == 'cell_overvoltage') >= 2 * cycles
          and logged_events() >= 2 * cycles, 20.0,
          f'{2 * cycles} cell_overvoltage events (raise and clear per cycle)', fail=False)
    dead = suite.dead()
    final_state = suite.states.latest()
    logged = logged_events()
    received = [e for _, e in list(suite.events.messages) if e.limit_id == 'cell_overvoltage']
    others = [e for _, e in list(suite.events.messages)
              if e.limit_id != 'cell_overvoltage' and e.active]
    # one snapshot: the executor thread keeps appending to ``ages`` while this reads it
    arrivals, age, stamps = np.array(list(ages), dtype=float).reshape(-1, 3).T
    window = (arrivals >= start) & (arrivals <= start + elapsed)
    age, stamps = age[window], stamps[window]
    third = max(1, len(age) // 3)
    half = len(samples_t) // 2
    frames = {}
    if can_rx_start and can_rx_end:
        # the diagnostics and can_rx are two streams: count the frames the driver stamped
        # between the two diagnostics, once a later frame shows every one of them has arrived
        _poll(lambda: frame_stamps and frame_stamps[-1] > can_rx_end[1], 10.0,
              'a can_rx frame after the last diagnostics', fail=False)
        stamps_ns = np.array(list(frame_stamps), dtype=np.int64)
        frames = {'published': can_rx_end[0] - can_rx_start[0],
                  'received': int(np.count_nonzero((stamps_ns > can_rx_start[1])
                                                   & (stamps_ns <= can_rx_end[1])))}
    return {
        'wall_s': elapsed, 'time_scale': time_scale, 'sim_s': elapsed * time_scale,
        'cells': suite.cells, 'cycles': cycles, 'events_expected': 2 * cycles,
        'events_published': logged, 'events_received': len(received),
        'event_levels': sorted({e.level for e in received}),
        'other_events': [f'{e.limit_id}[{e.index}] level {e.level}' for e in others],
        'lost': dict(lost),
        'measurements_received': int(window.sum()),
        'measurements_min_expected': elapsed * rate_hz,
        'measurement_max_gap_s': float(np.max(np.diff(stamps))) if len(stamps) > 1
        else float('nan'),
        'stamps_increasing': bool(np.all(np.diff(stamps) > 0)),
        'age_early_p50_s': float(np.median(age[:third])),
        'age_late_p50_s': float(np.median(age[-third:])),
        'age_p99_s': float(np.percentile(age, 99)),
        'can_rx_frames': frames,
        'rss_mib': {n: v[-1] / 2**20 for n, v in rss.items()},
        'rss_slope_kib_per_min': {n: _slope_per_min(samples_t[half:],
                                                    np.array(v[half:]) / 1024.0)
                                  for n, v in rss.items()},
        'rss_growth_kib': {n: (v[-1] - v[half]) / 1024.0 for n, v in rss.items()},
        'cpu_pct': cpu, 'dead': dead,
        'final_state': final_state.state_name if final_state is not None else None,
    }
