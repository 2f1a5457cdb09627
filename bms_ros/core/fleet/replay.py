"""Batched offline replay of one bag's measurements: the estimator and protection cores, fast.

The same cores as the nodes and ``bms_ros.tools.bag.offline`` (PackEstimator through
``estimation.interface``, Protection with its debounce and latch), fed from numpy columns of the
whole bag (``bms_ros.core.fleet.cdr``) instead of one message object at a time, with two
savings whose accuracy bench/fleet.py and test/core/test_fleet_replay.py measure against the
offline replay:

* **estimator decimation** (``feed``): a measurement is fed when the current steps, when a
  flag changes, and otherwise at a load and a rest rate; the current fed is the mean since the
  last fed sample, so the charge counted is the charge measured.
* **protection windows** (``screen``, ``protect``): a vectorised screen over the whole bag marks
  the samples near any limit; Protection runs only in windows around them, each with a fresh
  Protection sharing one TripLatch. A quiet sample cannot raise or clear anything, so the
  events are the same.

This module runs one bag through them (``replay_columns``) and measures the bag's own capacity;
``results`` holds the options and the result, ``rows`` the columns as the cores read them. The
names of those modules stay importable from here. Pure numpy + the cores; no ROS, no bag
reading (the caller gives the columns).
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..estimation import interface
from ..estimation.config import EstimatorConfig
from ..estimation.estimator import PackEstimator
from ..profile import Profile
from .feed import feed_mask, interval_mean, new_estimator
from .protect import protect
from .results import BagResult, CarriedState, ReplayOptions
from .rows import Columns, measurement_times, row
from .screen import hot_mask, hot_masks, protection_windows

__all__ = ['BagResult', 'CarriedState', 'Columns', 'ReplayOptions', 'estimator_sensor_map',
           'feed_mask', 'hot_mask', 'hot_masks', 'measurement_times', 'new_estimator',
           'protection_windows', 'replay_columns']


def replay_columns(columns: Mapping[str, ArrayLike], profile: Profile,
                   carried: CarriedState | None = None, options: ReplayOptions | None = None,
                   t_s: ArrayLike | None = None) -> BagResult:
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
    ordered: Columns = {k: np.asarray(v)[order] for k, v in columns.items()}
    times = t_all[order]
    pack = profile.pack
    estimator, config = new_estimator(profile, carried)
    cell = pack.cell
    n_cells = pack.cells_series
    sensors = pack.temperature_sensors
    result.measurements = n_all
    result.start_unix_s = float(times[0])
    result.end_unix_s = float(times[-1])
    result.duration_s = float(times[-1] - times[0])
    t0 = float(times[0])

    # malformed rows (wrong lengths) cannot come through the fixed-layout columns; the
    # node's other checks (NaN current, stale current, time order) run per fed sample
    current = np.asarray(ordered['pack_current_a'], dtype=float)
    fed = feed_mask(times, current, ordered, config, cell, options)
    fed_current = interval_mean(current, fed)
    # bleed charge per cell, on every measurement (trapezoid-free: V / R over each interval)
    bleeding = np.asarray(ordered['cell_balancing'], bool) & np.asarray(
        ordered['cell_voltage_valid'], bool)
    dt = np.diff(times, prepend=times[0])
    bleed_a = np.where(bleeding, np.nan_to_num(ordered['cell_voltages_v']), 0.0) \
        / config.bleed_resistance_ohm
    result.bleed_ah = [float(q) for q in np.sum(bleed_a * dt[:, None], axis=0) / 3600.0]
    finite = np.isfinite(current)
    result.charge_ah = float(np.sum(np.where(finite, current, 0.0) * dt) / 3600.0)
    result.throughput_ah = float(np.sum(np.abs(np.where(finite, current, 0.0)) * dt) / 3600.0)

    last_t: float | None = None
    next_sample = t0
    updates_before = estimator.capacity.updates.copy()
    sensor_of_cell = pack.sensor_of_cell()
    fed_idx = np.flatnonzero(fed)
    for j, k in enumerate(fed_idx):
        view = row(ordered, int(k), float(fed_current[j]))
        now = float(times[k])
        reason = interface.measurement_reject_reason(view, n_cells, sensors, now, last_t, None,
                                                     config.measurement_timeout_s)
        if reason is not None:
            result.estimator_rejected += 1
            continue
        interface.step_from_measurement(estimator, view, now, last_t, sensor_of_cell,
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
    result.t_s.append(float(times[-1]) - t0)
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
        result, estimator, config, current, dt, bleed_a, ordered, times)
    last_v = ordered['cell_voltages_v'][-1]
    ok = np.asarray(ordered['cell_voltage_valid'][-1], bool) & np.isfinite(last_v)
    result.cell_voltage_spread_v = float(np.ptp(last_v[ok])) if ok.sum() >= 2 else math.nan

    protect(result, ordered, times, profile, options)
    result.wall_s = time.perf_counter() - started
    return result


def _measured_capacity(result: BagResult, estimator: PackEstimator, config: EstimatorConfig,
                       current: NDArray[np.float64], dt: NDArray[np.float64],
                       bleed_a: NDArray[np.float64], columns: Columns, t_s: NDArray[np.float64]
                       ) -> list[float]:
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


def estimator_sensor_map(estimator: PackEstimator, columns: Columns) -> NDArray[np.int_]:
    """Sensor index of each cell (sensors spread evenly, as PackSpec.sensor_of_cell)."""
    sensors = columns['temperatures_degc'].shape[1]
    return (np.arange(estimator.n) * sensors) // estimator.n
