"""offline: feed a bag's measurements through the estimation and protection cores (no ROS).

Every `measurement` message goes, in the order it was recorded and on its own header stamp,
through what the state_estimator and protection nodes run: the estimator runtime the node runs
(bms_ros.core.estimation.runtime: time line with clock-jump handling on the bag's log time,
rejection, limits 0 while a trip is latched) and the
Protection checks (bms_ros.core.protection), with the profile's `estimator:` and `protection:`
sections. As in the nodes, the estimate is sampled at estimator.publish_rate_hz and handed to
protection (state-of-power derating), and the stale-measurement check runs every
protection.status_period_s between measurements. Nothing is persisted (no state files read or
written), so a replay always starts from the same state: a regression test.

The estimator's plausibility checks (bms_ros.core.plausibility, the `estimator.plausibility:`
section) run as in the node: an implausible cell is counted, not corrected.

Reports the SoC trajectory (and its error against sim_truth when the bag has it), every
protection event with its time since the first measurement, and the plausibility flags.
"""
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from bms_ros.core.bag_schema import BagError
from bms_ros.core.profile import Profile, config_dir, default_profile_path
from bms_ros.core.stamps import message_time_ns

from .bagio import Bag


def add_arguments(parser):
    """Add this command's arguments to ``parser``."""
    parser.add_argument('bag', help='bag folder (metadata.yaml + .mcap) or .mcap file')
    parser.add_argument('--profile', default=None,
                        help='profile YAML (default: the one noted in the bag, else lfp_16s)')
    parser.add_argument('--namespace', default=None, help='pack namespace if several in the bag')
    parser.add_argument('--json', default=None, metavar='OUT',
                        help='write the full result (trajectory, events) as JSON')


@dataclass
class OfflineEvent:
    """A protection event produced by the replay; t_s since the first measurement."""

    t_s: float
    limit_id: str
    level: int
    level_name: str
    index: int
    value: float
    threshold: float
    unit: str
    active: bool
    latched: bool
    message: str


@dataclass
class OfflineResult:
    """What the cores produced from one bag."""

    bag: str
    profile: str
    measurements: int = 0
    estimator_rejected: int = 0
    protection_rejected: int = 0
    duration_s: float = 0.0
    wall_s: float = 0.0
    t_s: list = field(default_factory=list)              # estimate times since first measurement
    pack_soc: list = field(default_factory=list)         # 0..1 at t_s
    pack_soc_min: list = field(default_factory=list)
    pack_soc_max: list = field(default_factory=list)
    final_cell_soc: list = field(default_factory=list)
    final_capacity_ah: float = math.nan
    final_discharge_current_limit_a: float = math.nan
    truth_pack_soc: list = field(default_factory=list)   # sim_truth at t_s (interpolated), or []
    events: list = field(default_factory=list)           # OfflineEvent
    final_trip_latched: bool = False
    plausibility: dict = field(default_factory=dict)     # Plausibility.summary() at the end
    estimator_settings: str = ''                         # the settings line the node logs

    @property
    def speed_x_real_time(self):
        """Bag time replayed per wall-clock second (inf if too fast to time)."""
        return self.duration_s / self.wall_s if self.wall_s > 0 else math.inf

    def trips(self):
        """Raised trips (level 3, active) in time order."""
        return [e for e in self.events if e.level == 3 and e.active]

    def soc_error(self):
        """(max abs, rms, final) error of pack SoC against truth; NaNs without truth."""
        if not self.truth_pack_soc:
            return math.nan, math.nan, math.nan
        est = np.asarray(self.pack_soc, dtype=float)
        err = est - np.asarray(self.truth_pack_soc, dtype=float)
        ok = np.isfinite(err)
        if not ok.any():
            return math.nan, math.nan, math.nan
        return (float(np.max(np.abs(err[ok]))), float(np.sqrt(np.mean(err[ok] ** 2))),
                float(err[ok][-1]))

    def summary(self):
        """Short JSON-able summary: SoC start/end/min/max, error, trips with times, speed."""
        soc = np.asarray(self.pack_soc, dtype=float)
        ok = soc[np.isfinite(soc)]
        max_err, rms_err, final_err = self.soc_error()
        return {
            'bag': self.bag, 'profile': self.profile, 'measurements': self.measurements,
            'duration_s': self.duration_s, 'speed_x_real_time': self.speed_x_real_time,
            'estimator_rejected': self.estimator_rejected,
            'protection_rejected': self.protection_rejected,
            'soc_initial': float(ok[0]) if ok.size else math.nan,
            'soc_final': float(ok[-1]) if ok.size else math.nan,
            'soc_min': float(ok.min()) if ok.size else math.nan,
            'soc_max': float(ok.max()) if ok.size else math.nan,
            'soc_error_max': max_err, 'soc_error_rms': rms_err, 'soc_error_final': final_err,
            'trips': [{'t_s': e.t_s, 'limit_id': e.limit_id, 'index': e.index,
                       'value': e.value, 'threshold': e.threshold, 'unit': e.unit}
                      for e in self.trips()],
            'final_trip_latched': self.final_trip_latched,
            'plausibility_flags': int(self.plausibility.get('flags', 0)),
            'plausibility_cells_held': list(self.plausibility.get('cells_held', [])),
        }


def _nan_to_none(value):
    """JSON has no NaN: NaN and infinities become null, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def estimator_runtime(profile):
    """The state_estimator node's runtime (bms_ros.core.estimation.runtime) for a profile."""
    from bms_ros.core.estimation.config import (
        EstimatorConfig,
        log_settings_once,
        settings_source,
    )
    from bms_ros.core.estimation.runtime import EstimatorRuntime
    config = EstimatorConfig.for_profile(profile)      # as the node takes them
    log_settings_once(config, settings_source(profile.path, profile.pack.cell_single.path))
    return EstimatorRuntime.from_profile(profile, config)


def resolve_profile(bag, profile=None):
    """Profile to replay with: given, else the one the bag names (if it exists), else default."""
    if profile:
        return profile
    noted = bag.custom_data.get('bms_ros.profile', '')
    if noted:
        candidates = [noted] if os.path.isabs(noted) else [
            noted, os.path.join(os.path.dirname(config_dir()), noted)]
        for path in candidates:
            if os.path.isfile(path):
                return path
    return default_profile_path()


def replay(bag_path, profile=None, namespace=None):
    """Run the bag's measurements through estimation and protection; an OfflineResult."""
    from bms_ros.core.protection import (
        LEVEL_NAMES,
        Measurement,
        Protection,
        TripLatch,
        load_protection_config,
    )
    from bms_ros.tools.report import truth_pack_soc

    with Bag(bag_path) as bag:
        profile_path = resolve_profile(bag, profile)
        loaded = Profile(profile_path)
        runner = estimator_runtime(loaded)
        pconfig = load_protection_config(loaded.section('protection'), loaded.pack)
        topic = bag.find_topic('measurement', namespace)
        if topic is None:
            raise BagError(f'{bag_path}: no measurement topic'
                           + (f' in namespace {namespace!r}' if namespace else ''))
        truth_topic = bag.find_topic('sim_truth', namespace)
        # time-ordered, decoded once (the cost of decoding is part of the replay speed)
        started = time.perf_counter()
        # (stamp s, log s, message): the log time is the replay's steady clock
        messages = [(message_time_ns(m, t) * 1e-9, t * 1e-9, m)
                    for _, t, m in bag.messages({topic})]
        truths = [(message_time_ns(m, t) * 1e-9, truth_pack_soc(m.cell_soc, m.cell_capacity_ah))
                  for _, t, m in bag.messages({truth_topic})] if truth_topic else []
    from bms_ros.core.estimation.config import settings_source, settings_text
    result = OfflineResult(bag=str(bag_path), profile=profile_path,
                           estimator_settings=settings_text(runner.config, settings_source(
                               profile_path, loaded.pack.cell_single.path)))
    if not messages:
        result.wall_s = time.perf_counter() - started
        return result
    # in the order the node received them (log time), so the runtime's time line sees what
    # the node saw (stamps that go back: a clock jump)
    messages.sort(key=lambda item: item[1])
    t0 = messages[0][0]
    protection = Protection(pconfig, loaded.pack.cells_series, loaded.pack.temperature_sensors,
                            TripLatch(None), now_s=t0)
    publish_period = 1.0 / runner.config.publish_rate_hz
    status_period = pconfig.status_period_s
    next_publish = t0 + publish_period
    next_status = t0 + status_period

    def record(events):
        for e in events:
            result.events.append(OfflineEvent(
                e.stamp_s - t0 if e.stamp_s else math.nan, e.limit_id, int(e.level),
                LEVEL_NAMES[e.level], int(e.index), float(e.value), float(e.threshold), e.unit,
                bool(e.active), bool(e.latched), e.message))

    def publish(now):
        # as the node: limits 0 while protection has a trip latched
        runner.on_protection(bool(protection.latch.trips))
        est = runner.estimate()
        result.t_s.append(now - t0)
        result.pack_soc.append(float(est.pack_soc))
        result.pack_soc_min.append(float(est.pack_soc_min))
        result.pack_soc_max.append(float(est.pack_soc_max))
        protection.update_estimate(float(est.charge_current_limit_a),
                                   float(est.discharge_current_limit_a), now)

    for t_s, log_s, msg in messages:
        # timers of the nodes that fall before this measurement
        while min(next_publish, next_status) < t_s:
            if next_publish <= next_status:
                publish(next_publish)
                next_publish += publish_period
            else:
                events = protection.check_timeout(next_status)
                _stamp_events(events, next_status)
                record(events)
                next_status += status_period
        runner.on_measurement(msg, t_s, t_s, log_s)
        events = protection.evaluate(Measurement.from_message(msg), t_s)
        _stamp_events(events, t_s)
        record(events)
        result.measurements += 1
    t_end = messages[-1][0]
    runner.on_protection(bool(protection.latch.trips))
    publish(t_end)
    est = runner.estimate()
    result.final_cell_soc = [float(z) for z in est.cell_soc]
    result.final_capacity_ah = float(est.capacity_ah)
    result.final_discharge_current_limit_a = float(est.discharge_current_limit_a)
    result.final_trip_latched = bool(protection.status(t_end).trip_latched)
    result.estimator_rejected = runner.rejected
    result.plausibility = runner.estimator.plausibility.summary()
    result.protection_rejected = int(protection.measurements_rejected)
    result.duration_s = t_end - t0
    if truths:
        tt = np.array([t for t, _ in truths]) - t0
        zz = np.array([z for _, z in truths])
        inside = (np.asarray(result.t_s) >= tt[0]) & (np.asarray(result.t_s) <= tt[-1])
        result.truth_pack_soc = [float(v) if ok else math.nan for v, ok in
                                 zip(np.interp(result.t_s, tt, zz), inside)]
    result.wall_s = time.perf_counter() - started
    return result


def _stamp_events(events, now_s):
    """Core events carry the time they were produced; set it where the core left it 0."""
    for e in events:
        if not e.stamp_s:
            e.stamp_s = now_s


def run(args):
    """Run the command of parsed ``args``; the exit code (0 on success)."""
    result = replay(args.bag, args.profile, args.namespace)
    if result.measurements == 0:
        raise BagError(f'{args.bag}: no measurement messages')
    summary = result.summary()
    print(f'bag offline: {result.estimator_settings}', file=sys.stderr)
    print(f'{result.measurements} measurements, {result.duration_s:.1f} s of data replayed in '
          f'{result.wall_s:.2f} s ({result.speed_x_real_time:.0f}x real time), '
          f'profile {os.path.relpath(result.profile)}')
    print(f'SoC {100 * summary["soc_initial"]:.2f} % -> {100 * summary["soc_final"]:.2f} % '
          f'(min {100 * summary["soc_min"]:.2f} %, max {100 * summary["soc_max"]:.2f} %)'
          + ('' if math.isnan(summary['soc_error_max']) else
             f'; error vs sim_truth max {100 * summary["soc_error_max"]:.2f} %, rms '
             f'{100 * summary["soc_error_rms"]:.2f} %'))
    for e in result.events:
        print(f'{e.t_s:8.2f} s  {"RAISE" if e.active else "CLEAR"} {e.level_name:7s} '
              f'{e.limit_id}[{e.index}]: {e.message}')
    if not result.events:
        print('no protection events')
    flagged = {name: c['counts'] for name, c in result.plausibility.get('checks', {}).items()
               if c['count']}
    print('plausibility: ' + ('; '.join(f'{name} flags per index {counts}'
                                        for name, counts in flagged.items())
                              if flagged else 'no implausible reading'))
    if args.json:
        document = _nan_to_none({'summary': summary, **{
            k: v for k, v in asdict(result).items() if k != 'events'},
            'events': [asdict(e) for e in result.events]})
        with open(args.json, 'w', encoding='utf-8') as stream:
            json.dump(document, stream, indent=1)
        print(f'wrote {args.json}', file=sys.stderr)
    return 0
