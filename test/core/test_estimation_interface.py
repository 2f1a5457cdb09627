"""ROS-free message helpers: measurement checks, temperatures, BatteryState enumerations."""
import math
import types

import numpy as np
import pytest

from bms_ros.core.estimation import interface

NAN = float('nan')


def check(**change):
    args = dict(cells=3, sensors=2, cell_voltages_v=[3.7] * 3, cell_voltage_valid=[True] * 3,
                temperatures_degc=[25.0, 26.0], temperature_valid=[True, True],
                pack_current_a=-1.0, current_stale=False, age_s=0.1, timeout_s=2.0)
    args.update(change)
    return interface.check_measurement(**args)


def test_accepts_a_good_measurement():
    assert check() is None
    assert check(age_s=None) is None
    assert check(cell_voltage_valid=[True, False, True]) is None     # invalid cells are skipped


@pytest.mark.parametrize('change,reason', [
    ({'cell_voltages_v': [3.7] * 4}, 'cell_voltages_v has 4 values, expected 3'),
    ({'cell_voltage_valid': [True]}, 'cell_voltage_valid has 1'),
    ({'temperatures_degc': [25.0]}, 'temperatures_degc has 1'),
    ({'temperature_valid': [True] * 3}, 'temperature_valid has 3'),
    ({'pack_current_a': NAN}, 'not a number'),
    ({'current_stale': True}, 'stale'),
    ({'age_s': 5.0}, '5.0 s old'),
    ({'cell_voltages_v': [NAN] * 3, 'temperatures_degc': [NAN, NAN]}, 'NaN only'),
])
def test_rejects(change, reason):
    assert reason in check(**change)


def test_cell_temperatures_map_sensors():
    t = interface.cell_temperatures([0, 0, 1, 1], [20.0, 30.0], [True, False])
    assert t[:2].tolist() == [20.0, 20.0] and np.isnan(t[2:]).all()
    worst = interface.limit_temperatures(np.array([20.0, 40.0, NAN]))
    assert worst.tolist() == [20.0, 40.0, 40.0]
    assert np.isnan(interface.limit_temperatures(np.array([NAN, NAN]))).all()


def test_power_supply_status():
    f = interface.power_supply_status
    assert f(5.0, 0.5, 0.5, 0.98) == 'CHARGING'
    assert f(-5.0, 0.5, 0.5, 0.98) == 'DISCHARGING'
    assert f(0.1, 0.5, 0.5, 0.98) == 'NOT_CHARGING'
    assert f(0.1, 0.99, 0.5, 0.98) == 'FULL'
    assert f(-5.0, 0.5, 0.5, 0.98, contactors_closed=False) == 'NOT_CHARGING'
    assert f(-5.0, 0.5, 0.5, 0.98, measured=False) == 'UNKNOWN'
    assert f(math.nan, 0.5, 0.5, 0.98) == 'UNKNOWN'


def test_power_supply_health():
    f = interface.power_supply_health
    assert f(None) == 'UNKNOWN'
    assert f([]) == 'GOOD'
    assert f([('cell_overvoltage', 1)]) == 'GOOD'                    # a warning only
    assert f([('discharge_overtemperature', 3)]) == 'OVERHEAT'
    assert f([('charge_undertemperature', 2)]) == 'COLD'
    assert f([('cell_overvoltage', 3)]) == 'OVERVOLTAGE'
    assert f([('cell_undervoltage', 3)]) == 'DEAD'
    assert f([('stale_measurement', 3)]) == 'UNSPEC_FAILURE'
    assert f([('stale_measurement', 3), ('charge_overtemperature', 3)]) == 'OVERHEAT'


def test_technology():
    assert interface.TECHNOLOGY['LFP'] == 'LIFE' and interface.TECHNOLOGY['NMC'] == 'LION'


class RecordingEstimator:
    """Stands in for PackEstimator: records what step_from_measurement hands it."""

    def __init__(self):
        self.steps, self.zero_currents = [], []

    def step(self, *args):
        self.steps.append(args)

    def zero_current(self, current_a, dt_s):
        self.zero_currents.append((current_a, dt_s))


def message(**change):
    """A PackMeasurement-shaped object (3 cells, 2 sensors), as a ROS or rosbags message."""
    fields = dict(cell_voltages_v=[3.3, 3.4, 3.5], cell_voltage_valid=[True, True, False],
                  temperatures_degc=[20.0, 30.0], temperature_valid=[True, True],
                  pack_current_a=-2.0, current_stale=False, cell_voltages_stale=False,
                  temperatures_stale=False, cell_balancing=[False, True, True],
                  negative_contactor_closed=True, positive_contactor_closed=True,
                  contactors_stale=False)
    fields.update(change)
    return types.SimpleNamespace(**fields)


def test_measurement_reject_reason_checks_fields_and_time():
    f = interface.measurement_reject_reason
    assert f(message(), 3, 2, 1.0, None, 0.1, 2.0) is None
    assert f(message(), 3, 2, 1.0, 0.5, None, 2.0) is None
    assert f(message(), 3, 2, 1.0, 1.0, None, 2.0) == 'time stamp does not advance'
    assert 'stale' in f(message(current_stale=True), 3, 2, 1.0, None, None, 2.0)
    assert 'expected 3' in f(message(cell_voltages_v=[3.3]), 3, 2, 1.0, None, None, 2.0)


def test_step_from_measurement_masks_bleeds_and_calibrates_zero_current():
    est = RecordingEstimator()
    valid, temp = interface.step_from_measurement(est, message(), 2.0, 1.5, [0, 0, 1], 10.0)
    assert valid.tolist() == [True, True, False] and temp.tolist() == [20.0, 20.0, 30.0]
    t_s, current, volts, used, limit_temp, bleed = est.steps[-1]
    assert (t_s, current) == (2.0, -2.0) and used.tolist() == valid.tolist()
    assert bleed == pytest.approx([0.0, -0.34, 0.0])      # only valid balancing cells bleed
    assert limit_temp.tolist() == [20.0, 20.0, 30.0] and not est.zero_currents
    # stale groups are invalid; open contactors (fresh feedback): the current is the offset
    valid, temp = interface.step_from_measurement(
        est, message(cell_voltages_stale=True, temperature_valid=[False, True],
                     negative_contactor_closed=False, positive_contactor_closed=False),
        2.5, 2.0, [0, 0, 1], 10.0)
    assert not valid.any() and np.isnan(temp[:2]).all() and temp[2] == 30.0
    assert est.zero_currents == [(-2.0, 0.5)]
    assert est.steps[-1][4].tolist() == [30.0, 30.0, 30.0]   # unmeasured: the worst sensor
    interface.step_from_measurement(est, message(negative_contactor_closed=False,
                                                 positive_contactor_closed=False,
                                                 contactors_stale=True), 3.0, 2.5, [0, 0, 1], 10.0)
    interface.step_from_measurement(est, message(negative_contactor_closed=False,
                                                 positive_contactor_closed=False), 3.5, None,
                                    [0, 0, 1], 10.0)
    assert len(est.zero_currents) == 1    # not with stale feedback, nor on the first one
