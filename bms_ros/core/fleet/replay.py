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

OCV_WINDOW_S = 60.0            # a rest's OCV: the mean voltage over up to this long (s)
OCV_SLOPE_HALF_WIDTH = 0.01    # OCV slope as the filter takes it (secant over +-1 % SoC)


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
    result.cell_capacity_measured_ah, result.cell_capacity_measured_std_ah = _measured_capacity(
        result, estimator, config, current, dt, bleed_a, ordered, times,
        options.capacity_max_std)
    last_v = ordered['cell_voltages_v'][-1]
    ok = np.asarray(ordered['cell_voltage_valid'][-1], bool) & np.isfinite(last_v)
    result.cell_voltage_spread_v = float(np.ptp(last_v[ok])) if ok.sum() >= 2 else math.nan

    protect(result, ordered, times, profile, options)
    result.wall_s = time.perf_counter() - started
    return result


def _measured_capacity(result: BagResult, estimator: PackEstimator, config: EstimatorConfig,
                       current: NDArray[np.float64], dt: NDArray[np.float64],
                       bleed_a: NDArray[np.float64], columns: Columns, t_s: NDArray[np.float64],
                       max_std: float) -> tuple[list[float], list[float]]:
    """The bag's own capacity measurement per cell and its doubt (Ah): offset-corrected charge
    counted (bleed included) between the relaxed OCV of the initial rest (a pack that was off)
    and that of the final rest (after the estimator's re-anchor: rest_time_s at rest current),
    each the mean voltage over up to OCV_WINDOW_S of its rest. Both ends are read the same way,
    from the voltage alone: the filter's SoC after the anchor is partly its own count (how much
    depends on the chemistry's voltage doubt), so the charge would be divided by a SoC change
    made of that charge. Doubt: rest_ocv_noise_v / OCV slope at each end, in quadrature, over
    the SoC change; NaN where it is above ``max_std`` of the capacity (a rest on the plateau),
    without both rests, or below capacity_min_delta_soc.
    """
    n = estimator.n
    nan = [math.nan] * n
    rest_a = config.rest_current_c * estimator.cell.capacity_ah
    with np.errstate(invalid='ignore'):
        resting = np.abs(current) <= rest_a
    if not (result.anchored_at_end and resting[0] and resting[-1]):
        return nan, nan
    until = int(np.argmin(resting)) if not resting.all() else len(resting)
    until = max(1, min(until, int(np.searchsorted(t_s, t_s[0] + OCV_WINDOW_S))))
    # the final rest: the run of rest samples ending the bag, its last OCV_WINDOW_S
    moving = np.flatnonzero(~resting)
    rest_from = int(moving[-1]) + 1 if moving.size else 0
    last = max(rest_from, int(np.searchsorted(t_s, t_s[-1] - OCV_WINDOW_S)))
    if rest_from < until:                # no current between the two rests: nothing measured
        return nan, nan
    sensors = estimator_sensor_map(estimator, columns)
    start, start_std = _rest_soc(estimator, config, columns, slice(0, until), 0, sensors)
    end, end_std = _rest_soc(estimator, config, columns, slice(last, len(t_s)), -1, sensors)
    dz = end - start
    finite = np.isfinite(current)
    counted = np.sum(np.where(finite, current - result.current_offset_a, 0.0) * dt) / 3600.0
    counted = counted - np.sum(bleed_a * dt[:, None], axis=0) / 3600.0
    with np.errstate(invalid='ignore', divide='ignore'):
        q = counted / dz
        q_std = np.abs(q) * np.hypot(start_std, end_std) / np.abs(dz)
    ok = (np.isfinite(q) & (np.abs(dz) >= config.capacity_min_delta_soc) & (q > 0)
          & (q_std <= max_std * q))
    return ([float(v) if good else math.nan for v, good in zip(q, ok)],
            [float(v) if good else math.nan for v, good in zip(q_std, ok)])


def _rest_soc(estimator: PackEstimator, config: EstimatorConfig, columns: Columns,
              rows: slice, at: int, sensors: NDArray[np.int_]
              ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """SoC per cell from the mean valid voltage over ``rows`` (a rest) read as OCV at the
    temperatures of row ``at``, and its doubt rest_ocv_noise_v / OCV slope (NaN: no voltage).
    """
    v = np.where(columns['cell_voltage_valid'][rows], columns['cell_voltages_v'][rows], np.nan)
    with np.errstate(invalid='ignore'):
        v_rest = np.nanmean(v, axis=0) if np.isfinite(v).any() else np.full(estimator.n, np.nan)
    temps = interface.cell_temperatures(sensors, columns['temperatures_degc'][at],
                                        columns['temperature_valid'][at])
    ocv = estimator.cell.ocv
    soc = np.asarray(ocv.soc_from_ocv(v_rest, np.where(np.isfinite(temps), temps, 25.0)),
                     dtype=float)
    slope = np.asarray(ocv.secant_slope(soc, OCV_SLOPE_HALF_WIDTH), dtype=float)
    with np.errstate(divide='ignore'):
        std = np.where(np.isfinite(v_rest), config.rest_ocv_noise_v / np.maximum(slope, 1e-12),
                       np.nan)
    return np.where(np.isfinite(v_rest), soc, np.nan), std


def estimator_sensor_map(estimator: PackEstimator, columns: Columns) -> NDArray[np.int_]:
    """Sensor index of each cell (sensors spread evenly, as PackSpec.sensor_of_cell)."""
    sensors = columns['temperatures_degc'].shape[1]
    return (np.arange(estimator.n) * sensors) // estimator.n
