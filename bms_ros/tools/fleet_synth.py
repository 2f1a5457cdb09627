"""fleet_synth: write a synthetic fleet of N packs x M short MCAP bags from the pack model.

    python -m bms_ros.tools.fleet_synth --packs 20 --bags 50 --out DIR [--days-per-bag 1]
                                        [--jobs 2] [--seed 1] [--profile P]

Each pack is the profile's simulated pack (its simulator section: spreads, noise) with its own
seed and serial number, ageing by bms_ros.core.ageing (capacity fade, R0 growth per equivalent
cycle and per day, per-cell spread). One bag is one mission, stamped on simulated days: 20 s at
rest with the contactors open, a discharge at 3-5 C from the top of charge to ~15 % SoC (its
steps carry R0), 1830 s at rest (the LFP profile's estimator re-anchors from OCV after
1800 s); between missions the pack
rests (leaks and self-discharge flow) and a series charger fills it. Every second mission a
balancer bleeds the two highest cells during the final rest (recorded in cell_balancing).

Special packs (as the issue asks): pack 0 fades fast (rates x --fast-fade-factor), pack 1 has
a cell leaking --leak-ma (an internal short) from --leak-start-day, pack 2 has a current-sensor
offset drifting by --offset-drift-a-per-day. ``fleet_truth.json`` in OUT records all of it and
the true capacities and R0 of every bag.

Bags hold measurement (10 Hz, as the CAN driver assembles it), battery_state (its
serial_number, as the state_estimator publishes it) and sim_truth at the mission's start and
end; custom data bms_ros.serial_number and bms_ros.profile. Written with bms_ros.tools.bag's
BagWriter; no ROS. Exit codes: 0 done, 2 bad arguments.
"""
import argparse
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace

import numpy as np

from bms_ros.core import bag_schema
from bms_ros.core.ageing import SECONDS_PER_DAY, AgeingRates, PackAgeing, rest
from bms_ros.core.config import Section
from bms_ros.core.errors import BmsError
from bms_ros.core.fleet.cdr import MeasurementLayout
from bms_ros.core.pack_model import PackModel, SimulatorConfig
from bms_ros.core.profile import Profile, default_profile_path

EPOCH_S = 1_767_225_600          # 2026-01-01T00:00:00Z: day 0 of the fleet
PERIOD_S = 0.1                   # measurement period (10 Hz)
LATENCY_S = 0.002                # recorder reception after the stamp
START_REST_S = 20.0
END_REST_S = 1830.0             # > the LFP profile's rest_time_s (1800 s): the estimator re-anchors
TOP_SOC = 0.99                   # charger stops when the highest cell reaches this
BOTTOM_SOC = 0.15                # mission ends when the lowest cell reaches this
# discharge pattern per minute: (duration s, C rate); steps of >= 2 C carry R0
PATTERN = ((40.0, -5.0), (15.0, -3.0), (5.0, 0.0))
MEASUREMENT = 'bms_interfaces/msg/PackMeasurement'


@dataclass(frozen=True)
class FleetSpec:
    """What the generator writes; defaults as `python -m bms_ros.tools.fleet_synth`."""

    packs: int = 20
    bags: int = 50
    days_per_bag: float = 1.0
    seed: int = 1
    profile: str = ''
    fast_fade_pack: int = 0
    fast_fade_factor: float = 8.0
    leak_pack: int = 1
    leak_cell: int = 5
    leak_a: float = 0.010
    leak_start_day: float = -1.0          # < 0: at a quarter of the fleet's days
    offset_pack: int = 2
    offset_drift_a_per_day: float = 0.03
    capacity_fade_per_efc: float = AgeingRates.capacity_fade_per_efc
    capacity_fade_per_day: float = AgeingRates.capacity_fade_per_day
    r0_growth_per_efc: float = AgeingRates.r0_growth_per_efc
    r0_growth_per_day: float = AgeingRates.r0_growth_per_day

    @property
    def leak_day(self):
        """The day (since the first bag) the leak starts."""
        return self.leak_start_day if self.leak_start_day >= 0 else \
            0.25 * self.bags * self.days_per_bag

    def serial(self, pack):
        """The serial number of pack number ``pack``."""
        return f'FLEET-LFP-{pack:03d}'

    def role(self, pack):
        """The fault(s) pack number ``pack`` is made with, '+'-joined, or 'healthy'."""
        roles = []
        if pack == self.fast_fade_pack:
            roles.append('fast_fade')
        if pack == self.leak_pack:
            roles.append('leak')
        if pack == self.offset_pack:
            roles.append('offset_drift')
        return '+'.join(roles) or 'healthy'


def _profile_path(spec):
    return spec.profile or default_profile_path()


def make_model(spec, pack):
    """(Profile, PackModel) of fleet pack ``pack``: the profile's simulator at 0.1 s steps."""
    profile = Profile(_profile_path(spec))
    data = dict(profile.section('simulator').data, seed=1000 * spec.seed + pack, step_s=PERIOD_S,
                initial_soc=TOP_SOC - 0.01, load={'kind': 'constant', 'current_a': 0.0},
                faults=[], time_scale=1.0)
    data.pop('faded_cells', None)
    config = SimulatorConfig.from_section(Section(data, profile.path, 'simulator'), profile.pack)
    return profile, PackModel(profile.pack, config)


def _header(t_s, frame_id):
    from bms_ros.tools.bag.bagio import new_message, time_message
    return new_message('std_msgs/msg/Header', stamp=time_message(t_s), frame_id=frame_id)


def _truth(model, t_s, frame_id):
    from bms_ros.tools.bag.bagio import new_message
    return new_message('bms_interfaces/msg/SimTruth', header=_header(t_s, frame_id),
                       **model.truth())


def _battery_state(profile, t_s, serial):
    from bms_ros.tools.bag.bagio import new_message
    return new_message('sensor_msgs/msg/BatteryState', header=_header(t_s, profile.pack.name),
                       serial_number=serial, location=profile.pack.location, present=True,
                       design_capacity=float(profile.pack.capacity_ah))


class _Mission:
    """Writes one bag: the model sampled at 10 Hz while the mission runs."""

    def __init__(self, writer, layout, model, t0_s):
        self.writer = writer
        self.layout = layout
        self.model = model
        self.t0_s = t0_s
        self.k = 0
        self.topic = bag_schema.resolve('', 'measurement')
        self.rng = np.random.default_rng([int(t0_s), model.config.seed, 3])

    @property
    def t_s(self):
        return self.t0_s + self.k * PERIOD_S

    def sample(self):
        m = self.model.measured()
        t_ns = int(round(self.t_s * 1e9))
        data = self.layout.encode(
            t_ns, m['cell_voltages_v'], m['temperatures_degc'], m['pack_current_a'],
            m['pack_voltage_v'], m['link_voltage_v'],
            (m['negative_contactor_closed'], m['positive_contactor_closed'],
             m['precharge_relay_closed']), m['cell_balancing'])
        self.writer.write(self.topic, t_ns + int(LATENCY_S * 1e9), data)

    def run_for(self, duration_s):
        for _ in range(int(round(duration_s / PERIOD_S))):
            self.model.step()
            self.k += 1
            self.sample()

    def rest_for(self, duration_s):
        """Contactors open: the model's closed-form rest, every sample of it at once.

        Self-discharge, leaks and the bleed current at the start of the rest flow; the model's
        measurement noise (same standard deviations, its own generator) is added; the model
        ends where bms_ros.core.ageing.rest leaves it.
        """
        model = self.model
        count = int(round(duration_s / PERIOD_S))
        if count <= 0:
            return
        cfg = model.config
        t = PERIOD_S * np.arange(1, count + 1)[:, None]
        bleed_a = np.where(model.bleed, model.cell_voltages_v / cfg.bleed_resistance_ohm, 0.0)
        i_cell = -np.asarray(model.self_discharge_a, dtype=float) - bleed_a
        soc = np.clip(model.soc + i_cell * t / (3600.0 * model.capacity_ah), 0.0, 1.0)
        decay = np.exp(-t / model.tau1_s)
        rc = model.rc_v * decay + model.r1_ohm * (1.0 - decay) * i_cell
        cell = model.cell
        thermal = np.exp(-t * cell.cooling_w_per_k / (cell.mass_kg * cell.heat_capacity_j_per_kg_k))
        temps = model.ambient_degc + (model.temperatures_degc - model.ambient_degc) * thermal
        r0 = cell.r0_at(temps) * model.r0_factor
        volts = cell.ocv.ocv(soc, temps) + i_cell * r0 + rc
        sensor = model.pack.sensor_of_cell()
        per_sensor = np.stack([temps[:, sensor == j].mean(axis=1) if np.any(sensor == j)
                               else temps[:, min(j, model.cells - 1)]
                               for j in range(model.sensors)], axis=1)
        noise = cfg.noise
        rng = self.rng
        volts_m = volts + noise.cell_voltage_v * rng.standard_normal(volts.shape)
        temps_m = per_sensor + noise.temperature_degc * rng.standard_normal(per_sensor.shape)
        current_m = model.faults.current_offset_a + noise.current_a * rng.standard_normal(count)
        pack_m = np.maximum(0.0, volts.sum(axis=1) + noise.pack_voltage_v
                            * rng.standard_normal(count))
        link_m = np.maximum(0.0, noise.link_voltage_v * rng.standard_normal(count))
        contactors = (model.negative_contactor_closed, model.positive_contactor_closed,
                      model.precharge_relay_closed)
        bleed = model.bleed.copy()
        for k in range(count):
            self.k += 1
            t_ns = int(round(self.t_s * 1e9))
            data = self.layout.encode(t_ns, volts_m[k], temps_m[k], float(current_m[k]),
                                      float(pack_m[k]), float(link_m[k]), contactors, bleed)
            self.writer.write(self.topic, t_ns + int(LATENCY_S * 1e9), data)
        rest(model, count * PERIOD_S, keep_bleed=True)


def _write_bag(path, spec, profile, model, serial, t0_s, bleed):
    """One mission into bag ``path`` starting at unix ``t0_s``; returns its summary dict."""
    from bms_ros.tools.bag.bagio import BagWriter
    frame_id = profile.pack.name
    custom = {'bms_ros.namespace': '', 'bms_ros.serial_number': serial,
              'bms_ros.profile': os.path.abspath(profile.path),
              'bms_ros.source': 'bms_ros.tools.fleet_synth (pack model, no ROS graph)'}
    stream = [bag_schema.qos_fields(bag_schema.STREAM, 10)]
    layout = MeasurementLayout(model.cells, model.sensors, frame_id)
    capacity_c = profile.pack.capacity_ah
    with BagWriter(path, custom) as writer:
        writer.add_topic(bag_schema.resolve('', 'measurement'), MEASUREMENT, stream)
        for name in ('battery_state', 'sim_truth'):
            writer.add_topic(bag_schema.resolve('', name), bag_schema.TOPICS[name].msgtype,
                             stream)
        mission = _Mission(writer, layout, model, t0_s)
        t_ns = int(round(t0_s * 1e9))
        writer.write_message('/battery_state', t_ns + 1000,
                             _battery_state(profile, t0_s, serial),
                             'sensor_msgs/msg/BatteryState')
        writer.write_message('/sim_truth', t_ns + 2000, _truth(model, t0_s, frame_id),
                             'bms_interfaces/msg/SimTruth')
        truth_start = model.truth()
        mission.sample()
        mission.rest_for(START_REST_S)
        model.set_contactors(True, False, True)
        step = 0
        while float(np.min(model.soc)) > BOTTOM_SOC and step < 10000:
            duration, c_rate = PATTERN[step % len(PATTERN)]
            model.set_demand(c_rate * capacity_c)
            # stop within the step once the lowest cell is down to BOTTOM_SOC
            for _ in range(int(round(duration / PERIOD_S))):
                model.step()
                mission.k += 1
                mission.sample()
                if float(np.min(model.soc)) <= BOTTOM_SOC:
                    break
            step += 1
        model.set_demand(0.0)
        model.set_contactors(False, False, False)
        mission.run_for(0.5)                 # the contactors' feedback opens
        if bleed:
            # a balancer bleeds the two highest cells during the rest (the estimator counts it)
            cells = np.zeros(model.cells, dtype=bool)
            cells[np.argsort(model.soc)[-2:]] = True
            model.set_bleed(cells)
        mission.rest_for(END_REST_S - 0.5)
        model.set_bleed(np.zeros(model.cells, dtype=bool))
        t_end = mission.t_s
        writer.write_message('/sim_truth', int(round(t_end * 1e9)) + 2000,
                             _truth(model, t_end, frame_id), 'bms_interfaces/msg/SimTruth')
    return {'path': os.fspath(path), 'start_unix_s': t0_s, 'end_unix_s': t_end,
            'duration_s': t_end - t0_s, 'measurements': mission.k + 1, 'bleed': bool(bleed),
            'capacity_ah_start': [float(q) for q in truth_start['cell_capacity_ah']],
            'cell_soc_start': [float(z) for z in truth_start['cell_soc']],
            'cell_soc_end': [float(z) for z in model.soc],
            'r0_factor': [float(r) for r in model.r0_factor],
            'current_offset_a': float(model.faults.current_offset_a)}


def generate_pack(spec, pack, out_dir):
    """Write every bag of one pack into ``out_dir/<serial>/``; returns its truth record."""
    profile, model = make_model(spec, pack)
    serial = spec.serial(pack)
    rates = AgeingRates(spec.capacity_fade_per_efc, spec.capacity_fade_per_day,
                        spec.r0_growth_per_efc, spec.r0_growth_per_day)
    if pack == spec.fast_fade_pack:
        rates = rates.scaled(spec.fast_fade_factor)
    ageing = PackAgeing(model, rates, seed=1000 * spec.seed + pack)
    rng = np.random.default_rng([spec.seed, pack, 5])
    base_offset_a = 0.02 * float(rng.standard_normal())
    folder = os.path.join(out_dir, serial)
    os.makedirs(folder, exist_ok=True)
    bags = []
    leak_on = False
    for k in range(spec.bags):
        day = k * spec.days_per_bag + 0.25 * float(rng.random()) * spec.days_per_bag
        # rest until the mission (the leak starts on its day), then a series charge
        rest_s = day * SECONDS_PER_DAY - model.sim_time_s - 3600.0
        if pack == spec.leak_pack and not leak_on:
            before_s = spec.leak_day * SECONDS_PER_DAY - model.sim_time_s
            if before_s < rest_s:
                ageing.rest(max(before_s, 0.0))
                rest_s -= max(before_s, 0.0)
                ageing.set_leak(spec.leak_cell, spec.leak_a)
                leak_on = True
        ageing.rest(max(rest_s, 0.0))
        ageing.charge_to(TOP_SOC)
        ageing.rest(3600.0)
        offset = base_offset_a + (spec.offset_drift_a_per_day * ageing.days
                                  if pack == spec.offset_pack else 0.0)
        model.inject_fault('current_offset', 0, offset)
        t0_s = EPOCH_S + model.sim_time_s
        path = os.path.join(folder, f'{serial}_{k:03d}')
        summary = _write_bag(path, spec, profile, model, serial, t0_s, bleed=k % 2 == 1)
        summary['day'] = ageing.days
        summary['efc'] = ageing.efc
        bags.append(summary)
    return {'serial': serial, 'pack': pack, 'role': spec.role(pack),
            'leak_cell': spec.leak_cell if pack == spec.leak_pack else None,
            'leak_a': spec.leak_a if pack == spec.leak_pack else 0.0,
            'leak_start_day': spec.leak_day if pack == spec.leak_pack else None,
            'offset_drift_a_per_day': spec.offset_drift_a_per_day if pack == spec.offset_pack
            else 0.0, 'base_offset_a': base_offset_a,
            'rates': asdict(rates), 'bags': bags}


def generate(spec, out_dir, jobs=1):
    """Write the whole fleet into ``out_dir`` (must not hold bags yet); returns the truth."""
    started = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    if jobs > 1 and spec.packs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            packs = list(pool.map(generate_pack, [spec] * spec.packs, range(spec.packs),
                                  [out_dir] * spec.packs))
    else:
        packs = [generate_pack(spec, p, out_dir) for p in range(spec.packs)]
    truth = {'format': 'bms_ros.fleet_truth', 'version': 1, 'spec': asdict(spec),
             'epoch_unix_s': EPOCH_S, 'packs': packs,
             'generated_wall_s': time.perf_counter() - started}
    from bms_ros.core.persistence import write_json_atomic
    write_json_atomic(os.path.join(out_dir, 'fleet_truth.json'), truth)
    return truth


def build_parser():
    """The argument parser (its defaults: FleetSpec's)."""
    parser = argparse.ArgumentParser(prog='python -m bms_ros.tools.fleet_synth',
                                     description=__doc__.split('\n')[0])
    d = FleetSpec()
    parser.add_argument('--packs', type=int, default=d.packs)
    parser.add_argument('--bags', type=int, default=d.bags, help='bags (missions) per pack')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--days-per-bag', type=float, default=d.days_per_bag)
    parser.add_argument('--seed', type=int, default=d.seed)
    parser.add_argument('--profile', default='', help='profile YAML (default lfp_16s)')
    parser.add_argument('--jobs', type=int, default=1, help='processes (packs in parallel)')
    parser.add_argument('--leak-ma', type=float, default=1000 * d.leak_a)
    parser.add_argument('--leak-start-day', type=float, default=d.leak_start_day)
    parser.add_argument('--fast-fade-factor', type=float, default=d.fast_fade_factor)
    parser.add_argument('--offset-drift-a-per-day', type=float,
                        default=d.offset_drift_a_per_day)
    return parser


def spec_from_args(args):
    """A FleetSpec from parsed arguments; BmsError on a bad value."""
    if args.packs < 1 or args.bags < 1:
        raise BmsError('--packs and --bags must be >= 1')
    if not (args.days_per_bag > 0 and math.isfinite(args.days_per_bag)):
        raise BmsError('--days-per-bag must be > 0')
    if args.leak_ma < 0 or args.fast_fade_factor < 0:
        raise BmsError('--leak-ma and --fast-fade-factor must be >= 0')
    if args.jobs < 1:
        raise BmsError('--jobs must be >= 1')
    return replace(FleetSpec(), packs=args.packs, bags=args.bags,
                   days_per_bag=args.days_per_bag, seed=args.seed, profile=args.profile,
                   leak_a=args.leak_ma / 1000.0, leak_start_day=args.leak_start_day,
                   fast_fade_factor=args.fast_fade_factor,
                   offset_drift_a_per_day=args.offset_drift_a_per_day)


def main(argv=None):
    """The fleet_synth command line: write the fleet's bags; the exit code."""
    args = build_parser().parse_args(argv)
    try:
        spec = spec_from_args(args)
        if os.path.exists(os.path.join(args.out, spec.serial(0))):
            raise BmsError(f'{args.out}: holds a fleet already; choose a new folder')
        truth = generate(spec, args.out, args.jobs)
    except BmsError as error:
        print(f'fleet_synth: {error}', file=sys.stderr)
        return 2
    hours = sum(b['duration_s'] for p in truth['packs'] for b in p['bags']) / 3600.0
    print(f'{spec.packs} packs x {spec.bags} bags ({hours:.1f} h of data over '
          f'{spec.bags * spec.days_per_bag:g} days) written to {args.out} in '
          f'{truth["generated_wall_s"]:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
