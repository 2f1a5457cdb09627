"""The estimator: section is validated with errors naming file and field."""
import pytest

from bms_ros.core.config import Section
from bms_ros.core.errors import ConfigError
from bms_ros.core.estimation import EstimatorConfig
from bms_ros.core.profile import Profile, config_dir


def section(data):
    return Section(data, 'profile.yaml', 'estimator')


def test_defaults_and_profiles():
    assert EstimatorConfig.from_section(section({})) == EstimatorConfig()
    for name in ('lfp_16s', 'nmc_96s'):
        profile = Profile(f'{config_dir()}/profiles/{name}.yaml')
        config = EstimatorConfig.from_section(profile.section('estimator'))
        assert config.derating.temperature_degc


@pytest.mark.parametrize('data,field,problem', [
    ({'voltage_noise': 0.01}, 'estimator.voltage_noise', 'unknown field'),
    ({'voltage_noise_v': -0.01}, 'estimator.voltage_noise_v', '> 0.0'),
    ({'rest_time_s': 'long'}, 'estimator.rest_time_s', 'expected a number'),
    ({'startup_anchor': 1}, 'estimator.startup_anchor', 'true or false'),
    ({'horizon_short_s': 20.0, 'horizon_long_s': 10.0}, 'estimator.horizon_long_s',
     'horizon_short_s'),
    ({'update_iterations': 1.5}, 'estimator.update_iterations', 'integer'),
    ({'derating': {'temperature_degc': [0, 10], 'charge_factor': [1.0],
                   'discharge_factor': [1, 1]}}, 'estimator.derating.charge_factor',
     'expected 2 values'),
    ({'derating': {'temperature_degc': [10, 0], 'charge_factor': [1, 1],
                   'discharge_factor': [1, 1]}}, 'estimator.derating.temperature_degc',
     'increasing'),
    ({'derating': {'temperature_degc': [0, 10], 'charge_factor': [1, 1.5],
                   'discharge_factor': [1, 1]}}, 'estimator.derating.charge_factor[1]', '<= 1'),
])
def test_bad_values_name_file_and_field(data, field, problem):
    with pytest.raises(ConfigError) as info:
        EstimatorConfig.from_section(section(data))
    assert info.value.path == 'profile.yaml'
    assert info.value.field == field
    assert problem in str(info.value)


def _cell_file(tmp_path, estimator_lines):
    """A copy of the LFP cell file with its own estimator: section replaced."""
    source = f'{config_dir()}/cells/lfp_a123_anr26650.yaml'
    text = open(source, encoding='utf-8').read()
    text = text.split('\nestimator:', 1)[0] + '\nestimator:\n' + estimator_lines
    ocv = f'{config_dir()}/cells/'
    path = tmp_path / 'cell.yaml'
    # the OCV table path is relative to the cell file: keep it pointing at the shipped one
    path.write_text(text.replace('ocv_table: ', f'ocv_table: {ocv}'), encoding='utf-8')
    return str(path)


def test_the_profile_fields_go_on_top_of_the_cell_files_own_section(tmp_path):
    cell = _cell_file(tmp_path, '  rest_time_s: 900.0\n  model_error_v: 0.004\n')
    config = EstimatorConfig.for_cell(section({'rest_time_s': 1800.0}), cell)
    assert config.rest_time_s == 1800.0          # the profile's field wins
    assert config.model_error_v == 0.004         # the chemistry's tuning stays
    assert config.voltage_noise_v == EstimatorConfig().voltage_noise_v   # neither: default
    # the shipped LFP pack takes its cell file's correlated doubt under its own rest time
    lfp = EstimatorConfig.for_profile(Profile(f'{config_dir()}/profiles/lfp_16s.yaml'))
    assert (lfp.rest_time_s, lfp.polarisation_noise_per_c_v) == (1800.0, 1.2)


def test_a_bad_value_in_the_cell_files_section_names_the_cell_file(tmp_path):
    cell = _cell_file(tmp_path, '  model_error_v: -1.0\n')
    with pytest.raises(ConfigError) as error:
        EstimatorConfig.for_cell(section({}), cell)
    assert error.value.path == cell and error.value.field == 'estimator.model_error_v'
