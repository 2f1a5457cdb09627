"""The fleet replay's estimator feed: which samples are fed (bms_ros.core.fleet.feed)."""
import numpy as np

from bms_ros.core.estimation.config import EstimatorConfig
from bms_ros.core.fleet.feed import feed_mask
from bms_ros.core.fleet.results import ReplayOptions


def quiet_columns(n, cells=4):
    """Columns of a pack at rest with nothing changing (contactors open, all valid)."""
    false = np.zeros(n, dtype=bool)
    columns = {name: false for name in (
        'negative_contactor_closed', 'positive_contactor_closed', 'precharge_relay_closed',
        'cell_voltages_stale', 'temperatures_stale', 'current_stale', 'contactors_stale')}
    columns['cell_balancing'] = np.zeros((n, cells), dtype=bool)
    columns['cell_voltage_valid'] = np.ones((n, cells), dtype=bool)
    columns['temperature_valid'] = np.ones((n, 2), dtype=bool)
    columns['cell_voltages_v'] = np.full((n, cells), 3.3)
    return columns


def test_samples_one_max_step_apart_are_not_gaps(lfp):
    # stamps 30 s apart differ from 30 s by rounding (by 5.7e-14 s here): not a gap
    config = EstimatorConfig()
    n = 41
    t_s = 0.7 + np.arange(n) * config.max_step_s
    assert np.any(np.diff(t_s) > config.max_step_s)
    options = ReplayOptions(max_feed_s=120.0, rest_feed_s=120.0)
    fed = feed_mask(t_s, np.zeros(n), quiet_columns(n), config, lfp, options)
    # every 120 s (each fourth sample) and the last, not every sample
    assert np.flatnonzero(fed).tolist() == list(range(0, n, 4))


def test_a_real_gap_is_fed_on_both_sides(lfp):
    config = EstimatorConfig()
    t_s = np.concatenate((np.arange(0.0, 100.0, 10.0), 200.0 + np.arange(0.0, 100.0, 10.0)))
    n = len(t_s)
    options = ReplayOptions(max_feed_s=1000.0, rest_feed_s=1000.0)
    fed = feed_mask(t_s, np.zeros(n), quiet_columns(n), config, lfp, options)
    assert np.flatnonzero(fed).tolist() == [0, 9, 10, n - 1]
