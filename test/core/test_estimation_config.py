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

