"""The simulated charger (CC-CV at the BMS's charge limit and the cell's upper voltage) and the
pack's cooling time constant (bms_ros.core.pack_model).
"""
import dataclasses
import os

import numpy as np
import pytest

from bms_ros.core.errors import ConfigError
from bms_ros.core.pack_model import ChargerConfig, PackModel, SimulatorConfig
from bms_ros.core.profile import Profile, config_dir

LFP_PROFILE = os.path.join(config_dir(), 'profiles', 'lfp_16s.yaml')


@pytest.fixture(scope='module')
def profile():
    return Profile(LFP_PROFILE)


def closed(model):
    model.set_contactors(True, False, True)
    model.advance(0.1)
    return model


def test_the_charger_of_the_profile_and_its_datasheet_defaults(profile):
    config = SimulatorConfig.from_section(profile.section('simulator'), profile.pack)
    limits = profile.pack.cell.limits
    bare = type(profile.section('simulator'))({}, profile.path, 'simulator')
    assert SimulatorConfig.from_section(bare, profile.pack).charger.current_a == \
        0.5 * limits.charge_current_max_a
    assert config.charger.current_a == 11.5                  # the profile's 0.5 C dock charger
    assert config.charger.cell_voltage_v == limits.voltage_max_v          # 3.6 V (A123)
    assert config.charger.end_current_a == pytest.approx(profile.pack.capacity_ah / 20.0)


def test_cc_at_the_bms_limit_then_cv_at_the_upper_cell_voltage_then_done(profile):
    pack = profile.pack
    charger = ChargerConfig(current_a=40.0, cell_voltage_v=3.55, end_current_a=2.0)
    model = closed(PackModel(pack, SimulatorConfig(initial_soc=0.9, step_s=0.1,
                                                   charger=charger)))
    model.set_charger(True, charge_limit_a=25.0)      # the BMS allows less than the charger
    model.advance(5.0)
    assert model.charger_phase == 'CC'
    assert model.pack_current_a == pytest.approx(25.0)    # + = charging, at the BMS's limit
    phases, peak_v = set(), 0.0
    for _ in range(4000):                                # up to 4000 s: CV tapers, then done
        model.advance(1.0)
        phases.add(model.charger_phase)
        peak_v = max(peak_v, float(model.cell_voltages_v.max()))
        if model.charger_phase == 'done':
            break
    assert phases >= {'CV', 'done'}
    assert peak_v <= 3.55 + 1e-3                         # CV holds the highest cell
    model.advance(1.0)
    assert model.pack_current_a == 0.0                   # done: no current
    assert model.soc.min() > 0.95
    model.set_charger(False)
    model.set_charger(True)
    assert model.charger_phase == 'CC'                   # plugged in again: a new charge


def test_a_tripped_bms_limit_stops_the_charger_and_an_override_still_wins(profile):
    model = closed(PackModel(profile.pack, SimulatorConfig(initial_soc=0.5, step_s=0.1)))
    model.set_charger(True, charge_limit_a=0.0)
    model.advance(1.0)
    assert model.pack_current_a == 0.0
    model.set_demand(-5.0)
    model.advance(1.0)
    assert model.pack_current_a == pytest.approx(-5.0)
    model.clear_demand()
    model.set_charger(False)
    model.advance(1.0)
    assert model.pack_current_a == pytest.approx(model.load.current_a(model.sim_time_s))


def test_cooling_from_the_profile_and_its_time_constant(profile):
    """A group warmed by 20 K relaxes with tau = m cp / cooling (one exponential without
    neighbours); the cell file's 0.05 W/K per 26650 (R = 20 K/W, natural convection in a
    module) gives ~25 min, forced air ~4 min as Forgez et al. (2010) measured on a free A123
    26650 in air (R_out 3.1 K/W, C 67 J/K: ~3.5 min).
    """
    pack = profile.pack
    natural = PackModel(pack, SimulatorConfig(step_s=1.0))
    m_cp = pack.cell.mass_kg * pack.cell.heat_capacity_j_per_kg_k
    assert natural.thermal_time_constant_s == pytest.approx(m_cp / pack.cell.cooling_w_per_k)
    assert 20 * 60 < natural.thermal_time_constant_s < 30 * 60
    forced = PackModel(pack, SimulatorConfig(step_s=1.0, cooling_w_per_k=0.3, ambient_degc=25.0,
                                             initial_temperature_degc=45.0))
    tau = forced.thermal_time_constant_s
    assert 3 * 60 < tau < 5 * 60
    forced.advance(tau)
    excess = forced.temperatures_degc - 25.0
    assert excess == pytest.approx(20.0 * np.exp(-1.0), rel=0.01)   # one time constant
    forced.set_ambient(35.0)
    forced.advance(10 * tau)
    assert forced.temperatures_degc == pytest.approx(35.0, abs=0.05)
    with pytest.raises(ValueError, match='ambient must be in -60..100 degC'):
        forced.set_ambient(float('nan'))


def test_charger_and_cooling_fields_are_validated(profile):
    section = profile.section('simulator')
    for extra, field in (({'charger': {'current_a': -1.0}}, 'simulator.charger.current_a'),
                         ({'charger': {'volts': 3.6}}, 'simulator.charger'),
                         ({'cooling_w_per_k': 0.0}, 'simulator.cooling_w_per_k')):
        bad = type(section)({**section.data, **extra}, section.path, section.prefix)
        with pytest.raises(ConfigError, match=field):
            SimulatorConfig.from_section(bad, profile.pack)


def test_after_a_thermal_event_the_hot_sensor_cools_back_within_minutes(profile):
    """The shipped LFP pack: 100 W into group 3 until its sensor reads the 55 degC trip, then
    the heat stops; the sensor is under the trip's release (52.5 degC, a reset may pass) within
    2 min and under the 45 degC warning within 8 min (neighbours and cooling; measured 74 s and
    354 s).
    """
    config = SimulatorConfig.from_section(profile.section('simulator'), profile.pack)
    model = PackModel(profile.pack, dataclasses.replace(config, step_s=0.5,
                                                        noise=type(config.noise)()))
    model.inject_fault('thermal_event', 3, 100.0)
    heated_s = 0
    while model.sensor_temperatures_degc().max() < 55.0:
        model.advance(1.0)
        heated_s += 1
        assert heated_s < 1800
    model.clear_fault('thermal_event')
    model.advance(120.0)
    assert model.sensor_temperatures_degc().max() < 52.5
    model.advance(360.0)
    assert model.sensor_temperatures_degc().max() < 45.0
