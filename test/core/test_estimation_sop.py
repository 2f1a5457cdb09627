"""State of power: current limits respect voltage, SoC, current and temperature limits."""
import dataclasses

import numpy as np
import pytest

from bms_ros.core.cell import CellSpec
from bms_ros.core.estimation import Derating, EstimatorConfig
from bms_ros.core.estimation.state_of_power import current_limits, pack_limits
from bms_ros.core.estimation.synthetic import EcmCells
from bms_ros.core.profile import config_dir


@pytest.fixture(scope='module')
def nmc():
    return CellSpec.from_file(f'{config_dir()}/cells/nmc_lg_m50.yaml')


def limits(cell, soc, horizon_s=10.0, temperature=25.0, config=None, v_rc=0.0, r0_factor=1.0):
    soc = np.atleast_1d(np.asarray(soc, dtype=float))
    return current_limits(cell, config or EstimatorConfig(), horizon_s, soc,
                          np.full(soc.size, v_rc), np.full(soc.size, r0_factor * cell.r0_ohm),
                          np.full(soc.size, cell.capacity_ah),
                          np.full(soc.size, temperature, dtype=float))


def voltage_after(cell, soc, current_a, horizon_s, r0_factor=1.0):
    """Terminal voltage of the 1-RC model after holding current_a for horizon_s."""
    truth = EcmCells(cell, [soc], r0_ohm=r0_factor * cell.r0_ohm)
    for _ in range(int(horizon_s / 0.05)):
        truth.step(0.05, current_a)
    return float(truth.voltage_v()[0])


@pytest.mark.parametrize('soc,r0_factor', [(0.02, 3.0), (0.05, 4.0), (0.1, 6.0), (0.3, 8.0)])
def test_discharge_limit_reaches_voltage_min(nmc, soc, r0_factor):
    """Held over the horizon, the limit takes the cell to v_min (here not current-limited)."""
    _, discharge = limits(nmc, soc, r0_factor=r0_factor)
    d = discharge[0]
    assert 0.0 < d < nmc.limits.discharge_current_max_a
    assert voltage_after(nmc, soc, -d, 10.0, r0_factor) == pytest.approx(
        nmc.limits.voltage_min_v, abs=0.01)


def test_discharge_limit_at_mid_soc_is_the_current_limit(nmc):
    _, discharge = limits(nmc, 0.5)
    assert discharge[0] == pytest.approx(nmc.limits.discharge_current_max_a)
    assert voltage_after(nmc, 0.5, -discharge[0], 10.0) > nmc.limits.voltage_min_v


@pytest.mark.parametrize('soc', [0.97, 0.99, 0.995])
def test_charge_limit_reaches_voltage_max(nmc, soc):
    charge, _ = limits(nmc, soc)
    c = charge[0]
    assert 0.0 < c < nmc.limits.charge_current_max_a
    assert voltage_after(nmc, soc, c, 10.0) == pytest.approx(nmc.limits.voltage_max_v, abs=0.01)


def test_ends_of_soc_give_zero(nmc):
    charge, discharge = limits(nmc, [1.0, 0.0])
    assert charge[0] == 0.0
    assert discharge[1] == 0.0


def test_current_limits_cap(nmc):
    charge, discharge = limits(nmc, 0.5)
    assert charge[0] <= nmc.limits.charge_current_max_a
    assert discharge[0] == pytest.approx(nmc.limits.discharge_current_max_a)


def test_long_horizon_is_not_larger(nmc):
    socs = np.linspace(0.05, 0.95, 19)
    c_short, d_short = limits(nmc, socs, 2.0)
    c_long, d_long = limits(nmc, socs, 10.0)
    assert (c_long <= c_short + 1e-9).all() and (d_long <= d_short + 1e-9).all()


def test_temperature_window_and_derating(nmc):
    charge, discharge = limits(nmc, [0.5], temperature=-5.0)
    assert charge[0] == 0.0 and discharge[0] > 0.0         # no charging below 0 degC
    charge, discharge = limits(nmc, [0.5], temperature=70.0)
    assert charge[0] == 0.0 and discharge[0] == 0.0        # above both windows
    table = Derating((0.0, 10.0, 40.0), (0.2, 0.5, 0.5), (1.0, 1.0, 0.5))
    cfg = dataclasses.replace(EstimatorConfig(), derating=table)
    base_c, base_d = limits(nmc, [0.5], temperature=40.0)
    charge, discharge = limits(nmc, [0.5], temperature=40.0, config=cfg)
    assert charge[0] == pytest.approx(0.5 * base_c[0])
    assert discharge[0] == pytest.approx(0.5 * base_d[0])


def test_unknown_temperature_gives_zero(nmc):
    charge, discharge = limits(nmc, [0.5], temperature=float('nan'))
    assert charge[0] == 0.0 and discharge[0] == 0.0


def test_pack_limit_is_minimum(nmc):
    charge, discharge = limits(nmc, [0.2, 0.5, 0.96])
    c, d = pack_limits(charge, discharge)
    assert c == pytest.approx(charge[2]) and d == pytest.approx(discharge[0])
    assert pack_limits(np.array([]), np.array([])) == (0.0, 0.0)
