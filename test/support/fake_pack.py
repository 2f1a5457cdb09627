"""The one fake pack of the ROS tests and the benchmarks, driven from the test probe's node.

It publishes PackMeasurement at 10 Hz (as the CAN driver does) and a BatteryEstimate, and
answers ContactorCommand like the real hardware: contactor feedback follows the command after
a closing delay (unless welded or stuck open), and the DC link charges through the pre-charge
resistor (time constant tau) or is shorted (it never rises). With ``delay_s=0, tau_s=0,
publish_on_change=True`` it is the instant pack of bench/trip_latency.py.

Scenarios set its values with ``set(...)`` (per-cell ``cells_v`` and ``valid_cells``, per-sensor
``temperatures_degc`` and ``valid_sensors``; an invalid value is published as NaN, as the CAN
driver does), or give it a ``truth`` cell model (bms_ros.core.estimation.synthetic.EcmCells)
that is stepped at ``current_a`` every period and gives the cell voltages. Two optional
streams: ``protection=True`` publishes ProtectionStatus (``trip_latched``) every period,
``charger=True`` the dock's contact sensor charger_present (Bool, 2 Hz) once
``charger_present`` is set. ``estimates=False`` when the real state_estimator runs;
``namespace`` puts every topic of the pack under /<namespace>/. ``publish_marker`` tells when a
node has processed every measurement so far (a rejected one behind them, counted).

The CAN-level stand-ins (a pack on the CAN hub) are test/support/can_pack.CanPack (the frames
of a state), the real pack_simulator (test/ros/pack_plant.SimulatedSuite) or a pack BMS of its
own (test_pack_control.FakePackBms).
"""
import math
import threading
import time

from std_msgs.msg import Bool

from bms_interfaces.msg import BatteryEstimate, ContactorCommand, PackMeasurement, ProtectionStatus
from test.ros.harness import RELIABLE

CELLS = 16
SENSORS = 8
CELL_V = 3.3
PACK_V = CELLS * CELL_V
PERIOD_S = 0.1     # seconds: the measurement stream of the CAN driver, 10 Hz


class FakePack:
    """Contactors, DC link and sensor values of a pack, driven by contactor_command."""

    def __init__(self, env, delay_s=0.015, tau_s=0.048, soc=0.5, publish_on_change=False, *,
                 cells=CELLS, sensors=SENSORS, truth=None, closed=None, estimate_every=5,
                 protection=False, charger=False, namespace=''):
        """:param delay_s: contactor closing/opening delay, s (0: feedback follows at once).
        :param tau_s: pre-charge time constant of the DC link, s (<= 0: at pack voltage at once).
        :param publish_on_change: also publish a measurement at once on a command change.
        :param cells: cells in series; ``sensors``: temperature sensors.
        :param truth: a cell model with ``step(dt_s, current_a)`` and ``voltage_v()`` (and
            ``soc``, ``capacity_ah``), stepped every period at ``current_a`` (+ = charging).
        :param closed: (negative, precharge, positive) held as if commanded long ago.
        :param estimate_every: publish the estimate every this many measurement periods.
        :param protection: publish protection_status (``trip_latched``) every period.
        :param charger: publish charger_present (``charger_present``, unless None) at 2 Hz.
        :param namespace: the pack's topics under /<namespace>/ (a pack of a multi-pack robot).
        """
        self.env = env
        self.publish_on_change = publish_on_change
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
        self.estimate_every = estimate_every
        self.cell_soc = None       # the estimate's cell_soc (None: left empty)
        self.cell_capacity_ah = None
        self.measurements = True   # False: the measurement stream stops (a stale driver)
        self.trip_latched = False          # protection_status's (with protection=True)
        self.charger_present = None        # None: nothing sent yet (with charger=True)
        self.truth = truth
        self.cells_v = ([float(v) for v in truth.voltage_v()] if truth is not None
                        else [CELL_V] * cells)
        self.temperatures_degc = [25.0] * sensors
        self.current_a = 0.0
        self.pack_v = None         # None: the sum of cells
        self.valid_cells = [True] * cells
        self.valid_sensors = [True] * sensors
        self.lock = self._lock = threading.Lock()   # held while values change or are read
        self._command = (False, False, False) if closed is None else tuple(closed)
        self._changed_s = [0.0, 0.0, 0.0]
        self.closed = list(self._command)
        self.link_v = 0.0
        self._link_from = (0.0, 0.0)   # (time, voltage) the current link transient starts at
        self.commands = []             # (monotonic time, (neg, pre, pos), link_v at that time)
        def topic(name):
            return f'/{namespace.strip("/")}/{name}' if namespace else name
        self.measurement_pub = env.publisher(PackMeasurement, topic('measurement'))
        self.estimate_pub = env.publisher(BatteryEstimate, topic('estimate'))
        self.protection_pub = (env.publisher(ProtectionStatus, topic('protection_status'))
                               if protection else None)
        self.charger_pub = env.publisher(Bool, topic('charger_present')) if charger else None
        env.node.create_subscription(ContactorCommand, topic('contactor_command'),
                                     self._on_command, RELIABLE)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.published = 0

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        """Stop publishing (the publishers stay, for a test's own messages)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)

    def set(self, **values):
        """Set attributes (cells_v, current_a, valid_cells, ...) at once, under the lock."""
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
            changed = command != self._command
            if changed:
                for i in range(3):
                    if command[i] != self._command[i]:
                        self._changed_s[i] = now
                self._command = command
                self.commands.append((now, command, self.link_v))
        if changed and self.publish_on_change:
            self.publish_once()

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
        elif negative and precharge and not self.link_shorted and self.tau_s <= 0.0:
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
            msg.cell_voltages_v = [float(v) if ok else math.nan
                                   for v, ok in zip(self.cells_v, self.valid_cells)]
            msg.cell_voltage_valid = [bool(ok) for ok in self.valid_cells]
            msg.temperatures_degc = [float(t) if ok else math.nan
                                     for t, ok in zip(self.temperatures_degc, self.valid_sensors)]
            msg.temperature_valid = [bool(ok) for ok in self.valid_sensors]
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
        """Publish one measurement of the pack as it is now."""
        self.measurement_pub.publish(self.measurement())
        self.published += 1

    def publish_marker(self, timeout_s=10.0):
        """After the next periodic measurement (the values set so far are out), publish a
        malformed one (no cells) on the same stream: a node that counts it rejected has
        processed every measurement before it (one writer, RELIABLE: in order).
        """
        published = self.published
        deadline = time.monotonic() + timeout_s
        while self.published <= published:
            assert time.monotonic() < deadline, f'no measurement published in {timeout_s} s'
            time.sleep(0.01)    # poll interval
        self.measurement_pub.publish(PackMeasurement())

    def set_cell(self, index, volts):
        """Set one cell voltage and publish at once; the perf_counter time just before."""
        with self._lock:
            self.cells_v[index] = volts
        start = time.perf_counter()
        self.publish_once()
        return start

    def set_contactors(self, negative, precharge, positive):
        """Hold the contactors so (feedback and command alike), as if commanded long ago."""
        with self._lock:
            self._command = (negative, precharge, positive)
            self._changed_s = [0.0, 0.0, 0.0]
            self.closed = [negative, precharge, positive]
            self._update(time.monotonic())

    def _tick(self, k):
        """One period: step the truth, publish the measurement and the streams that are due."""
        if self.measurements:
            if self.truth is not None:
                with self._lock:
                    self.truth.step(PERIOD_S, self.current_a)
                    self.cells_v = [float(v) for v in self.truth.voltage_v()]
            self.publish_once()
        stamp = self.env.node.get_clock().now().to_msg()
        with self._lock:
            estimate = None
            if self.estimates and k % self.estimate_every == 0:
                estimate = BatteryEstimate()
                estimate.header.stamp = stamp
                estimate.pack_soc = float(self.soc)
                estimate.charge_current_limit_a = 100.0
                estimate.discharge_current_limit_a = 500.0
                if self.cell_soc is not None:
                    estimate.cell_soc = [float(x) for x in self.cell_soc]
                if self.cell_capacity_ah is not None:
                    estimate.cell_capacity_ah = [float(x) for x in self.cell_capacity_ah]
            trip_latched, charger_present = self.trip_latched, self.charger_present
        if estimate is not None:
            self.estimate_pub.publish(estimate)
        if self.protection_pub is not None:
            status = ProtectionStatus(trip_latched=bool(trip_latched))
            status.header.stamp = stamp
            self.protection_pub.publish(status)
        if self.charger_pub is not None and charger_present is not None and k % 5 == 0:
            self.charger_pub.publish(Bool(data=bool(charger_present)))

    def _run(self):
        next_s = time.monotonic()
        k = 0
        while not self._stop.is_set():
            try:
                self._tick(k)
            except Exception:  # the probe is shutting down (test over or failed)
                if self.env.context.ok() and not self._stop.is_set():
                    raise
                return
            k += 1
            next_s += PERIOD_S
            self._stop.wait(max(0.0, next_s - time.monotonic()))

    def command_sequence(self):
        """The distinct commands received, in order."""
        with self._lock:
            return [command for _, command, _ in self.commands]
