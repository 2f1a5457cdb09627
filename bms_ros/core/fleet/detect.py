"""Fleet detection, pure numpy: per-cell self-discharge with a CUSUM alarm, robust outliers,
trends (capacity fade, R0 growth, imbalance drift, current-offset drift).

Self-discharge (an internal short shows as one cell losing charge the others do not): at the
end of each bag the estimator has re-anchored every cell's SoC from OCV after the final rest;
the charge each cell holds is ``q_i = soc_i * capacity_i`` (Ah). A series current (load,
charger, a current-sensor offset) moves every cell by the same charge, so the charge of a cell
relative to the pack's median cell, ``r_i = q_i - median_j(q_j)``, changes only by what flows
in that cell alone: its own self-discharge (or leak) and the bleed current of balancing. The
bleed charge is counted (the estimator counts it in its SoC; the fleet adds it back,
``r_i + bled_i``), so between two anchors ``-(delta r_i + delta bled_i) / delta t`` is the
cell's excess self-discharge current over the median cell's (A, + = discharging the cell).

A one-sided CUSUM per cell on those currents raises the alarm when the sum of the excess over
``reference_a`` passes ``threshold_a`` (Page 1954); the first alarm's time is the detection.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

MAD_SCALE = 1.4826          # MAD of a normal sample / its standard deviation
OUTLIER_Z = 3.5             # modified z-score beyond which a value is an outlier (Iglewicz)


def robust_z(values: ArrayLike, floor: float = 0.0, leave_one_out: bool = True
             ) -> NDArray[np.float64]:
    """(x - median) / (1.4826 MAD) per value, the scale at least ``floor``; NaN kept.

    ``leave_one_out``: each value against the median and MAD of the others, so one outlier
    does not widen its own yardstick (a small fleet of 3 packs has no other way to show one).
    """
    x = np.asarray(values, dtype=float)
    ok = np.flatnonzero(np.isfinite(x))
    z = np.full(x.shape, np.nan)
    if ok.size < 2:
        return z
    for i in ok:
        others = x[ok[ok != i]] if leave_one_out else x[ok]
        med = float(np.median(others))
        scale = max(MAD_SCALE * float(np.median(np.abs(others - med))), float(floor), 1e-300)
        z[i] = (x[i] - med) / scale
    return z


def outliers(values: ArrayLike, floor: float = 0.0, limit: float = OUTLIER_Z
             ) -> NDArray[np.bool_]:
    """Mask of values whose (leave-one-out) robust z-score exceeds ``limit`` in magnitude."""
    z = robust_z(values, floor)
    return np.isfinite(z) & (np.abs(z) > limit)


def slope(t: ArrayLike, y: ArrayLike) -> float:
    """Least-squares slope of y over t (units of y per unit of t); NaN with < 2 points."""
    ts = np.asarray(t, dtype=float)
    ys = np.asarray(y, dtype=float)
    ok = np.isfinite(ts) & np.isfinite(ys)
    if ok.sum() < 2 or np.ptp(ts[ok]) <= 0.0:
        return math.nan
    tc = ts[ok] - ts[ok].mean()
    return float(np.sum(tc * (ys[ok] - ys[ok].mean())) / np.sum(tc * tc))


def relative_charge(cell_soc: ArrayLike, cell_capacity_ah: ArrayLike,
                    bled_ah: ArrayLike | None = None) -> NDArray[np.float64]:
    """Per row (bag) and cell: charge relative to the median cell (Ah), bleed added back.

    ``cell_soc``, ``cell_capacity_ah``: (bags, cells); ``bled_ah``: cumulative bleed charge per
    cell up to each row (Ah, >= 0) or None.
    """
    q = np.asarray(cell_soc, dtype=float) * np.asarray(cell_capacity_ah, dtype=float)
    if bled_ah is not None:
        q = q + np.asarray(bled_ah, dtype=float)
    return q - np.nanmedian(q, axis=1, keepdims=True)


def excess_self_discharge(t_s: ArrayLike, cell_soc: ArrayLike, cell_capacity_ah: ArrayLike,
                          bled_ah: ArrayLike | None = None, valid: ArrayLike | None = None
                          ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Excess self-discharge current per interval and cell (A, + = the cell loses charge).

    Row k is the interval from the last valid row before k to row k (NaN for the first valid
    row and for rows not valid, e.g. a bag without a final anchor). Returns (t_s, current).
    """
    t = np.asarray(t_s, dtype=float)
    r = relative_charge(cell_soc, cell_capacity_ah, bled_ah)
    ok = np.ones(len(t), dtype=bool) if valid is None else np.array(valid, dtype=bool)
    ok &= np.all(np.isfinite(r), axis=1)
    out = np.full(r.shape, np.nan)
    last = None
    for k in range(len(t)):
        if not ok[k]:
            continue
        if last is not None and t[k] > t[last]:
            out[k] = -(r[k] - r[last]) / ((t[k] - t[last]) / 3600.0)
        last = k
    return t, out


def cusum(x: ArrayLike, reference: float, threshold: float
          ) -> tuple[NDArray[np.float64], int]:
    """One-sided upper CUSUM of ``x`` (NaN skipped): (S per sample, index of first alarm or -1).

    S_k = max(0, S_{k-1} + x_k - reference); alarm when S_k >= threshold.
    """
    s = 0.0
    values = np.asarray(x, dtype=float)
    out = np.zeros(len(values))
    first = -1
    for k, value in enumerate(values):
        if math.isfinite(value):
            s = max(0.0, s + value - reference)
        out[k] = s
        if first < 0 and s >= threshold:
            first = k
    return out, first


def leak_alarms(t_s: ArrayLike, excess_a: ArrayLike, reference_a: float = 0.004,
                threshold_a: float = 0.012) -> dict[str, NDArray[Any]]:
    """CUSUM per cell over the excess self-discharge currents (rows x cells, A).

    Returns {'statistic': (rows, cells) A, 'alarm': bool per cell, 'alarm_t_s': t of the first
    alarm per cell (NaN: none), 'leak_a': median excess current per cell since its alarm (or
    over all rows without one)}.
    """
    x = np.asarray(excess_a, dtype=float)
    rows, cells = x.shape
    stat = np.zeros((rows, cells))
    alarm = np.zeros(cells, dtype=bool)
    alarm_t = np.full(cells, np.nan)
    leak = np.full(cells, np.nan)
    t = np.asarray(t_s, dtype=float)
    for i in range(cells):
        stat[:, i], first = cusum(x[:, i], reference_a, threshold_a)
        if first >= 0:
            alarm[i] = True
            alarm_t[i] = t[first]
        values = x[max(first, 0):, i]
        values = values[np.isfinite(values)]
        leak[i] = float(np.median(values)) if values.size else math.nan
    return {'statistic': stat, 'alarm': alarm, 'alarm_t_s': alarm_t, 'leak_a': leak}


def drift_flags(slopes: ArrayLike, limit: float, floor: float = 0.0, z_limit: float = OUTLIER_Z
                ) -> NDArray[np.bool_]:
    """Packs whose slope is beyond ``limit`` in magnitude and an outlier of the fleet (or the
    only ones: with fewer than three packs, the limit alone decides).
    """
    s = np.asarray(slopes, dtype=float)
    beyond = np.isfinite(s) & (np.abs(s) > limit)
    if np.isfinite(s).sum() < 3:
        return beyond
    return beyond & outliers(s, floor, z_limit)
