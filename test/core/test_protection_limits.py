"""Protection limits: the shipped profiles load, follow the cell data sheets, and bad values
are refused with errors naming the file and field.
"""
import copy
import os

import numpy as np
import pytest

from bms_ros.core.config import Section
from bms_ros.core.errors import ConfigError
from bms_ros.core.profile import Profile, config_dir
from bms_ros.core.protection import CATALOG, load_protection_config
from bms_ros.core.protection.limits import FlagLimit, RangeLimit, TimeCurrentLimit

PROFILES = [os.path.join(config_dir(), 'profiles', name)
            for name in ('lfp_16s.yaml', 'nmc_96s.yaml')]


def _profile(path=PROFILES[0]):
    return Profile(path)


@pytest.mark.parametrize('path', PROFILES)
def test_shipped_profiles_follow_their_cell_data_sheets(path):
    profile = _profile(path)
    config = load_protection_config(profile.section('protection'), profile.pack)
    assert [limit.limit_id for limit in config.limits] == [entry.limit_id for entry in CATALOG]
    cell = profile.pack.cell.limits          # one series group: currents x cells_parallel
    n = profile.pack.cells_series
    lim = config.limit
    # the trip (MSL) levels sit on the data sheet values, as foxBMS sets its MSL
    assert lim('cell_undervoltage').trip == cell.voltage_min_v
    assert cell.voltage_max_v <= lim('cell_overvoltage').trip <= cell.voltage_max_v + 0.15
    assert lim('charge_overtemperature').trip == cell.charge_temperature_max_degc
    assert lim('charge_undertemperature').trip == cell.charge_temperature_min_degc
    assert lim('discharge_overtemperature').trip == cell.discharge_temperature_max_degc
    assert lim('discharge_undertemperature').trip == cell.discharge_temperature_min_degc
    # continuous current ratings are the alarm (RSL) level; the curve starts above them
    assert lim('charge_overcurrent').alarm == pytest.approx(cell.charge_current_max_a, rel=0.01)
    assert lim('discharge_overcurrent').alarm == pytest.approx(cell.discharge_current_max_a,
                                                              rel=0.01)
    assert config.charge_current_max_a == pytest.approx(cell.charge_current_max_a, rel=0.01)
    # pack voltage levels are the cell levels times the series count
    for pack_id, cell_id in (('pack_overvoltage', 'cell_overvoltage'),
                             ('pack_undervoltage', 'cell_undervoltage')):
        assert lim(pack_id).thresholds == pytest.approx(n * lim(cell_id).thresholds, rel=0.005)
    for limit in config.limits:
        if isinstance(limit, FlagLimit):
            continue
        t = limit.thresholds
        assert np.all(np.diff(t) > 0) if limit.high else np.all(np.diff(t) < 0), limit.limit_id
    assert isinstance(lim('discharge_overcurrent'), TimeCurrentLimit)
    assert isinstance(lim('cell_voltage_out_of_range'), RangeLimit)


def test_time_current_curve_interpolates_log_log():
    profile = _profile()
    limit = load_protection_config(profile.section('protection'), profile.pack).limit(
        'discharge_overcurrent')            # 550 A: 60 s, 1200 A: 10 s
    assert float(limit.allowed_time_s(550.0)) == pytest.approx(60.0)
    assert float(limit.allowed_time_s(1200.0)) == pytest.approx(10.0)
    # log-log: t = 60 * (I / 550) ** (ln(10/60) / ln(1200/550))
    slope = np.log(10.0 / 60.0) / np.log(1200.0 / 550.0)
    assert float(limit.allowed_time_s(800.0)) == pytest.approx(60.0 * (800 / 550) ** slope)
    assert float(limit.allowed_time_s(1400.0)) == pytest.approx(10.0)   # held past the last point
    assert np.isinf(limit.allowed_time_s(540.0))


def _edit(change):
    profile = _profile()
    data = copy.deepcopy(profile.section('protection').data)
    change(data)
    return Section(data, 'p.yaml', 'protection'), profile.pack


def _set(path, value):
    def change(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        if value is None:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return change


@pytest.mark.parametrize('path, value, message', [
    (('cell_overvoltage', 'alarm_v'), 3.6,
     'protection.cell_overvoltage.alarm_v: must be above warning_v (3.62), got 3.6'),
    (('cell_overvoltage', 'trip_v'), 3.65,
     'protection.cell_overvoltage.trip_v: must be above alarm_v (3.65), got 3.65'),
    (('cell_undervoltage', 'alarm_v'), 2.6,
     'protection.cell_undervoltage.alarm_v: must be below warning_v (2.5), got 2.6'),
    (('cell_undervoltage', 'trip_v'), 2.3,
     'protection.cell_undervoltage.trip_v: must be below alarm_v (2.2), got 2.3'),
    (('cell_voltage_spread', 'hysteresis_v'), 0.1,
     'protection.cell_voltage_spread.hysteresis_v: warning_v - hysteresis must stay above 0 or '
     'the warning never clears, got 0.1 - 0.1'),
    (('stale_measurement', 'warning_s'), 0.0,
     'protection.stale_measurement.hysteresis_s: warning_s - hysteresis must stay above 0 or '
     'the warning never clears, got 0.0 - 0.05'),
    (('cell_overvoltage', 'hysteresis_v'), -0.1,
     'protection.cell_overvoltage.hysteresis_v: expected a number >= 0.0, got -0.1'),
    (('cell_overvoltage', 'debounce_s'), None,
     'protection.cell_overvoltage.debounce_s: missing required field'),
    (('cell_overvoltage', 'warning_degc'), 3.0,
     'protection.cell_overvoltage.warning_degc: unknown field (known: alarm_v, debounce_s, '
     'hysteresis_v, release_s, reset_cooldown_s, trip_v, warning_v)'),
    (('charge_overtemperature', 'trip_degc'), 'hot',
     "protection.charge_overtemperature.trip_degc: expected a number, got 'hot'"),
    (('discharge_overcurrent', 'curve_current_a'), [1200.0, 550.0],
     'protection.discharge_overcurrent.curve_current_a: expected strictly increasing values'),
    (('discharge_overcurrent', 'curve_time_s'), [10.0, 60.0],
     'protection.discharge_overcurrent.curve_time_s: expected strictly decreasing times '
     '(more current, less time)'),
    (('discharge_overcurrent', 'curve_time_s'), [60.0],
     'protection.discharge_overcurrent.curve_time_s: expected 2 values, got 1'),
    (('discharge_overcurrent', 'curve_time_s'), [60.0, 0.0],
     'protection.discharge_overcurrent.curve_time_s: expected times > 0'),
    (('discharge_overcurrent', 'curve_current_a'), [400.0, 1200.0],
     'protection.discharge_overcurrent.curve_current_a: must start at or above alarm_a (500.0), '
     'got 400.0'),
    (('discharge_overcurrent', 'curve_current_a'), [550.0, 1600.0],
     'protection.discharge_overcurrent.curve_current_a: must end at or below trip_a (1500.0), '
     'got 1600.0'),
    (('cell_voltage_invalid', 'level'), 'fatal',
     "protection.cell_voltage_invalid.level: expected one of alarm, trip, warning, got 'fatal'"),
    (('cell_voltage_out_of_range', 'min_v'), 6.0,
     'protection.cell_voltage_out_of_range.min_v: must be below max_v (5.0)'),
    (('cell_voltage_out_of_range', 'min_degc'), 6.0,
     'protection.cell_voltage_out_of_range.min_degc: unknown field (known: debounce_s, level, '
     'max_v, min_v, release_s, reset_cooldown_s)'),
    (('temperature_rate_window_s',), 0.0,
     'protection.temperature_rate_window_s: expected a number > 0.0, got 0.0'),
    (('cell_overvoltag',), {},
     'protection.cell_overvoltag: unknown field (known: cell_overvoltage, cell_undervoltage, '),
    (('cell_overvoltage',), None, 'protection.cell_overvoltage: missing required field'),
])
def test_bad_protection_values_name_file_and_field(path, value, message):
    section, pack = _edit(_set(path, value))
    with pytest.raises(ConfigError) as info:
        load_protection_config(section, pack)
    assert str(info.value).startswith(f'p.yaml: {message}')


@pytest.mark.parametrize('limit_id, suffix', [('cell_voltage_spread', 'v'),
                                               ('stale_measurement', 's')])
def test_no_hysteresis_and_no_release_time_is_refused(limit_id, suffix):
    def change(data):
        data[limit_id].update({f'hysteresis_{suffix}': 0.0, 'release_s': 0.0})
    section, pack = _edit(change)
    with pytest.raises(ConfigError) as info:
        load_protection_config(section, pack)
    assert str(info.value).startswith(
        f'p.yaml: protection.{limit_id}.release_s: with hysteresis_{suffix} 0 a level needs '
        'release_s > 0 (or a hysteresis), or it chatters on noise')
    # either one is enough
    section, pack = _edit(lambda data: data[limit_id].update({f'hysteresis_{suffix}': 0.0,
                                                              'release_s': 0.5}))
    assert load_protection_config(section, pack).limit(limit_id).hysteresis == 0.0


def test_defaults_of_operating_fields():
    section, pack = _edit(lambda data: [data.pop(k) for k in (
        'temperature_rate_window_s', 'startup_grace_s', 'charge_current_max_a',
        'discharge_current_max_a', 'estimate_timeout_s', 'status_period_s',
        'diagnostics_period_s')])
    config = load_protection_config(section, pack)
    assert config.charge_current_max_a == pytest.approx(100.0)    # 10 A x 10 p
    assert config.discharge_current_max_a == pytest.approx(500.0)  # 50 A x 10 p
    assert (config.temperature_rate_window_s, config.startup_grace_s) == (10.0, 10.0)
