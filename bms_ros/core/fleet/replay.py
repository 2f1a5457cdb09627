"""Batched offline replay of one bag's measurements: the estimator and protection cores, fast.

The same cores as the nodes and ``bms_ros.tools.bag.offline`` (PackEstimator through
``estimation.interface``, Protection with its debounce and latch), fed from numpy columns of the
whole bag (``bms_ros.core.fleet.cdr``) instead of one message object at a time, with two
savings whose accuracy bench/fleet.py and test/core/test_fleet_replay.py measure against the
offline replay:

* **estimator decimation**: a measurement is fed when the current steps (by more than
  ``step_fraction`` of the estimator's R0 step, on either side of it), when the contactors,
  bleeding, validity or stale flags change, and otherwise every ``max_feed_s`` under load (and in
  the first ``relax_s`` of a rest), then every ``rest_feed_s``. The current fed is the mean of
  the measured currents since the
  last fed sample, so the charge counted is the charge measured; steps stay sharp for R0.
* **protection windows**: a vectorised screen over the whole bag marks samples where any
  limit's signal reaches its warning level less its hysteresis (beyond for low limits), any
  flag is set, or the time between samples nears the stale level. Protection runs, on every
  measurement and its status-period timeouts as in the node, only in windows around those
  samples (before: start-up grace, rise-rate window and debounce; after: release and the time-
  current decay), each window with a fresh Protection sharing one TripLatch (a latched trip
  stays latched). A quiet sample cannot raise or clear anything, so the events are the same.
  A limit the screen does not know is screened as always hot (the whole bag is evaluated).

Pure numpy + the cores; no ROS, no bag reading (the caller gives the columns).
"""
import math
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from ..estimation import interface
from ..estimation.config import EstimatorConfig
from ..estimation.estimator import PackEstimator
from ..protection import LEVEL_NAMES, Measurement, Protection, TripLatch, load_protection_config
from ..protection.limits import FlagLimit, RangeLimit, ThresholdLimit, TimeCurrentLimit


@dataclass(frozen=True)
class ReplayOptions:
    """Decimation of the estimator feed (s; fraction of the R0 step) and output sampling."""

    max_feed_s: float = 1.0
    rest_feed_s: float = 10.0              # after relax_s of rest
    relax_s: float = 0.0                   # > 0: feed at the load rate early in a rest
    step_fraction: float = 0.25
    sample_period_s: float = 10.0          # trajectory sampling of the estimate
    protection_windows: bool = True


@dataclass
class CarriedState:
    """What one bag hands to the next bag of the same pack (the estimator's learnt state)."""

    cell_soc: list
    cell_capacity_ah: list
    cell_capacity_std_ah: list
    cell_r0_ohm: list
    current_offset_a: float
    end_unix_s: float


@dataclass
class BagResult:
    """What the cores made of one bag; times unix s, SoC 0..1, A + = charging."""

    start_unix_s: float = math.nan
    end_unix_s: float = math.nan
    duration_s: float = 0.0
    measurements: int = 0
    fed: int = 0                            # measurements fed to the estimator
    evaluated: int = 0                      # measurements protection evaluated
    estimator_rejected: int = 0
    protection_rejected: int = 0
    t_s: list = field(default_factory=list)            # since the first measurement
    pack_soc: list = field(default_factory=list)
    cell_soc_start: list = field(default_factory=list)  # after the start-up anchor
    cell_soc: list = field(default_factory=list)       # at the end
    cell_soc_std: list = field(default_factory=list)
    cell_capacity_ah: list = field(default_factory=list)
    cell_capacity_std_ah: list = field(default_factory=list)
    cell_r0_ohm: list = field(default_factory=list)
    capacity_ah: float = math.nan                     # usable at the present imbalance
    current_offset_a: float = math.nan
    anchored_at_end: bool = False                     # the final rest re-anchored from OCV
    capacity_updates: list = field(default_factory=list)
    # charge counted between the start-up anchor and the final rest's anchor / their SoC
    # change, per cell (Ah; NaN without both anchors or below capacity_min_delta_soc)
    cell_capacity_measured_ah: list = field(default_factory=list)
    bleed_ah: list = field(default_factory=list)      # charge bled per cell (Ah, >= 0)
    charge_ah: float = 0.0                            # charge counted (Ah, + = charged)
    throughput_ah: float = 0.0                        # |charge| moved
    cell_voltage_spread_v: float = math.nan           # at the end (rest)
    events: list = field(default_factory=list)        # dicts: t_s, limit_id, level, index...
    final_trip_latched: bool = False
    wall_s: float = 0.0

    def trips(self):
        """The events that raised a trip (level 3, active)."""
        return [e for e in self.events if e['level'] == 3 and e['active']]

    def carried(self):
        """The state the next bag of this pack starts from."""
        return CarriedState(list(self.cell_soc), list(self.cell_capacity_ah),
                            list(self.cell_capacity_std_ah), list(self.cell_r0_ohm),
                            float(self.current_offset_a), float(self.end_unix_s))


def measurement_times(columns, receive_s=None):
    """Time of each measurement (s): its header stamp, else the bag's receive time."""
    stamp = np.asarray(columns['header_stamp_s'], dtype=float)
    if receive_s is None:
        return stamp
    return np.where(stamp > 0.0, stamp, np.asarray(receive_s, dtype=float))


# ------------------------------------------------------------------------ estimator feed

def feed_mask(t_s, current_a, columns, config, cell, options):
    """Which measurements the estimator is fed (bool per sample), see the module doc."""
    n = len(t_s)
    if n == 0:
        return np.zeros(0, dtype=bool)
    step_a = options.step_fraction * config.r0_min_step_c * cell.capacity_ah
    rest_a = config.rest_current_c * cell.capacity_ah
    fed = np.zeros(n, dtype=bool)
    fed[0] = fed[-1] = True
    with np.errstate(invalid='ignore'):
        di = np.abs(np.diff(current_a))
    jump = ~(di <= step_a)                 # NaN counts as a change
    fed[1:] |= jump
    fed[:-1] |= jump
    # any flag change (contactors, bleeding, validity, stale) is fed on both sides
    flags = [columns[name] for name in (
        'negative_contactor_closed', 'positive_contactor_closed', 'precharge_relay_closed',
        'cell_voltages_stale', 'temperatures_stale', 'current_stale', 'contactors_stale')]
    matrix = np.column_stack(flags + [columns['cell_balancing'], columns['cell_voltage_valid'],
                                      columns['temperature_valid'],
                                      ~np.isfinite(columns['cell_voltages_v'])])
    change = np.any(matrix[1:] != matrix[:-1], axis=1)
    fed[1:] |= change
    fed[:-1] |= change
    gap = np.diff(t_s) > config.max_step_s
    fed[1:] |= gap
    fed[:-1] |= gap
    # the rest by time: at most max_feed_s apart under load, rest_feed_s at rest
    with np.errstate(invalid='ignore'):
        at_rest = np.abs(current_a) <= rest_a
    # optionally a rest is fed at the load rate while the cells relax
    run = np.cumsum(np.concatenate(([True], at_rest[1:] != at_rest[:-1])))
    run_start = t_s[np.searchsorted(run, run, side='left')]
    relaxed = at_rest & (t_s - run_start >= options.relax_s)
    limit = np.where(relaxed, options.rest_feed_s, options.max_feed_s)
    last = t_s[0]
    fed_idx = fed.copy()
    for k in range(1, n):
        if fed_idx[k] or t_s[k] - last >= limit[k] - 1e-9:
            fed_idx[k] = True
            last = t_s[k]
    return fed_idx


def _interval_mean(values, fed):
    """Mean of ``values`` over each fed sample's interval (last fed, this], NaN-aware."""
    idx = np.flatnonzero(fed)
    ok = np.isfinite(values)
    csum = np.concatenate(([0.0], np.cumsum(np.where(ok, values, 0.0))))
    ccount = np.concatenate(([0], np.cumsum(ok)))
    start = np.concatenate(([idx[0]], idx[:-1] + 1))
    total = csum[idx + 1] - csum[start]
    count = ccount[idx + 1] - ccount[start]
    return np.where(count > 0, total / np.maximum(count, 1), values[idx])


def _row(columns, k, current_a):
    """A PackMeasurement-shaped view of sample ``k`` with ``current_a`` (for the cores)."""
    return SimpleNamespace(
        cell_voltages_v=columns['cell_voltages_v'][k],
        cell_voltage_valid=columns['cell_voltage_valid'][k],
        temperatures_degc=columns['temperatures_degc'][k],
        temperature_valid=columns['temperature_valid'][k],
        pack_current_a=current_a, pack_voltage_v=float(columns['pack_voltage_v'][k]),
        link_voltage_v=float(columns['link_voltage_v'][k]),
        negative_contactor_closed=bool(columns['negative_contactor_closed'][k]),
        positive_contactor_closed=bool(columns['positive_contactor_closed'][k]),
        precharge_relay_closed=bool(columns['precharge_relay_closed'][k]),
        cell_balancing=columns['cell_balancing'][k],
        cell_voltages_stale=bool(columns['cell_voltages_stale'][k]),
        temperatures_stale=bool(columns['temperatures_stale'][k]),
        current_stale=bool(columns['current_stale'][k]),
        contactors_stale=bool(columns['contactors_stale'][k]),
        frames_received=int(columns['frames_received'][k]),
        frames_rejected=int(columns['frames_rejected'][k]),
        cell_voltages_stamp_s=float(columns['cell_voltages_stamp_s'][k]),
        temperatures_stamp_s=float(columns['temperatures_stamp_s'][k]),
        current_stamp_s=float(columns['current_stamp_s'][k]))


def new_estimator(profile, carried=None):
    """A PackEstimator for ``profile``, restored from ``carried`` as the node restores its
    state file (restored_soc_std; the first measurement at rest re-anchors from OCV).
    """
    config = EstimatorConfig.from_section(profile.section('estimator'))
    estimator = PackEstimator(profile.pack.cell, profile.pack.cells_series, config)
    if carried is not None:
        soc = np.asarray(carried.cell_soc, dtype=float)
        estimator.restore(np.where(np.isfinite(soc), soc, 0.5), carried.cell_capacity_ah,
                          carried.cell_capacity_std_ah, carried.cell_r0_ohm,
                          float(carried.current_offset_a))
        estimator.filter.initialised[~np.isfinite(soc)] = False
    return estimator, config


# ------------------------------------------------------------------------ protection screen

def _signal(limit_id, columns, t_s, pconfig):
    """The batch signal a threshold limit checks (samples x channels), or None if unknown."""
    cells = np.where(columns['cell_voltage_valid'], columns['cell_voltages_v'], np.nan)
    temps = np.where(columns['temperature_valid'], columns['temperatures_degc'], np.nan)
    current = np.where(columns['current_stale'], np.nan, columns['pack_current_a'])
    with np.errstate(invalid='ignore', all='ignore'):
        if limit_id in ('cell_overvoltage', 'cell_undervoltage'):
            return cells
        if limit_id in ('pack_overvoltage', 'pack_undervoltage'):
            return columns['pack_voltage_v'][:, None]
        if limit_id == 'charge_overcurrent':
            return np.maximum(current, 0.0)[:, None]
        if limit_id == 'discharge_overcurrent':
            return np.maximum(-current, 0.0)[:, None]
        if limit_id.startswith('charge_') and limit_id.endswith('temperature'):
            # charge temperature limits apply while charging (unknown current: charging)
            charging = ~(current <= pconfig.charge_detect_current_a)
            return np.where(charging[:, None], temps, np.nan)
        if limit_id.endswith('temperature') and limit_id != 'temperature_spread':
            return temps
        if limit_id == 'cell_voltage_spread':
            return (np.nanmax(cells, axis=1) - np.nanmin(cells, axis=1))[:, None]
        if limit_id == 'temperature_spread':
            return (np.nanmax(temps, axis=1) - np.nanmin(temps, axis=1))[:, None]
        if limit_id == 'temperature_rise_rate':
            # largest rise over any span of half the window or more (the core's rate window)
            window = pconfig.temperature_rate_window_s
            back = np.searchsorted(t_s, t_s - 0.5 * window, side='right') - 1
            back = np.maximum(back, 0)
            span = t_s - t_s[back]
            rate_half = (temps - temps[back]) / np.maximum(span, 1e-9)[:, None]
            far = np.maximum(np.searchsorted(t_s, t_s - window, side='left') - 1, 0)
            rate_full = (temps - temps[far]) / np.maximum(t_s - t_s[far], 1e-9)[:, None]
            rate = np.fmax(rate_half, rate_full)
            # the core gives no rate before half a window of history
            return np.where((span >= 0.5 * window - 0.2)[:, None], rate, np.nan)
        if limit_id == 'pack_voltage_mismatch':
            return np.abs(np.sum(cells, axis=1) - columns['pack_voltage_v'])[:, None]
        if limit_id == 'stale_measurement':
            dt = np.diff(t_s, prepend=t_s[0])
            stale = np.column_stack([columns[name] for name in (
                'cell_voltages_stale', 'temperatures_stale', 'current_stale')]).any(axis=1)
            return np.where(stale, np.inf, dt)[:, None]
    return None


def hot_masks(columns, t_s, pconfig):
    """[(limit, mask)]: per limit, the samples near or beyond its warning level or with its
    flag set (bool per sample); a limit the screen does not know is hot everywhere.
    """
    n = len(t_s)
    out = []
    invalid = ~np.asarray(columns['cell_voltage_valid'], bool) | ~np.isfinite(
        columns['cell_voltages_v'])
    tinvalid = ~np.asarray(columns['temperature_valid'], bool) | ~np.isfinite(
        columns['temperatures_degc'])
    everywhere = np.ones(n, dtype=bool)
    for limit in pconfig.limits:
        if isinstance(limit, RangeLimit):
            values = columns['cell_voltages_v'] if 'voltage' in limit.limit_id else \
                columns['temperatures_degc']
            with np.errstate(invalid='ignore'):
                out.append((limit, np.any((values < limit.minimum) | (values > limit.maximum),
                                          axis=1)))
            continue
        if isinstance(limit, FlagLimit):
            flags = {'cell_voltage_invalid': lambda: invalid.any(axis=1),
                     'temperature_invalid': lambda: tinvalid.any(axis=1),
                     'current_invalid': lambda: ~np.isfinite(columns['pack_current_a'])
                     | columns['current_stale'],
                     'pack_voltage_invalid': lambda: ~np.isfinite(columns['pack_voltage_v'])}
            out.append((limit, flags[limit.limit_id]() if limit.limit_id in flags
                        else everywhere))
            continue
        values = _signal(limit.limit_id, columns, t_s, pconfig) \
            if isinstance(limit, ThresholdLimit) else None
        if values is None:
            out.append((limit, everywhere))
            continue
        level = limit.warning
        if isinstance(limit, TimeCurrentLimit) and limit.curve_current_a:
            level = min(level, limit.curve_current_a[0])
        margin = abs(limit.hysteresis) + 1e-9
        if limit.limit_id == 'stale_measurement':
            margin = 0.25 * level           # arrival gaps and jitter: a wide margin
        with np.errstate(invalid='ignore'):
            if limit.high:
                beyond, inside = values >= level, values >= level - margin
            else:
                beyond, inside = values <= level, values <= level + margin
        unknown = np.isnan(values)
        if isinstance(limit, TimeCurrentLimit) or limit.limit_id == 'stale_measurement':
            out.append((limit, _held(np.any(beyond, axis=1), np.any(inside | unknown, axis=1))))
            continue
        # a level raises only after debounce_s beyond it on one channel (NaN keeps the timer)
        hot = np.zeros(n, dtype=bool)
        for c in range(values.shape[1]):
            capable = _long_runs(beyond[:, c], unknown[:, c], t_s, limit.debounce_s)
            if capable.any():
                hot |= _held(capable, inside[:, c] | unknown[:, c])
        out.append((limit, hot))
    return out


def _long_runs(beyond, unknown, t_s, duration_s):
    """Samples of runs beyond a level (unknown samples continue a run) that last at least
    ``duration_s`` minus a sample period, from the run's first beyond sample.
    """
    on = beyond | unknown
    if not beyond.any():
        return np.zeros(len(on), dtype=bool)
    run = np.cumsum(np.concatenate(([True], on[1:] != on[:-1])))
    first = np.searchsorted(run, run, side='left')
    last = np.searchsorted(run, run, side='right') - 1
    dt = float(np.median(np.diff(t_s))) if len(t_s) > 1 else 0.0
    long_enough = on & (t_s[last] - t_s[first] >= duration_s - dt - 1e-9)
    has_beyond = np.zeros(run.max() + 1, dtype=bool)
    has_beyond[run[beyond]] = True
    return long_enough & has_beyond[run] & beyond


def _held(beyond, near):
    """Samples from each one ``beyond`` a level to the end of its run of ``near`` ones (the
    level holds until the value is back inside its hysteresis band).
    """
    run = np.cumsum(np.concatenate(([True], near[1:] != near[:-1])))   # run label per sample
    hot_runs = np.unique(run[beyond & near])
    held = np.isin(run, hot_runs) & near
    # samples of a held run before its first beyond sample cannot raise: drop them
    first = np.full(run.max() + 1, len(beyond))
    idx = np.flatnonzero(beyond & near)
    np.minimum.at(first, run[idx], idx)
    return (held & (np.arange(len(beyond)) >= first[run])) | beyond


def hot_mask(columns, t_s, pconfig):
    """Samples where any limit is near or beyond its warning level (bool per sample)."""
    hot = np.zeros(len(t_s), dtype=bool)
    for _, mask in hot_masks(columns, t_s, pconfig):
        hot |= mask
    return hot


def protection_windows(t_s, masks, pconfig):
    """[(first, last)] index ranges around hot samples where protection must run.

    Per limit: from its debounce (plus the rise-rate window for the rise rate, the start-up
    grace for flags and the stale check) before its hot samples to its release (and the
    time-current decay) and debounce after them, + 1 s each side; merged.
    """
    spans = []
    for limit, hot in masks:
        if not hot.any():
            continue
        debounce = getattr(limit, 'debounce_s', 0.0)
        release = getattr(limit, 'release_s', 0.0)
        decay = getattr(limit, 'curve_decay_s', 0.0) if isinstance(limit, TimeCurrentLimit) \
            else 0.0
        # a fresh Protection needs the rise-rate history, and flags count after its grace
        before = debounce + 1.0
        if limit.limit_id == 'temperature_rise_rate':
            before += pconfig.temperature_rate_window_s
        if isinstance(limit, FlagLimit) or limit.limit_id == 'stale_measurement':
            before += pconfig.startup_grace_s
        idx = np.flatnonzero(hot)
        starts = np.searchsorted(t_s, t_s[idx] - before, side='left')
        ends = np.searchsorted(t_s, t_s[idx] + max(release, decay) + debounce + 1.0,
                               side='right') - 1
        spans.append(np.column_stack((starts, ends)))
    if not spans:
        return []
    spans = np.concatenate(spans)
    spans = spans[np.argsort(spans[:, 0], kind='stable')]
    windows = []
    for s, e in spans:
        if windows and s <= windows[-1][1] + 1:
            windows[-1][1] = max(windows[-1][1], int(e))
        else:
            windows.append([int(s), int(e)])
    return [tuple(w) for w in windows]


# ------------------------------------------------------------------------ the replay

def replay_columns(columns, profile, carried=None, options=None, t_s=None):
    """Replay one bag's measurement columns through the cores; a BagResult.

    ``columns``: bms_ros.core.fleet.cdr.decode_measurements output (one bag, time order not
    required); ``profile``: a loaded Profile; ``carried``: the previous bag's CarriedState.
    """
    options = options or ReplayOptions()
    started = time.perf_counter()
    result = BagResult()
    t_all = measurement_times(columns) if t_s is None else np.asarray(t_s, dtype=float)
    n_all = len(t_all)
    if n_all == 0:
        result.wall_s = time.perf_counter() - started
        return result
    order = np.argsort(t_all, kind='stable')
    columns = {k: np.asarray(v)[order] for k, v in columns.items()}
    t_s = t_all[order]
    pack = profile.pack
    estimator, config = new_estimator(profile, carried)
    cell = pack.cell
    n_cells = pack.cells_series
    sensors = pack.temperature_sensors
    result.measurements = n_all
    result.start_unix_s = float(t_s[0])
    result.end_unix_s = float(t_s[-1])
    result.duration_s = float(t_s[-1] - t_s[0])
    t0 = float(t_s[0])

    # malformed rows (wrong lengths) cannot come through the fixed-layout columns; the
    # node's other checks (NaN current, stale current, time order) run per fed sample
    current = np.asarray(columns['pack_current_a'], dtype=float)
    fed = feed_mask(t_s, current, columns, config, cell, options)
    fed_current = _interval_mean(current, fed)
    # bleed charge per cell, on every measurement (trapezoid-free: V / R over each interval)
    bleeding = np.asarray(columns['cell_balancing'], bool) & np.asarray(
        columns['cell_voltage_valid'], bool)
    dt = np.diff(t_s, prepend=t_s[0])
    bleed_a = np.where(bleeding, np.nan_to_num(columns['cell_voltages_v']), 0.0) \
        / config.bleed_resistance_ohm
    result.bleed_ah = [float(q) for q in np.sum(bleed_a * dt[:, None], axis=0) / 3600.0]
    finite = np.isfinite(current)
    result.charge_ah = float(np.sum(np.where(finite, current, 0.0) * dt) / 3600.0)
    result.throughput_ah = float(np.sum(np.abs(np.where(finite, current, 0.0)) * dt) / 3600.0)

    last_t = None
    next_sample = t0
    updates_before = estimator.capacity.updates.copy()
    sensor_of_cell = pack.sensor_of_cell()
    fed_idx = np.flatnonzero(fed)
    for j, k in enumerate(fed_idx):
        row = _row(columns, k, float(fed_current[j]))
        now = float(t_s[k])
        reason = interface.measurement_reject_reason(row, n_cells, sensors, now, last_t, None,
                                                     config.measurement_timeout_s)
        if reason is not None:
            result.estimator_rejected += 1
            continue
        interface.step_from_measurement(estimator, row, now, last_t, sensor_of_cell,
                                        config.bleed_resistance_ohm)
        if last_t is None:
            result.cell_soc_start = [float(z) for z in estimator.estimate().cell_soc]
        last_t = now
        result.fed += 1
        if now >= next_sample:
            est = estimator.estimate()
            result.t_s.append(now - t0)
            result.pack_soc.append(float(est.pack_soc))
            next_sample = now + options.sample_period_s
    est = estimator.estimate()
    result.t_s.append(float(t_s[-1]) - t0)
    result.pack_soc.append(float(est.pack_soc))
    result.cell_soc = [float(z) for z in est.cell_soc]
    result.cell_soc_std = [float(s) for s in estimator.filter.soc_std]
    result.cell_capacity_ah = [float(q) for q in est.cell_capacity_ah]
    result.cell_capacity_std_ah = [float(q) for q in estimator.capacity.std_ah]
    result.cell_r0_ohm = [float(r) for r in est.cell_r0_ohm]
    result.capacity_ah = float(est.capacity_ah)
    result.current_offset_a = float(est.current_offset_a)
    result.anchored_at_end = bool(estimator.anchored and estimator.at_rest)
    result.capacity_updates = [int(u) for u in estimator.capacity.updates - updates_before]
    result.cell_capacity_measured_ah = _measured_capacity(
        result, estimator, config, current, dt, bleed_a, columns, t_s)
    last_v = columns['cell_voltages_v'][-1]
    ok = np.asarray(columns['cell_voltage_valid'][-1], bool) & np.isfinite(last_v)
    result.cell_voltage_spread_v = float(np.ptp(last_v[ok])) if ok.sum() >= 2 else math.nan

    _protect(result, columns, t_s, profile, options)
    result.wall_s = time.perf_counter() - started
    return result


def _measured_capacity(result, estimator, config, current, dt, bleed_a, columns, t_s):
    """The bag's own capacity measurement per cell (Ah): offset-corrected charge counted
    (bleed included) between the OCV of the initial rest (a pack that was off: its voltage
    is OCV; mean over the rest before the first current) and the SoC after the final rest's
    anchor. NaN without both or below capacity_min_delta_soc.
    """
    n = estimator.n
    nan = [math.nan] * n
    rest_a = config.rest_current_c * estimator.cell.capacity_ah
    with np.errstate(invalid='ignore'):
        resting = np.abs(current) <= rest_a
    if not (result.anchored_at_end and resting[0]):
        return nan
    until = int(np.argmin(resting)) if not resting.all() else len(resting)
    until = max(1, min(until, int(np.searchsorted(t_s, t_s[0] + 60.0))))
    v = np.where(columns['cell_voltage_valid'][:until], columns['cell_voltages_v'][:until],
                 np.nan)
    with np.errstate(invalid='ignore'):
        v_rest = np.nanmean(v, axis=0) if np.isfinite(v).any() else np.full(n, np.nan)
    temps = interface.cell_temperatures(estimator_sensor_map(estimator, columns),
                                        columns['temperatures_degc'][0],
                                        columns['temperature_valid'][0])
    start = estimator.cell.ocv.soc_from_ocv(v_rest, np.where(np.isfinite(temps), temps, 25.0))
    dz = np.asarray(result.cell_soc, dtype=float) - start
    finite = np.isfinite(current)
    counted = np.sum(np.where(finite, current - result.current_offset_a, 0.0) * dt) / 3600.0
    counted = counted - np.sum(bleed_a * dt[:, None], axis=0) / 3600.0
    with np.errstate(invalid='ignore', divide='ignore'):
        q = counted / dz
    ok = np.isfinite(q) & (np.abs(dz) >= config.capacity_min_delta_soc) & (q > 0)
    return [float(v) if good else math.nan for v, good in zip(q, ok)]


def estimator_sensor_map(estimator, columns):
    """Sensor index of each cell (sensors spread evenly, as PackSpec.sensor_of_cell)."""
    sensors = columns['temperatures_degc'].shape[1]
    return (np.arange(estimator.n) * sensors) // estimator.n


def _protect(result, columns, t_s, profile, options):
    """Protection over the windows (or the whole bag) as the offline replay runs it."""
    pconfig = load_protection_config(profile.section('protection'), profile.pack)
    n = len(t_s)
    if options.protection_windows:
        windows = protection_windows(t_s, hot_masks(columns, t_s, pconfig), pconfig)
    else:
        windows = [(0, n - 1)]
    latch = TripLatch(None)
    t0 = float(t_s[0])
    protection = None
    for first, last in windows:
        protection = Protection(pconfig, profile.pack.cells_series,
                                profile.pack.temperature_sensors, latch, now_s=float(t_s[first]))
        next_status = float(t_s[first]) + pconfig.status_period_s
        for k in range(first, last + 1):
            now = float(t_s[k])
            while next_status < now:
                events = protection.check_timeout(next_status)
                _record(result, events, next_status, t0)
                next_status += pconfig.status_period_s
            row = _row(columns, k, float(columns['pack_current_a'][k]))
            events = protection.evaluate(_measurement(row), now)
            _record(result, events, now, t0)
            result.evaluated += 1
        result.protection_rejected += int(protection.measurements_rejected)
    result.final_trip_latched = bool(latch.trips)


def _measurement(row):
    """bms_ros.core.measurement.Measurement of a row (stamps already in seconds)."""
    return Measurement(
        cell_voltages_v=np.asarray(row.cell_voltages_v, dtype=float),
        cell_voltage_valid=np.asarray(row.cell_voltage_valid, dtype=bool),
        temperatures_degc=np.asarray(row.temperatures_degc, dtype=float),
        temperature_valid=np.asarray(row.temperature_valid, dtype=bool),
        pack_current_a=float(row.pack_current_a), pack_voltage_v=float(row.pack_voltage_v),
        link_voltage_v=float(row.link_voltage_v),
        negative_contactor_closed=row.negative_contactor_closed,
        positive_contactor_closed=row.positive_contactor_closed,
        precharge_relay_closed=row.precharge_relay_closed,
        cell_balancing=np.asarray(row.cell_balancing, dtype=bool),
        cell_voltages_stamp=row.cell_voltages_stamp_s or math.nan,
        temperatures_stamp=row.temperatures_stamp_s or math.nan,
        current_stamp=row.current_stamp_s or math.nan,
        cell_voltages_stale=row.cell_voltages_stale, temperatures_stale=row.temperatures_stale,
        current_stale=row.current_stale, contactors_stale=row.contactors_stale,
        frames_received=row.frames_received, frames_rejected=row.frames_rejected)


def _record(result, events, now_s, t0):
    for e in events:
        stamp = e.stamp_s or now_s
        result.events.append({
            't_s': stamp - t0, 'limit_id': e.limit_id, 'level': int(e.level),
            'level_name': LEVEL_NAMES[e.level], 'index': int(e.index), 'value': float(e.value),
            'threshold': float(e.threshold), 'unit': e.unit, 'active': bool(e.active),
            'latched': bool(e.latched), 'message': e.message})
