"""The fault campaign: the whole graph in DRIVE with current flowing, one fault at a time.

Each case breaks one thing in real processes (SIGKILL, SIGSTOP of a node; a CAN frame group
silenced or frozen at the simulated pack) and measures, from the moment of the fault, when the
first all-open contactor command appears on the bus (a sniffer on the hub, decoding the
mapping's command frame) and when the simulated pack reports every contactor open
(sim_truth). Then it undoes the fault and brings the pack back to DRIVE for the next case.
Used by test/ros/test_fault_campaign.py (bounds from bms_ros.core.failsafe) and
bench/fault_latency.py (percentiles over many trials).
"""
import os
import re
import signal
import threading
import time

from bms_interfaces.srv import InjectFault, RequestState, ResetTrips
from bms_ros.core.can_bus import BusConfig, CanBus, load_can_settings
from bms_ros.core.can_codec import CanProtocol, PackEncoder
from bms_ros.core.failsafe import profile_value
from bms_ros.core.profile import Profile

from .suite import DRIVE, ERROR, STANDBY, Suite, contactors_open

# the measurement groups of PackMeasurement and a field that identifies each one's message
GROUP_FIELDS = {'cell_voltages': 'cell_voltages_v', 'temperatures': 'temperatures_degc',
                'current': 'pack_current_a', 'contactors': 'negative_contactor_closed',
                'balancing': 'cell_balancing'}
# what the campaign drives with: a steady discharge (A, + = charging)
DRIVE_CURRENT_A = -20.0
# the simulator's own holds, as it logs them (bms_ros/nodes/pack_simulator.py): its tick thread
# (the pack's controller) or its sim_truth timer, held by load or by a call holding the GIL
SIM_HELD = {'tick': re.compile(r'\[(\d+\.\d+)\] \[pack_simulator\]: tick held: time slipped '
                               r'(\d+\.\d+) s'),
            'truth': re.compile(r'\[(\d+\.\d+)\] \[pack_simulator\]: truth held: sim_truth '
                                r'(\d+\.\d+) s late')}


def _first_after(log, t0, predicate, timeout_s):
    """(arrival, message) of the first message of ``log`` after ``t0`` matching ``predicate``,
    waiting until ``t0 + timeout_s``; None if there is none by then.
    """
    deadline = t0 + timeout_s
    while True:
        hit = next(((t, m) for t, m in list(log.messages) if t > t0 and predicate(m)), None)
        if hit is not None or time.monotonic() > deadline:
            return hit
        time.sleep(0.02)


class BusSniffer:
    """A client of the CAN hub recording every contactor command frame it sees."""

    def __init__(self, port, protocol):
        self.port = port
        self.decoder = PackEncoder(protocol)
        self.commands = []          # (monotonic s, (negative, precharge, positive))
        self._lock = threading.Lock()
        self._running = True
        self._thread = threading.Thread(target=self._run, name='bus_sniffer', daemon=True)
        self._thread.start()

    def _run(self):
        # CanBus reopens the link by itself and sees a hub that closed it (a campaign case)
        bus = CanBus(BusConfig(port=self.port, reconnect_max_s=0.2))
        while self._running:
            msg = bus.recv(0.1)
            if msg is None:
                continue
            now = time.monotonic()
            command = self.decoder.decode_command(msg)
            if command is not None and command['kind'] == 'contactor':
                state = (command['negative_closed'], command['precharge_closed'],
                         command['positive_closed'])
                # the hub stamps each frame (wall clock) as it takes it from the sender: the
                # moment the frame is on the bus, whatever this process's scheduling delay
                on_bus = msg.timestamp - (time.time() - now)
                with self._lock:
                    self.commands.append((min(on_bus, now), now, state))
        bus.close()

    def first_all_open_after(self, t0):
        """(on the bus, seen here): monotonic times of the first all-open command frame the hub
        took after ``t0``, as the hub stamped it and as this sniffer received it (None if none).
        """
        with self._lock:
            for on_bus, seen, state in self.commands:
                if on_bus > t0 and not any(state):
                    return on_bus, seen
        return None

    def close(self):
        self._running = False
        self._thread.join(2.0)


class Campaign:
    """One suite, driven through fault cases; ``bounds`` from the profile's fail-safe table."""

    def __init__(self, env, folder, edits=None):
        self.suite = Suite(env, folder, edits=edits)
        profile = Profile(self.suite.profile)
        settings = load_can_settings(profile)
        self.protocol = CanProtocol.from_files(settings.dbc_path, settings.mapping_path,
                                               profile.pack.cells_series,
                                               profile.pack.temperature_sensors)
        self.bounds = {r.row.row_id: r.worst_case_s for r in profile.failsafe}
        self.raw = profile.top.data
        self.sniffer = None

    def start(self):
        self.suite.start()
        self.sniffer = BusSniffer(self.suite.port, self.protocol)
        self.suite.wait_ready(timeout_s=60.0)
        return self

    def close(self):
        if self.sniffer is not None:
            self.sniffer.close()

    def message_index(self, group):
        """Index of the measurement message carrying ``group`` (the simulator's fault index)."""
        field = GROUP_FIELDS[group]
        for i, mm in enumerate(self.protocol.measurement_messages):
            if any(s.field == field for s in mm.signals):
                return i
        raise KeyError(group)

    # ------------------------------------------------------------------ services

    # the services each node serves: a killed server leaves a ghost in the graph for a while
    # (its DDS lease), so a cached client may send to it and wait forever; after a restart the
    # clients are made anew and every call is retried a few times with a short timeout
    SERVICES = {'pack_supervisor': (RequestState, 'request_state'),
                'protection': (ResetTrips, 'reset_trips'),
                'pack_simulator': (InjectFault, 'sim/inject_fault')}

    def call(self, srv_type, name, request, tries=5, timeout_s=4.0):
        env = self.suite.env
        for attempt in range(tries):
            try:
                return env.call(srv_type, name, request, timeout_s=timeout_s)
            except AssertionError:
                if attempt == tries - 1:
                    raise
                env._clients.pop((srv_type, name), None)
        raise AssertionError('unreachable')

    def request(self, state, retry_s=10.0):
        request = RequestState.Request(state=state, requester='campaign')
        deadline = time.monotonic() + retry_s
        while True:
            answer = self.call(RequestState, 'request_state', request)
            if answer.accepted or time.monotonic() >= deadline:
                return answer
            time.sleep(0.3)

    def reset_until_clear(self, timeout_s):
        request = ResetTrips.Request(requester='campaign', reason='fault campaign')
        deadline = time.monotonic() + timeout_s
        while True:
            answer = self.call(ResetTrips, 'reset_trips', request)
            if answer.success or 'nothing' in answer.message.lower() \
                    or time.monotonic() >= deadline:
                return answer
            time.sleep(0.3)

    def fault(self, kind, index, clear=False):
        request = InjectFault.Request(fault=kind, index=index, value=0.0, clear=clear)
        answer = self.call(InjectFault, 'sim/inject_fault', request)
        assert answer.success, answer.message
        return answer.message

    # ------------------------------------------------------------------ getting to DRIVE

    def drive(self, timeout_s=40.0):
        """From whatever state: everything fresh, trips reset, STANDBY, then DRIVE at load."""
        s = self.suite
        deadline = time.monotonic() + timeout_s
        s.demand(DRIVE_CURRENT_A)
        # fresh, complete measurements first: a reset is refused while a group is stale
        s.measurements.clear()
        s.measurements.wait_for(
            lambda m: not (m.cell_voltages_stale or m.temperatures_stale or m.current_stale
                           or m.contactors_stale),
            timeout_s=max(1.0, deadline - time.monotonic()), what='a fresh measurement')
        # the state now, not the last one seen: a node resumed from SIGSTOP (or a supervisor
        # that was stopped itself) still acts on what it missed, so a DRIVE must also hold for
        # the contactor feedback timeout before it counts
        s.states.clear()
        state = s.states.wait_for(timeout_s=max(1.0, deadline - time.monotonic()),
                                  what='a fresh pack_state')
        if state.state == DRIVE:
            settle_s = self.field('supervisor.contactor_feedback_timeout_s', 0.5) + 0.5
            moved = self.state_after(time.monotonic(), lambda m: m.state != DRIVE, settle_s)
            state = moved or state
        if state.state not in (STANDBY, DRIVE):
            self.reset_until_clear(max(1.0, deadline - time.monotonic() - 15.0))
            answer = self.request(STANDBY, retry_s=max(1.0, deadline - time.monotonic() - 15.0))
            assert answer.accepted, f'STANDBY refused: {answer.reason}\n' + s.env.process_logs()
            state = s.states.latest()
        if state.state != DRIVE:
            s.states.clear()
            answer = self.request(DRIVE, retry_s=max(1.0, deadline - time.monotonic() - 10.0))
            assert answer.accepted, f'DRIVE refused: {answer.reason}\n' + s.env.process_logs()
            s.states.wait_for(lambda m: m.state == DRIVE,
                              timeout_s=max(1.0, deadline - time.monotonic()), what='DRIVE')
        # the demand again until the pack carries it: a restarted simulator may have missed
        # the first one (volatile topic; the killed subscriber's ghost took it)
        def flowing(t):
            return (t.negative_contactor_closed and t.positive_contactor_closed
                    and t.pack_current_a < 0.5 * DRIVE_CURRENT_A)
        while self.truth_after(time.monotonic(), flowing, 0.5) is None:
            assert time.monotonic() < deadline, \
                'no current through closed contactors after DRIVE\n' + s.env.process_logs()
            s.demand(DRIVE_CURRENT_A)

    # ------------------------------------------------------------------ faults

    def signal(self, name, sig):
        """Send ``sig`` to ``name``'s process group; the monotonic time just before."""
        t0 = time.monotonic()
        os.killpg(self.suite.pid(name), sig)
        return t0

    def undo_node(self, name, sig):
        if sig == signal.SIGSTOP:
            os.killpg(self.suite.pid(name), signal.SIGCONT)
        else:
            self.suite.processes[name].popen.wait(5.0)
            if name == 'state_estimator':
                self.suite.estimates.clear()
            self.suite.start_node(name)
            if name == 'state_estimator':
                # running again, not starting: the next round hangs a running estimator (one
                # hung within ~2 s of its start can stall the supervisor's publishing and open
                # the pack: docs/safety.md, "A reader frozen just after it joined")
                self.suite.estimates.wait_for(timeout_s=20.0, what='the restarted estimate')
            if name in self.SERVICES:
                self.suite.env._clients.pop(self.SERVICES[name], None)

    def frame_fault(self, kind, group, clear=False):
        """``can_silent`` / ``can_frozen`` of ``group``'s message at the pack; time before."""
        t0 = time.monotonic()
        self.fault(kind, self.message_index(group), clear=clear)
        return t0

    # ------------------------------------------------------------------ observations

    def wait_opened(self, t0, timeout_s, bus=True, pack=True, observer_lag=None, detail=None):
        """(bus_s, pack_s): seconds from ``t0`` to the first all-open frame on the bus (the
        hub's stamp) and to the pack reporting every contactor open (None where not asked or
        not seen). ``observer_lag``, a list, gets the sniffer's delay behind the hub (s);
        ``detail``, a dict, gets the pack side's two clocks: ``pack_stamp_s`` (the simulator's
        stamp of that sim_truth) and ``pack_arrival_s`` (its arrival here), both from ``t0``.
        """
        deadline = t0 + timeout_s
        bus_t = pack_t = None
        while time.monotonic() < deadline:
            if bus and bus_t is None:
                bus_t = self.sniffer.first_all_open_after(t0)
            if pack and pack_t is None:
                pack_t = next(((t, m) for t, m in list(self.suite.truth.messages)
                               if t > t0 and contactors_open(m)), None)
            if (bus_t is not None or not bus) and (pack_t is not None or not pack):
                break
            time.sleep(0.02)
        if bus_t is not None and observer_lag is not None:
            observer_lag.append(bus_t[1] - bus_t[0])
        if pack_t is not None and detail is not None:
            stamp = pack_t[1].header.stamp
            wall_s = stamp.sec + stamp.nanosec * 1e-9
            detail['pack_stamp_s'] = wall_s - (time.time() - time.monotonic()) - t0
            detail['pack_arrival_s'] = pack_t[0] - t0
            detail['sim_held_s'] = self.sim_held_s(t0, pack_t[0])
        return (None if bus_t is None else bus_t[0] - t0,
                None if pack_t is None else pack_t[0] - t0)

    def sim_held_s(self, t0, t1):
        """Wall seconds the simulated pack itself was held between monotonic ``t0`` and ``t1``,
        from its log: the larger of its tick thread's and its sim_truth timer's holds (one stall
        of the process shows in both). A stand-in for a pack controller, which a loaded host
        does not hold, so the campaign does not count them against the BMS.
        """
        offset_s = time.time() - time.monotonic()
        log = self.suite.log('pack_simulator')
        held = {}
        for kind, pattern in SIM_HELD.items():
            held[kind] = sum(float(m.group(2)) for m in pattern.finditer(log)
                             if t0 + offset_s < float(m.group(1)) <= t1 + offset_s)
        return max(held.values())

    def truth_after(self, t0, predicate, timeout_s):
        """Seconds from ``t0`` to the first sim_truth after it matching ``predicate`` (None)."""
        hit = _first_after(self.suite.truth, t0, predicate, timeout_s)
        return None if hit is None else hit[0] - t0

    def state_after(self, t0, predicate, timeout_s):
        """The first pack_state received after ``t0`` matching ``predicate`` (None)."""
        hit = _first_after(self.suite.states, t0, predicate, timeout_s)
        return None if hit is None else hit[1]

    def closed_throughout(self, t0, seconds):
        """True if the pack kept its main contactors closed from ``t0`` for ``seconds`` (an
        observation window: it ends early, False, at the first report of an open contactor).
        """
        end = t0 + seconds

        def closed(m):
            return m.negative_contactor_closed and m.positive_contactor_closed

        while True:
            seen = [m for t, m in list(self.suite.truth.messages) if t0 < t <= end]
            if not all(closed(m) for m in seen):
                return False
            if time.monotonic() >= end:
                return bool(seen)
            time.sleep(0.05)    # poll interval

    def field(self, dotted, default):
        """A value of the campaign's profile (``section.field``), else ``default``."""
        return profile_value(self.raw, dotted, default)


__all__ = ['BusSniffer', 'Campaign', 'DRIVE', 'ERROR', 'STANDBY']
