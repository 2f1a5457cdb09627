"""The fleet's per-bag capacity measurement (OCV of both rests, a doubt rule for the plateau)
and the estimator settings the fleet replay takes (the cell file's under the profile's).
"""

import numpy as np
import pytest

from bms_ros.core.config import Section
from bms_ros.core.errors import ConfigError
from bms_ros.core.estimation.config import EstimatorConfig, settings_source, settings_text
from bms_ros.core.fleet import feed, replay
from bms_ros.core.fleet.replay import ReplayOptions, measurement_times, replay_columns
from bms_ros.core.profile import Profile, config_dir
from bms_ros.tools import fleet_synth
from bms_ros.tools.fleet_bags import read_bag

LFP = f'{config_dir()}/profiles/lfp_16s.yaml'


@pytest.fixture(scope='module')
def mission(tmp_path_factory):
    """One synthetic mission bag of one pack (top of charge -> 15 %, 1830 s rest) + truth."""
    spec = fleet_synth.FleetSpec(packs=1, bags=1, days_per_bag=1.0, leak_start_day=0.0)
    truth = fleet_synth.generate(spec, str(tmp_path_factory.mktemp('fleet')), jobs=1)
    record = truth['packs'][0]['bags'][0]
    bag = read_bag(record['path'])
    return bag, measurement_times(bag['columns'], bag['receive_s']), record


def _replay(bag, t_s, config=None, monkeypatch=None):
    if config is not None:
        def fixed(profile, carried=None):
            return feed.PackEstimator(profile.pack.cell, profile.pack.cells_series,
                                      config), config
        monkeypatch.setattr(replay, 'new_estimator', fixed)
    return replay_columns(bag['columns'], bag['profile_obj'], t_s=t_s)


def test_fleet_replay_takes_the_cell_files_tuning_under_the_profiles_fields():
    profile = Profile(LFP)
    _, config = feed.new_estimator(profile)
    assert config.rest_time_s == 1800.0                  # the profile's field wins
    assert config.polarisation_noise_per_c_v == 1.2      # the LFP cell file's tuning stays
    assert config.stop_band_v == 0.03 and config.full_charge_anchor
    assert config == EstimatorConfig.for_profile(profile)


def test_measured_capacity_is_the_truth_whatever_the_filters_voltage_doubt(
        mission, monkeypatch):
    """Both ends come from the relaxed OCV, so the chemistry's voltage doubt (which decides
    how much of the filter's end SoC is its own count) does not enter: within 0.1 % of the
    model's capacity with the LFP tuning and with the profile's section alone.
    """
    bag, t_s, record = mission
    true_ah = np.asarray(record['capacity_ah_start'])
    tuned = _replay(bag, t_s)
    plain = EstimatorConfig.from_section(bag['profile_obj'].section('estimator'))
    assert plain.polarisation_noise_per_c_v == 0.0
    untuned = _replay(bag, t_s, plain, monkeypatch)
    for result in (tuned, untuned):
        measured = np.asarray(result.cell_capacity_measured_ah)
        assert np.all(np.isfinite(measured))
        assert np.max(np.abs(measured / true_ah - 1.0)) < 0.001
        std = np.asarray(result.cell_capacity_measured_std_ah)
        assert np.all((std > 0.0) & (std < 0.02 * measured))
    assert np.allclose(tuned.cell_capacity_measured_ah, untuned.cell_capacity_measured_ah,
                       rtol=2e-4)


def test_a_final_rest_on_the_plateau_measures_nothing(mission):
    """3 mV of OCV doubt is several points of SoC on LFP's plateau: no capacity from there."""
    bag, t_s, _ = mission
    columns = dict(bag['columns'])
    order = np.argsort(t_s, kind='stable')
    current = np.asarray(columns['pack_current_a'])[order]
    moving = np.flatnonzero(np.abs(current) > 0.5)
    final_rest = order[moving[-1] + 1:]
    ocv = bag['profile_obj'].pack.cell.ocv
    volts = np.array(columns['cell_voltages_v'], dtype=float)
    volts[final_rest] = ocv.ocv(0.55, 25.0)          # the plateau: slope 0.03 V per unit
    columns['cell_voltages_v'] = volts
    result = replay_columns(columns, bag['profile_obj'], t_s=t_s)
    assert result.anchored_at_end
    assert np.all(np.isnan(result.cell_capacity_measured_ah))
    assert np.all(np.isnan(result.cell_capacity_measured_std_ah))
    # a looser rule keeps the read and its doubt says why it was refused
    loose = replay_columns(columns, bag['profile_obj'], t_s=t_s,
                           options=ReplayOptions(capacity_max_std=1.0))
    q = np.asarray(loose.cell_capacity_measured_ah)
    assert np.all(np.asarray(loose.cell_capacity_measured_std_ah) > 0.02 * q)


def test_the_profile_wins_field_by_field_and_a_bad_cell_value_names_the_cell_file(tmp_path):
    source = f'{config_dir()}/cells/lfp_a123_anr26650.yaml'
    text = open(source, encoding='utf-8').read().split('\nestimator:', 1)[0]
    # the OCV table path is relative to the cell file: keep it pointing at the shipped one
    text = text.replace('ocv_table: ', f'ocv_table: {config_dir()}/cells/')
    cell = tmp_path / 'cell.yaml'
    cell.write_text(text + '\nestimator:\n  rest_time_s: 900.0\n  model_error_v: 0.004\n',
                    encoding='utf-8')
    profile = Section({'rest_time_s': 1800.0}, 'profile.yaml', 'estimator')
    config = EstimatorConfig.for_cell(profile, str(cell))
    assert config.rest_time_s == 1800.0                  # the profile's field wins
    assert config.model_error_v == 0.004                 # the chemistry's tuning stays
    assert config.voltage_noise_v == EstimatorConfig().voltage_noise_v     # neither: default
    assert 'over the cell file' in settings_source('profile.yaml', str(cell))
    assert 'rest_time_s=1800.0' in settings_text(config, 'x')
    cell.write_text(text + '\nestimator:\n  model_error_v: -1.0\n', encoding='utf-8')
    with pytest.raises(ConfigError) as error:
        EstimatorConfig.for_cell(profile, str(cell))
    assert error.value.path == str(cell) and error.value.field == 'estimator.model_error_v'
