"""Estimator decimation of the batched replay: which measurements the estimator is fed, with
which current, and the estimator restored from the previous bag.

A measurement is fed when the current steps (by more than ``step_fraction`` of the estimator's
R0 step, on either side of it), when the contactors, bleeding, validity or stale flags change,
and otherwise every ``max_feed_s`` under load (and in the first ``relax_s`` of a rest), then
every ``rest_feed_s``. The current fed is the mean of the measured currents since the last fed
sample, so the charge counted is the charge measured; steps stay sharp for R0.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ..cell import CellSpec
from ..estimation.config import EstimatorConfig, log_settings_once, settings_source
from ..estimation.estimator import GAP_TOLERANCE_S, PackEstimator
from ..profile import Profile
from .results import CarriedState, ReplayOptions
from .rows import Columns


def feed_mask(t_s: NDArray[np.float64], current_a: NDArray[np.float64], columns: Columns,
              config: EstimatorConfig, cell: CellSpec, options: ReplayOptions) -> NDArray[np.bool_]:
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
    # a gap as the estimator sees one: stamps one max_step_s apart differ from it by rounding
    gap = np.diff(t_s) > config.max_step_s + GAP_TOLERANCE_S
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


def interval_mean(values: NDArray[np.float64], fed: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Mean of ``values`` over each fed sample's interval (last fed, this], NaN-aware."""
    idx = np.flatnonzero(fed)
    ok = np.isfinite(values)
    csum = np.concatenate(([0.0], np.cumsum(np.where(ok, values, 0.0))))
    ccount = np.concatenate(([0], np.cumsum(ok)))
    start = np.concatenate(([idx[0]], idx[:-1] + 1))
    total = csum[idx + 1] - csum[start]
    count = ccount[idx + 1] - ccount[start]
    mean: NDArray[np.float64] = np.where(count > 0, total / np.maximum(count, 1), values[idx])
    return mean


def new_estimator(profile: Profile, carried: CarriedState | None = None
                  ) -> tuple[PackEstimator, EstimatorConfig]:
    """A PackEstimator for ``profile``, restored from ``carried`` as the node restores its
    state file (restored_soc_std; the first measurement at rest re-anchors from OCV). The
    settings are the node's (EstimatorConfig.for_profile), logged once per process.
    """
    config = EstimatorConfig.for_profile(profile)
    log_settings_once(config, settings_source(profile.path, profile.pack.cell_single.path))
    estimator = PackEstimator(profile.pack.cell, profile.pack.cells_series, config)
    if carried is not None:
        soc = np.asarray(carried.cell_soc, dtype=float)
        estimator.restore(np.where(np.isfinite(soc), soc, 0.5), carried.cell_capacity_ah,
                          carried.cell_capacity_std_ah, carried.cell_r0_ohm,
                          float(carried.current_offset_a))
        estimator.filter.initialised[~np.isfinite(soc)] = False
    return estimator, config
