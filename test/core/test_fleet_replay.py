"""The batched fleet replay against the offline replay (the cores as the nodes run them)."""
import os

import numpy as np
import pytest

from bms_ros.core.fleet.replay import (
    ReplayOptions,
    hot_mask,
    measurement_times,
    protection_windows,
    replay_columns,
)
from bms_ros.core.protection import load_protection_config
from bms_ros.tools.bag.offline import replay
from bms_ros.tools.fleet_bags import read_bag

FIXTURE = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'bags', 'lfp_thermal_event')


@pytest.fixture(scope='module')
def both():
    bag = read_bag(FIXTURE)
    columns = bag['columns']
    t_s = measurement_times(columns, bag['receive_s'])
    fast = replay_columns(columns, bag['profile_obj'], t_s=t_s)
    return fast, replay(FIXTURE), bag, t_s


def test_events_identical_to_the_offline_replay(both):
    fast, offline, _, _ = both
    mine = [(e['limit_id'], e['index'], e['level'], e['active'], round(e['t_s'], 3))
            for e in fast.events]
    theirs = [(e.limit_id, e.index, e.level, e.active, round(e.t_s, 3)) for e in offline.events]
    assert mine == theirs and len(fast.trips()) == 3
    assert fast.final_trip_latched == offline.final_trip_latched
    assert fast.evaluated < fast.measurements       # the quiet start was not evaluated


def test_soc_and_capacity_within_tolerance_of_the_offline_replay(both):
    fast, offline, _, _ = both
    assert fast.fed < 0.2 * fast.measurements
    np.testing.assert_allclose(fast.cell_soc, offline.final_cell_soc, atol=0.001)
    assert fast.capacity_ah == pytest.approx(offline.final_capacity_ah, rel=0.001)
    soc_offline = np.interp(fast.t_s, offline.t_s, offline.pack_soc)
    assert np.max(np.abs(np.asarray(fast.pack_soc) - soc_offline)) < 0.002


def test_a_quiet_bag_needs_no_protection_and_a_hot_sample_opens_a_window(both):
    _, _, bag, t_s = both
    columns = {k: v.copy() for k, v in bag['columns'].items()}
    profile = bag['profile_obj']
    config = load_protection_config(profile.section('protection'), profile.pack)
    quiet = {k: v[:150].copy() for k, v in columns.items()}     # the first 15 s: nothing near
    assert not hot_mask(quiet, t_s[:150], config).any()
    assert replay_columns(quiet, profile, t_s=t_s[:150]).evaluated == 0
    # one cell over its warning for 1 s: hot after the debounce, a window around it
    quiet['cell_voltages_v'][50:60, 3] = 3.7
    windows = protection_windows(t_s[:150], [(config.limit('cell_overvoltage'),
                                              hot_mask(quiet, t_s[:150], config))], config)
    assert len(windows) == 1 and windows[0][0] <= 50 and windows[0][1] >= 60
    result = replay_columns(quiet, profile, t_s=t_s[:150])
    assert any(e['limit_id'] == 'cell_overvoltage' for e in result.events)
    full = replay_columns(quiet, profile, t_s=t_s[:150],
                          options=ReplayOptions(protection_windows=False))
    assert [(e['limit_id'], e['level'], e['t_s']) for e in result.events] == \
        [(e['limit_id'], e['level'], e['t_s']) for e in full.events]
