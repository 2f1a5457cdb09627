"""Fleet detection on synthetic series: self-discharge with bleed accounted, CUSUM, robust z."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bms_ros.core.fleet import detect

CELLS = 16
DAY_S = 86400.0


def _fleet_series(days=30, leak_cell=5, leak_a=0.010, leak_day=10.0, noise_ah=0.03, seed=0,
                  bleed=True):
    """End-of-bag SoC per cell of one pack, a bag a day: a series charge/discharge common to
    all cells, the leak from leak_day, a balancer bleeding some cells, anchor noise.
    """
    rng = np.random.default_rng(seed)
    capacity = 23.0 * (1.0 + 0.015 * rng.standard_normal(CELLS))
    t = np.arange(days) * DAY_S + 3600.0 * rng.random(days)
    charge = np.full(CELLS, 3.5)          # Ah in every cell at the first anchor
    soc, bled_per_bag = [], []
    for k in range(days):
        if k:
            dt_h = (t[k] - t[k - 1]) / 3600.0
            charge = charge + rng.normal(0.0, 1.0)      # the same charge in every cell
            charge = charge - 0.001 * dt_h              # common self-discharge
            leak_h = max(0.0, (t[k] - max(t[k - 1], leak_day * DAY_S)) / 3600.0)
            charge[leak_cell] -= leak_a * leak_h
        bled = np.zeros(CELLS)
        if bleed and k % 3 == 1:
            bled[[2, 9]] = 0.15                          # a balancer bled them this bag
            charge = charge - bled
        bled_per_bag.append(bled)
        soc.append((charge + noise_ah * rng.standard_normal(CELLS)) / capacity)
    return t, np.array(soc), np.tile(capacity, (days, 1)), np.cumsum(bled_per_bag, axis=0)


def test_leaking_cell_alarms_and_healthy_cells_do_not():
    t, soc, capacity, bled = _fleet_series()
    _, excess = detect.excess_self_discharge(t, soc, capacity, bled)
    alarms = detect.leak_alarms(t, excess)
    assert list(np.flatnonzero(alarms['alarm'])) == [5]
    delay_days = (alarms['alarm_t_s'][5] - 10.0 * DAY_S) / DAY_S
    assert 0.0 < delay_days <= 4.0
    assert alarms['leak_a'][5] == pytest.approx(0.010, abs=0.003)


def test_bleed_not_accounted_would_look_like_a_leak():
    t, soc, capacity, bled = _fleet_series(leak_a=0.0)
    _, counted = detect.excess_self_discharge(t, soc, capacity, bled)
    assert not detect.leak_alarms(t, counted)['alarm'].any()
    _, ignored = detect.excess_self_discharge(t, soc, capacity, None)
    # 0.15 Ah every third day is ~2 mA on average: the bled cells come out high without it
    excess = np.nanmean(ignored[:, 2]) - np.nanmean(counted[:, 2])
    assert excess == pytest.approx(0.0021, abs=0.0005)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_no_false_alarm_without_a_leak(seed):
    t, soc, capacity, bled = _fleet_series(leak_a=0.0, seed=seed)
    _, excess = detect.excess_self_discharge(t, soc, capacity, bled)
    assert not detect.leak_alarms(t, excess)['alarm'].any()


def test_excess_skips_invalid_rows_and_bridges_them():
    t, soc, capacity, bled = _fleet_series(days=6, leak_day=0.0, noise_ah=0.0, bleed=False)
    valid = np.array([True, True, False, True, True, True])
    _, excess = detect.excess_self_discharge(t, soc, capacity, bled, valid)
    assert np.isnan(excess[0]).all() and np.isnan(excess[2]).all()
    # the interval 1 -> 3 spans two days and still gives the leak (relative to the median)
    assert excess[3, 5] == pytest.approx(0.010, rel=0.1)


def test_cusum_alarm_index():
    stat, first = detect.cusum([0, 0, 1, 1, 1, np.nan, 1], reference=0.5, threshold=1.4)
    assert first == 4
    np.testing.assert_allclose(stat, [0, 0, 0.5, 1.0, 1.5, 1.5, 2.0])


def test_robust_z_and_outliers():
    rates = np.array([1.0, 1.1, 0.9, 1.05, 0.95, 8.0])
    mask = detect.outliers(rates)
    assert list(np.flatnonzero(mask)) == [5]
    assert np.isnan(detect.robust_z([1.0]))[0]
    # a floor keeps a near-constant fleet from flagging tiny differences
    assert not detect.outliers([1.0, 1.0, 1.0, 1.001], floor=0.1).any()


@settings(max_examples=30, deadline=None)
@given(st.floats(min_value=-5.0, max_value=5.0), st.floats(min_value=-100.0, max_value=100.0))
def test_slope_of_a_line(rate, offset):
    t = np.linspace(0.0, 30.0, 12)
    assert detect.slope(t, offset + rate * t) == pytest.approx(rate, abs=1e-9)


def test_drift_flags():
    slopes = [0.0005, -0.001, 0.03, 0.0002, 0.0]
    assert list(np.flatnonzero(detect.drift_flags(slopes, limit=0.005, floor=0.002))) == [2]
    assert list(np.flatnonzero(detect.drift_flags([0.0, 0.03], limit=0.005))) == [1]
