"""The simulated pack: ECM, charge counting, thermal, contactors, DC link, bleed, faults, config."""
import dataclasses
import math
import os
import re

import numpy as np
import pytest
import yaml

from bms_ros.core.errors import ConfigError
from bms_ros.core.load_profile import ConstantLoad, ExternalLoad
from bms_ros.core.pack_model import (
    CommandWatchdog,
    NoiseConfig,
    PackModel,
    SimulatorConfig,
    check_command_timeout,
)
from bms_ros.core.profile import Profile, config_dir
from bms_ros.core.sim_faults import FaultError

CONFIG = config_dir()
LFP_PROFILE = os.path.join(CONFIG, 'profiles', 'lfp_16s.yaml')
NMC_PROFILE = os.path.join(CONFIG, 'profiles', 'nmc_96s.yaml')
REPO = os.path.dirname(CONFIG)


@pytest.fixture(scope='module')
def lfp_pack():
    return Profile(LFP_PROFILE).pack


def ideal(pack, **overrides):
    """A model with no spread, no noise, no self-discharge, unless overridden."""
    return PackModel(pack, SimulatorConfig(**overrides))


def close_main(model):
    """Close negative + positive and wait until the feedback says closed."""
    model.set_contactors(True, False, True)
    model.advance(max(0.1, 2 * model.step_s))
    assert model.negative_contactor_closed and model.positive_contactor_closed


def msg_fields(name):
    """Field names of a bms_interfaces message, read from its .msg file."""
    path = os.path.join(REPO, 'bms_interfaces', 'msg', f'{name}.msg')
    fields = []
    for line in open(path, encoding='utf-8'):
        line = line.split('#', 1)[0].strip()
        if line and '=' not in line:
            fields.append(line.split()[1])
    return fields


def test_one_c_discharge_moves_soc_by_one_3600th_per_second(lfp_pack):
    model = ideal(lfp_pack, initial_soc=0.8, load=ConstantLoad(-lfp_pack.capacity_ah))
    close_main(model)
    soc0, t0 = model.soc.copy(), model.sim_time_s
    model.advance(360.0)
    elapsed = model.sim_time_s - t0
    assert elapsed == pytest.approx(360.0, abs=1e-6)
    np.testing.assert_allclose(model.soc, soc0 - elapsed / 3600.0, atol=1e-9)
    assert model.pack_current_a == pytest.approx(-lfp_pack.capacity_ah)


def test_charge_counting_uses_each_cells_capacity(lfp_pack):
    model = ideal(lfp_pack, initial_soc=0.5, capacity_spread_rel=0.05, load=ConstantLoad(10.0))
    close_main(model)
    soc0 = model.soc.copy()
    model.advance(100.0)
    np.testing.assert_allclose(model.soc - soc0, 10.0 * 100.0 / 3600.0 / model.capacity_ah,
                               rtol=1e-9)
    assert np.ptp(model.capacity_ah) > 0.01 * lfp_pack.capacity_ah


def test_terminal_voltage_is_ocv_plus_ohmic_plus_rc_drop_at_a_current_step(lfp_pack):
    cell = lfp_pack.cell
    current = -2.0 * lfp_pack.capacity_ah
    model = ideal(lfp_pack, initial_soc=0.5)
    close_main(model)                       # rest: no current, RC voltage 0
    np.testing.assert_allclose(model.cell_voltages_v, model.ocv_v, atol=1e-12)
    model.set_demand(current)
    model.step()
    decay = math.exp(-model.step_s / cell.tau1_s)
    expected = cell.ocv.ocv(model.soc, 25.0) + current * cell.r0_ohm \
        + current * cell.r1_ohm * (1.0 - decay)
    np.testing.assert_allclose(model.cell_voltages_v, expected, atol=2e-4)  # heat: T moves a mK
    # the RC pair relaxes to I * R1 after many time constants
    model.advance(10.0 * cell.tau1_s)
    np.testing.assert_allclose(model.rc_v, current * cell.r1_ohm, rtol=1e-3)
    assert model.pack_voltage_v == pytest.approx(model.cell_voltages_v.sum())


def test_r0_rises_in_the_cold(lfp_pack):
    warm = ideal(lfp_pack, ambient_degc=25.0)
    cold = ideal(lfp_pack, ambient_degc=0.0)
    for model in (warm, cold):
        model.step()
    ratio = cold.r0_ohm[0] / warm.r0_ohm[0]
    assert ratio == pytest.approx(math.exp(3000.0 * (1 / 273.15 - 1 / 298.15)), rel=1e-9)


def test_thermal_steady_state_is_ambient_plus_joule_heat_over_cooling(lfp_pack):
    # Huge capacity so SoC stays put; no Arrhenius so the fixed point has a closed form.
    cell = dataclasses.replace(lfp_pack.cell, capacity_ah=1e6, r0_arrhenius_k=0.0)
    pack = dataclasses.replace(lfp_pack, cell=cell)
    current = -40.0
    model = PackModel(pack, SimulatorConfig(step_s=1.0, ambient_degc=20.0,
                                            load=ConstantLoad(current)))
    close_main(model)
    tau_s = cell.mass_kg * cell.heat_capacity_j_per_kg_k / cell.cooling_w_per_k
    model.advance(12.0 * tau_s)
    expected = 20.0 + current ** 2 * (cell.r0_ohm + cell.r1_ohm) / cell.cooling_w_per_k
    np.testing.assert_allclose(model.temperatures_degc, expected, rtol=1e-4)
    assert expected > 25.0                 # the test would see a model without heating


def test_neighbours_share_heat_of_a_thermal_event(lfp_pack):
    model = ideal(lfp_pack, step_s=1.0, neighbour_conductance_w_per_k=0.5)
    model.inject_fault('thermal_event', 5, 20.0)
    model.advance(600.0)
    t = model.temperatures_degc
    assert t[5] > t[4] > t[3] > 25.0
    assert t[4] == pytest.approx(t[6], abs=1e-9)
    assert t[15] == pytest.approx(25.0, abs=0.1)


def test_precharge_time_constant_is_r_times_c(lfp_pack):
    cfg = SimulatorConfig(link_capacitance_f=0.002, precharge_resistance_ohm=25.0,
                          link_discharge_resistance_ohm=1e6, step_s=0.001)
    model = PackModel(lfp_pack, cfg)
    v_pack = model.pack_voltage_v
    model.set_contactors(True, True, False)
    times, link = [], []
    while model.sim_time_s < 0.5:
        model.step()
        times.append(model.sim_time_s)
        link.append(model.link_voltage_v)
    times, link = np.array(times), np.array(link)
    start = times[np.argmax(link > 0)] - cfg.step_s        # relay feedback closed
    assert start == pytest.approx(cfg.contactor_closing_delay_s, abs=2 * cfg.step_s)
    tau = times[np.argmax(link >= (1 - math.exp(-1)) * v_pack)] - start
    assert tau == pytest.approx(25.0 * 0.002, abs=2 * cfg.step_s)
    assert link[-1] == pytest.approx(v_pack, rel=1e-3)
    assert model.pack_current_a < 0.0                     # pre-charge draws a little
    assert abs(model.pack_current_a) < 0.01


def test_load_current_flows_only_through_the_closed_main_path(lfp_pack):
    model = ideal(lfp_pack, load=ConstantLoad(-20.0))
    model.advance(1.0)
    assert model.pack_current_a == 0.0 and model.link_voltage_v == 0.0
    model.set_contactors(True, True, False)       # pre-charge only: small current
    model.advance(1.0)
    assert -0.01 < model.pack_current_a < 0.0
    model.set_contactors(True, True, True)
    model.advance(0.1)
    assert model.pack_current_a == pytest.approx(-20.0)
    assert model.link_voltage_v == pytest.approx(model.pack_voltage_v)
    model.set_contactors(False, False, True)      # negative open: no path
    model.advance(0.1)
    assert model.pack_current_a == 0.0
    assert 0.9 * model.pack_voltage_v < model.link_voltage_v   # link discharges slowly


def test_shorted_load_keeps_the_link_near_zero_so_precharge_fails(lfp_pack):
    model = ideal(lfp_pack)
    model.inject_fault('shorted_load', value=0.05)
    model.set_contactors(True, True, False)
    model.advance(2.0)
    assert model.precharge_relay_closed
    assert model.link_voltage_v < 0.01 * model.pack_voltage_v
    assert model.measured()['link_voltage_v'] < 0.01 * model.pack_voltage_v
    # closing the main path onto the short: a huge discharge current, link at pack voltage
    model.set_contactors(True, False, True)
    model.advance(0.1)
    assert model.pack_current_a < -10.0 * lfp_pack.capacity_ah
    assert model.link_voltage_v == pytest.approx(model.pack_voltage_v)


def test_contactor_feedback_follows_the_command_after_its_delay(lfp_pack):
    model = ideal(lfp_pack, step_s=0.001)
    model.set_contactors(True, False, False)
    model.advance(0.025)
    assert not model.negative_contactor_closed
    model.advance(0.01)
    assert model.measured()['negative_contactor_closed']
    model.set_contactors(False, False, False)
    model.advance(0.015)
    assert model.negative_contactor_closed
    model.advance(0.01)
    assert not model.negative_contactor_closed


def test_welded_contactor_stays_closed_when_commanded_open(lfp_pack):
    model = ideal(lfp_pack, load=ConstantLoad(-10.0))
    close_main(model)
    model.inject_fault('contactor_welded', 1)
    model.set_contactors(False, False, False)
    model.advance(1.0)
    m = model.measured()
    assert m['positive_contactor_closed'] and not m['negative_contactor_closed']
    assert model.pack_current_a == 0.0            # the negative opened the path
    model.clear_fault('contactor_welded')
    model.advance(0.1)
    assert not model.positive_contactor_closed


def test_stuck_open_contactor_never_closes(lfp_pack):
    model = ideal(lfp_pack, load=ConstantLoad(-10.0))
    model.inject_fault('contactor_stuck_open', 'positive')
    model.set_contactors(True, False, True)
    model.advance(1.0)
    assert model.negative_contactor_closed and not model.positive_contactor_closed
    assert model.pack_current_a == 0.0


def test_bleed_drains_and_heats_only_the_bleeding_cell(lfp_pack):
    r_bleed = 10.0
    model = ideal(lfp_pack, initial_soc=0.7, bleed_resistance_ohm=r_bleed, step_s=0.1)
    soc0 = model.soc.copy()
    mask = np.zeros(16, dtype=bool)
    mask[3] = True
    model.set_bleed(mask)
    model.advance(600.0)
    v3 = model.cell_voltages_v[3]
    expected = v3 / r_bleed * 600.0 / 3600.0 / lfp_pack.capacity_ah
    assert soc0[3] - model.soc[3] == pytest.approx(expected, rel=0.02)
    others = np.arange(16) != 3
    np.testing.assert_array_equal(model.soc[others], soc0[others])
    assert model.temperatures_degc[3] > 25.5
    np.testing.assert_allclose(model.temperatures_degc[others], 25.0, atol=1e-9)
    assert model.measured()['cell_balancing'].tolist() == mask.tolist()
    assert model.pack_current_a == 0.0            # bleed is not seen by the pack current sensor
    with pytest.raises(ValueError, match='expected 16 values, got 3'):
        model.set_bleed([True, False, True])


def test_self_discharge_lowers_soc_at_rest(lfp_pack):
    model = ideal(lfp_pack, step_s=1.0, self_discharge_a=0.01, self_discharge_spread_rel=0.2)
    soc0 = model.soc.copy()
    model.advance(3600.0)
    np.testing.assert_allclose(soc0 - model.soc, model.self_discharge_a / model.capacity_ah,
                               rtol=1e-9)
    assert np.ptp(model.self_discharge_a) > 0.0


def test_same_seed_same_pack_other_seed_differs(lfp_pack):
    cfg = dict(soc_spread=0.02, capacity_spread_rel=0.02, r0_spread_rel=0.05,
               noise=NoiseConfig(cell_voltage_v=0.002, current_a=0.1))
    a = ideal(lfp_pack, seed=7, **cfg)
    b = ideal(lfp_pack, seed=7, **cfg)
    c = ideal(lfp_pack, seed=8, **cfg)
    for name in ('soc', 'capacity_ah', 'r0_ohm', 'r1_ohm'):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert not np.array_equal(getattr(a, name), getattr(c, name)), name
    ma, mb, mc = a.measured(), b.measured(), c.measured()
    np.testing.assert_array_equal(ma['cell_voltages_v'], mb['cell_voltages_v'])
    assert not np.array_equal(ma['cell_voltages_v'], mc['cell_voltages_v'])
    # spreads are in the configured range, truncated at 3 sigma
    assert np.all(np.abs(a.capacity_ah / lfp_pack.capacity_ah - 1.0) <= 0.06 + 1e-12)
    assert 0.005 < np.std(a.soc) < 0.04


def test_faded_cell_has_its_capacity_factor(lfp_pack):
    from bms_ros.core.pack_model import FadedCell
    model = ideal(lfp_pack, faded_cells=(FadedCell(4, 0.8, 1.5),))
    assert model.capacity_ah[4] == pytest.approx(0.8 * lfp_pack.capacity_ah)
    assert model.r0_ohm[4] == pytest.approx(1.5 * lfp_pack.cell.r0_ohm)
    assert model.capacity_ah[3] == pytest.approx(lfp_pack.capacity_ah)


def test_measurement_faults_change_only_the_reading(lfp_pack):
    model = ideal(lfp_pack, load=ConstantLoad(-5.0))
    close_main(model)
    model.advance(1.0)
    truth = model.cell_voltages_v.copy()
    model.inject_fault('open_wire', 2)
    model.inject_fault('stuck_cell_voltage', 7, 3.123)
    model.inject_fault('temperature_dropout', 1)
    model.inject_fault('current_offset', value=1.5)
    m = model.measured()
    assert np.isnan(m['cell_voltages_v'][2]) and np.isnan(m['temperatures_degc'][1])
    assert m['cell_voltages_v'][7] == 3.123
    assert np.isfinite(m['cell_voltages_v']).sum() == 15
    assert np.isfinite(m['temperatures_degc']).sum() == 7
    assert m['pack_current_a'] == pytest.approx(-5.0 + 1.5)
    assert model.pack_current_a == pytest.approx(-5.0)        # truth unchanged
    np.testing.assert_allclose(model.cell_voltages_v, truth, atol=1e-3)
    assert {f for f, _, _ in model.faults.active()} == {
        'open_wire', 'stuck_cell_voltage', 'temperature_dropout', 'current_offset'}
    model.clear_fault('all')
    assert np.all(np.isfinite(model.measured()['cell_voltages_v']))


def test_stuck_cell_voltage_without_value_holds_the_present_reading(lfp_pack):
    model = ideal(lfp_pack, load=ConstantLoad(-20.0))
    close_main(model)
    present = model.cell_voltages_v[0]
    model.inject_fault('stuck_cell_voltage', 0)
    model.advance(60.0)
    assert model.measured()['cell_voltages_v'][0] == present
    assert model.cell_voltages_v[0] < present - 0.001


@pytest.mark.parametrize('fault, index, value, message', [
    ('melted', 0, 0.0, "unknown fault 'melted'"),
    ('open_wire', 16, 0.0, 'open_wire: cell index 16 out of range 0..15'),
    ('temperature_dropout', 8, 0.0, 'sensor index 8 out of range 0..7'),
    ('contactor_welded', 3, 0.0, 'contactor index 3 out of range 0..2'),
    ('thermal_event', 0, -5.0, 'must be a heat power > 0 W'),
    ('current_offset', 0, float('nan'), 'value must be finite'),
])
def test_bad_fault_requests_are_refused(lfp_pack, fault, index, value, message):
    model = ideal(lfp_pack)
    with pytest.raises(FaultError, match=re.escape(message)):
        model.inject_fault(fault, index, value)


def test_sensor_temperature_is_the_mean_of_its_cells(lfp_pack):
    model = ideal(lfp_pack, step_s=1.0)
    model.inject_fault('thermal_event', 0, 5.0)
    model.advance(300.0)
    temps = model.measured()['temperatures_degc']
    sensor = lfp_pack.sensor_of_cell()
    assert sensor[0] == sensor[1] == 0
    assert temps[0] == pytest.approx(model.temperatures_degc[:2].mean())
    assert temps[0] > 25.5 and temps[1] == pytest.approx(25.0)


def test_more_sensors_than_cells_read_the_nearest_cell(lfp_pack):
    pack = dataclasses.replace(lfp_pack, cells_series=3, temperature_sensors=5)
    model = PackModel(pack, SimulatorConfig())
    assert model.measured()['temperatures_degc'].shape == (5,)
    assert np.all(np.isfinite(model.measured()['temperatures_degc']))


def test_measurement_and_truth_are_named_as_the_messages(lfp_pack):
    model = ideal(lfp_pack, noise=NoiseConfig(0.001, 0.05, 0.05, 0.05, 0.2))
    measured = model.measured()
    fields = msg_fields('PackMeasurement')
    assert set(measured) <= set(fields)
    assert set(msg_fields('SimTruth')) - {'header'} == set(model.truth())
    assert measured['cell_voltages_v'].shape == (16,)
    assert measured['temperatures_degc'].shape == (8,)
    assert measured['cell_voltages_v'].dtype == float
    noise = measured['cell_voltages_v'] - model.cell_voltages_v
    assert 0.0 < np.std(noise) < 0.003


def test_external_demand_overrides_the_profile_then_expires(lfp_pack):
    model = ideal(lfp_pack, load=ConstantLoad(-3.0), demand_timeout_s=5.0)
    close_main(model)
    assert model.pack_current_a == -3.0
    model.set_demand(7.5)
    model.advance(1.0)
    assert model.pack_current_a == 7.5
    model.advance(5.0)
    assert model.pack_current_a == -3.0
    with pytest.raises(ValueError, match='finite'):
        model.set_demand(float('nan'))


def test_power_demand_becomes_current_at_the_pack_voltage(lfp_pack):
    model = ideal(lfp_pack, load=ConstantLoad(-3.0))
    close_main(model)
    model.set_demand_power(-1000.0)
    model.advance(1.0)
    assert model.pack_current_a * model.pack_voltage_v == pytest.approx(-1000.0, rel=1e-3)
    model.clear_demand()
    model.advance(0.1)
    assert model.pack_current_a == -3.0


def test_shipped_profiles_build_packs(lfp_pack):
    lfp = PackModel.from_profile(LFP_PROFILE)
    nmc = PackModel.from_profile(Profile(NMC_PROFILE))
    assert lfp.cells == 16 and nmc.cells == 96
    assert 48.0 < lfp.pack_voltage_v < 56.0          # 16s LFP at 60 % SoC
    assert 330.0 < nmc.pack_voltage_v < 400.0        # 96s NMC at 70 % SoC
    assert nmc.config.link_capacitance_f * nmc.config.precharge_resistance_ohm < 0.2


def _profile_with(tmp_path, simulator):
    """A profile file next to the shipped ones' folders, with ``simulator`` as its section."""
    data = yaml.safe_load(open(LFP_PROFILE, encoding='utf-8'))
    data['pack']['cell'] = os.path.join(CONFIG, 'cells', 'lfp_a123_anr26650.yaml')
    data['simulator'] = simulator
    for name in list(data):
        if name not in ('pack', 'simulator'):
            del data[name]
    path = tmp_path / 'p.yaml'
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize('simulator, field, problem', [
    ({'sed': 1}, 'simulator.sed', 'unknown field'),
    ({'initial_soc': 1.5}, 'simulator.initial_soc', 'expected a number <= 1.0, got 1.5'),
    ({'noise': {'current_a': -1}}, 'simulator.noise.current_a', 'expected a number >= 0.0'),
    ({'noise': {'voltage_v': 1}}, 'simulator.noise.voltage_v', 'unknown field'),
    ({'contactors': {'closing_delay_s': 'x'}}, 'simulator.contactors.closing_delay_s',
     "expected a number, got 'x'"),
    ({'faded_cells': [{'index': 16}]}, 'simulator.faded_cells[0].index',
     'expected a number <= 15, got 16'),
    ({'faults': [{'fault': 'open_wire', 'index': 20}]}, 'simulator.faults[0].index',
     'out of range 0..15'),
    ({'faults': [{'fault': 'gremlins'}]}, 'simulator.faults[0].fault', 'expected one of'),
    ({'load': {'kind': 'csv', 'file': 'nope.csv'}}, 'simulator.load.file', 'file not found'),
    ({'load': {'kind': 'wave'}}, 'simulator.load.kind', 'expected one of'),
    ({'link_discharge_resistance_ohm': 100.0}, 'simulator.link_discharge_resistance_ohm',
     'must be >= 20 x precharge_resistance_ohm'),
])
def test_config_errors_name_file_and_field(tmp_path, simulator, field, problem):
    path = _profile_with(tmp_path, simulator)
    with pytest.raises(ConfigError) as info:
        PackModel.from_profile(path)
    assert info.value.path == path
    assert info.value.field == field
    assert problem in info.value.problem


def test_faults_at_start_from_config(tmp_path):
    path = _profile_with(tmp_path, {'faults': [{'fault': 'open_wire', 'index': 3},
                                               {'fault': 'current_offset', 'value': 0.5}],
                                    'load': {'kind': 'external'}})
    model = PackModel.from_profile(path)
    m = model.measured()
    assert np.isnan(m['cell_voltages_v'][3]) and m['pack_current_a'] == pytest.approx(0.5)


# ----------------------------------------------------------------- external demand, W and A

def test_power_demand_on_an_external_load_expires_to_amps_not_to_its_watts(lfp_pack):
    # the slip: set_demand_power stored the watts in the external load, which holds amps, so
    # after demand_timeout_s a 1.5 kW discharge became a -1500 A demand
    model = ideal(lfp_pack, load=ExternalLoad(0.0), demand_timeout_s=2.0)
    close_main(model)
    model.set_demand_power(-1500.0)
    model.advance(1.0)
    assert model.pack_current_a * model.pack_voltage_v == pytest.approx(-1500.0, rel=1e-3)
    assert -35.0 < model.pack_current_a < -25.0          # 1.5 kW at ~53 V
    model.advance(2.0)                                   # expired: back to the load's 0 A
    assert model.pack_current_a == 0.0
    assert model.load.current_a(model.sim_time_s) == 0.0


def test_current_demand_on_an_external_load_is_held_by_the_load(lfp_pack):
    model = ideal(lfp_pack, load=ExternalLoad(0.0), demand_timeout_s=2.0)
    close_main(model)
    model.set_demand(-12.0)
    model.set_demand_power(-1000.0)       # a power demand after it leaves the load at -12 A
    model.advance(0.5)
    assert model.pack_current_a == pytest.approx(-1000.0 / model.pack_voltage_v, rel=1e-3)
    model.clear_demand()
    model.advance(0.1)
    assert model.pack_current_a == -12.0


# ----------------------------------------------------------------- command timeouts

def watched(pack, time_scale=1.0, **overrides):
    """A model with its CommandWatchdog (timeouts 0.5 s contactors, 5 s balancing, bus s)."""
    model = ideal(pack, step_s=0.001, **overrides)
    return model, CommandWatchdog(model, time_scale)


def run_to_bus_time(model, watchdog, bus_s):
    """Advance the model in 5 ms bus steps to ``bus_s``, checking like the node's tick."""
    events = []
    while watchdog.bus_time_s < bus_s - 1e-9:
        model.advance(min(0.005, bus_s - watchdog.bus_time_s) * watchdog.time_scale)
        events += watchdog.check()
    return events


def test_contactors_open_after_the_command_timeout_not_before(lfp_pack):
    model, watchdog = watched(lfp_pack, load=ConstantLoad(-10.0))
    assert watchdog.contactor_timeout_s == 0.5
    watchdog.contactor_command(True, False, True)
    run_to_bus_time(model, watchdog, 0.1)
    watchdog.contactor_command(True, False, True)       # the last command at bus 0.1 s
    assert run_to_bus_time(model, watchdog, 0.595) == []
    assert model.negative_contactor_closed and model.positive_contactor_closed
    assert model.pack_current_a == -10.0
    events = run_to_bus_time(model, watchdog, 0.61)
    assert model.contactors_commanded == (False, False, False)
    assert watchdog.contactor_timeouts == 1
    assert [level for level, _ in events] == ['warning']
    assert 'no contactor command for 0.50' in events[0][1]
    assert 'opening negative, positive' in events[0][1]
    run_to_bus_time(model, watchdog, 0.65)               # + opening delay 0.02 s
    assert not (model.negative_contactor_closed or model.positive_contactor_closed)
    assert model.pack_current_a == 0.0
    # stays open, counted once, while no command comes
    assert run_to_bus_time(model, watchdog, 3.0) == []
    assert watchdog.contactor_timeouts == 1 and not model.negative_contactor_closed


def test_a_fresh_close_command_after_the_timeout_is_obeyed(lfp_pack):
    model, watchdog = watched(lfp_pack)
    watchdog.contactor_command(True, False, True)
    run_to_bus_time(model, watchdog, 1.0)
    assert model.contactors_commanded == (False, False, False)
    watchdog.contactor_command(True, False, True)
    run_to_bus_time(model, watchdog, 1.1)
    assert model.negative_contactor_closed and model.positive_contactor_closed
    run_to_bus_time(model, watchdog, 1.7)                # and its own timeout again
    assert not model.negative_contactor_closed and watchdog.contactor_timeouts == 2


def test_repeated_commands_keep_the_contactors_closed(lfp_pack):
    model, watchdog = watched(lfp_pack)
    for k in range(1, 40):                               # every 0.1 s for 4 s, as the driver
        watchdog.contactor_command(True, False, True)
        assert run_to_bus_time(model, watchdog, 0.1 * k) == []
    assert model.negative_contactor_closed and watchdog.contactor_timeouts == 0


def test_command_timeout_runs_on_bus_time_simulated_over_time_scale(lfp_pack):
    model, watchdog = watched(lfp_pack, time_scale=20.0)
    watchdog.contactor_command(True, False, True)
    model.advance(9.8)                                   # 0.49 bus s
    assert watchdog.check() == [] and model.contactors_commanded == (True, True, False)
    model.advance(0.4)                                   # 0.51 bus s
    assert watchdog.check()[0][0] == 'warning'
    assert model.contactors_commanded == (False, False, False)
    assert watchdog.bus_time_s == pytest.approx(10.2 / 20.0)


def test_with_a_wall_clock_a_slipped_simulation_does_not_delay_the_command_timeout(lfp_pack):
    # the node's case: its tick thread held 0.4 s, the pacer lets simulated time slip, but a
    # contactor controller's timer runs on; on bus time the timeout would come 0.4 s late
    wall = [0.0]
    model = ideal(lfp_pack, step_s=0.001, load=ConstantLoad(-10.0))
    watchdog = CommandWatchdog(model, 1.0, clock=lambda: wall[0])
    watchdog.contactor_command(True, False, True)
    model.advance(0.1)
    wall[0] = 0.5               # held: 0.4 s of wall time, the simulation did not follow
    assert watchdog.check() == [] and watchdog.bus_time_s == pytest.approx(0.1)
    wall[0] = 0.51
    assert [level for level, _ in watchdog.check()] == ['warning']
    assert model.contactors_commanded == (False, False, False)
    model.advance(0.03)         # the opening delay, on the model's clock
    assert not (model.negative_contactor_closed or model.positive_contactor_closed)
    assert watchdog.bus_time_s < 0.5 * watchdog.contactor_timeout_s


def test_no_timeout_before_the_first_command_and_none_counted_when_already_open(lfp_pack):
    model, watchdog = watched(lfp_pack)
    assert run_to_bus_time(model, watchdog, 2.0) == []
    watchdog.contactor_command(False, False, False)
    events = run_to_bus_time(model, watchdog, 3.0)
    assert [level for level, _ in events] == ['info']
    assert watchdog.contactor_timeouts == 0 and watchdog.contactor_silences == 1


def test_bleeding_stops_after_the_balancing_timeout(lfp_pack):
    model, watchdog = watched(lfp_pack)
    assert watchdog.balancing_timeout_s == 5.0
    bleed = np.zeros(16, dtype=bool)
    bleed[[2, 9]] = True
    watchdog.balancing_command(bleed)
    assert run_to_bus_time(model, watchdog, 4.99) == []
    assert model.bleed.tolist() == bleed.tolist()
    events = run_to_bus_time(model, watchdog, 5.01)
    assert not model.bleed.any() and watchdog.balancing_timeouts == 1
    assert 'bleeding of 2 cells stopped' in events[0][1]
    assert not model.measured()['cell_balancing'].any()
    watchdog.balancing_command(bleed)                    # a new command bleeds again
    assert model.bleed.sum() == 2
    with pytest.raises(ValueError, match='expected 16 values'):
        watchdog.balancing_command([True])


def test_command_timeout_must_span_two_command_periods(lfp_pack):
    config = SimulatorConfig(contactor_command_timeout_s=0.15)
    check_command_timeout(config, None, 'p.yaml')        # no repeat period: nothing to check
    check_command_timeout(SimulatorConfig(), 0.1, 'p.yaml')
    with pytest.raises(ConfigError) as info:
        check_command_timeout(config, 0.1, 'p.yaml')
    assert info.value.field == 'simulator.contactors.command_timeout_s'
    assert 'must be >= 2 x the contactor command period' in info.value.problem


@pytest.mark.parametrize('simulator, field, problem', [
    ({'contactors': {'command_timeout_s': 0.0}}, 'simulator.contactors.command_timeout_s',
     'expected a number > 0.0, got 0.0'),
    ({'contactors': {'command_timeout_s': 'x'}}, 'simulator.contactors.command_timeout_s',
     "expected a number, got 'x'"),
    ({'balancing_command_timeout_s': -1.0}, 'simulator.balancing_command_timeout_s',
     'expected a number > 0.0, got -1.0'),
])
def test_command_timeout_fields_are_validated(tmp_path, simulator, field, problem):
    path = _profile_with(tmp_path, simulator)
    with pytest.raises(ConfigError) as info:
        PackModel.from_profile(path)
    assert (info.value.path, info.value.field) == (path, field)
    assert problem in info.value.problem


def test_shipped_profiles_have_the_command_timeouts():
    for path in (LFP_PROFILE, NMC_PROFILE):
        config = PackModel.from_profile(path).config
        assert config.contactor_command_timeout_s == 0.5
        assert config.balancing_command_timeout_s == 5.0


def test_the_pacer_follows_the_wall_clock_and_slips_instead_of_bursting():
    from bms_ros.core.pack_model.pacing import RealTimePacer, next_tick_s
    pacer = RealTimePacer(wall_start_s=100.0, sim_start_s=0.0, time_scale=2.0, step_s=0.01,
                          max_work_s=0.05)
    assert pacer.due_s(100.01, 0.0) == (pytest.approx(0.02), False)   # 2 x the wall time
    # a 1 s stall: at most 0.05 x 2 + one step of simulation, time slips (reported once)
    assert pacer.due_s(101.0, 0.02) == (pytest.approx(0.11), True)
    assert pacer.slipped_s == pytest.approx((2.0 - 0.02 - 0.11) / 2.0)   # wall s, for the log
    assert pacer.due_s(101.0, 0.13) == (pytest.approx(0.0), False)    # caught up, no burst
    assert pacer.due_s(101.01, 0.13) == (pytest.approx(0.02), False)
    assert next_tick_s(10.0, 10.005, 0.01) == pytest.approx(10.01)      # on time
    assert next_tick_s(10.0, 11.0, 0.01) == 11.0                        # after a stall: now
