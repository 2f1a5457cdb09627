"""The protection screen of the batched replay: where protection must run at all.

A vectorised screen over the whole bag marks samples where any limit's signal reaches its
warning level less its hysteresis (beyond for low limits), any flag is set, or the time between
samples nears the stale level; ``protection_windows`` turns them into index ranges (before:
start-up grace, rise-rate window and debounce; after: release and the time-current decay). A
quiet sample cannot raise or clear anything, so the events are the same. A limit the screen
does not know is screened as always hot (the whole bag is evaluated).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..protection.limits import (
    FlagLimit,
    Limit,
    ProtectionConfig,
    RangeLimit,
    TimeCurrentLimit,
)
from .rows import Columns

BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]


def _signal(limit_id: str, columns: Columns, t_s: FloatArray, pconfig: ProtectionConfig
            ) -> NDArray[Any] | None:
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


def hot_masks(columns: Columns, t_s: FloatArray, pconfig: ProtectionConfig
              ) -> list[tuple[Limit, BoolArray]]:
    """[(limit, mask)]: per limit, the samples near or beyond its warning level or with its
    flag set (bool per sample); a limit the screen does not know is hot everywhere.
    """
    n = len(t_s)
    out: list[tuple[Limit, BoolArray]] = []
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
            flags: dict[str, Callable[[], Any]] = {   # numpy types any() as bool | array
                'cell_voltage_invalid': lambda: invalid.any(axis=1),
                'temperature_invalid': lambda: tinvalid.any(axis=1),
                'current_invalid': lambda: ~np.isfinite(columns['pack_current_a'])
                | columns['current_stale'],
                'pack_voltage_invalid': lambda: ~np.isfinite(columns['pack_voltage_v'])}
            out.append((limit, flags[limit.limit_id]() if limit.limit_id in flags
                        else everywhere))
            continue
        signal = _signal(limit.limit_id, columns, t_s, pconfig)
        if signal is None:
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
                beyond, inside = signal >= level, signal >= level - margin
            else:
                beyond, inside = signal <= level, signal <= level + margin
        unknown = np.isnan(signal)
        if isinstance(limit, TimeCurrentLimit) or limit.limit_id == 'stale_measurement':
            out.append((limit, _held(np.any(beyond, axis=1), np.any(inside | unknown, axis=1))))
            continue
        # a level raises only after debounce_s beyond it on one channel (NaN keeps the timer)
        hot = np.zeros(n, dtype=bool)
        for c in range(signal.shape[1]):
            capable = _long_runs(beyond[:, c], unknown[:, c], t_s, limit.debounce_s)
            if capable.any():
                hot |= _held(capable, inside[:, c] | unknown[:, c])
        out.append((limit, hot))
    return out


def _long_runs(beyond: BoolArray, unknown: BoolArray, t_s: FloatArray, duration_s: float
               ) -> BoolArray:
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
    runs: BoolArray = long_enough & has_beyond[run] & beyond
    return runs


def _held(beyond: BoolArray, near: BoolArray) -> BoolArray:
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
    out: BoolArray = (held & (np.arange(len(beyond)) >= first[run])) | beyond
    return out


def hot_mask(columns: Columns, t_s: FloatArray, pconfig: ProtectionConfig) -> BoolArray:
    """Samples where any limit is near or beyond its warning level (bool per sample)."""
    hot = np.zeros(len(t_s), dtype=bool)
    for _, mask in hot_masks(columns, t_s, pconfig):
        hot |= mask
    return hot


def protection_windows(t_s: FloatArray, masks: list[tuple[Limit, BoolArray]],
                       pconfig: ProtectionConfig) -> list[tuple[int, int]]:
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
    merged = np.concatenate(spans)
    merged = merged[np.argsort(merged[:, 0], kind='stable')]
    windows: list[list[int]] = []
    for s, e in merged:
        if windows and s <= windows[-1][1] + 1:
            windows[-1][1] = max(windows[-1][1], int(e))
        else:
            windows.append([int(s), int(e)])
    return [(w[0], w[1]) for w in windows]
