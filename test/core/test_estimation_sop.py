"""State of power: current limits respect voltage, SoC, current and temperature limits."""
import dataclasses

import numpy as np
import pytest

from bms_ros.core.cell import CellSpec
from bms_ros.core.estimation import Derating, EstimatorConfig, PackEstimator
from bms_ros.core.estimation.resistance import KELVIN, T_REF_K
from bms_ros.core.estimation.state_of_power import (
    current_limits,
    horizon_limits,
    pack_limits,
    predicted_voltage_v,
)
from bms_ros.core.estimation.synthetic import EcmCells, drive_together
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


# ------------------------------------------------------------ learnt R0 and law (issue 14)
HORIZON_S = 10.0


def unlimited(cell, activation_k=None):
    """The cell with current limits far above what its voltage allows (voltage-bound limits)."""
    limits = dataclasses.replace(cell.limits, charge_current_max_a=1000.0,
                                 discharge_current_max_a=1000.0)
    return dataclasses.replace(cell, limits=limits, r0_arrhenius_k=(
        cell.r0_arrhenius_k if activation_k is None else activation_k))


def truth_discharge_limit(truth, k, horizon_s=HORIZON_S):
    """The exact discharge current (A) that takes 1-RC truth cell k to voltage_min_v after
    ``horizon_s`` at constant current (bisection on the model's own equations).
    """
    cell = truth.cell
    factor = float(cell.r0_at(truth.temperature_degc[k]) / cell.r0_ohm)
    a = np.exp(-horizon_s / cell.tau1_s)
    resistance = (truth.r0_ohm[k] + cell.r1_ohm * (1.0 - a)) * factor

    def voltage(i):
        soc = truth.soc[k] - horizon_s * i / (3600.0 * truth.capacity_ah[k])
        return float(cell.ocv.ocv(soc, truth.temperature_degc[k])) + a * truth.v_rc_v[k] \
            - resistance * i

    low, high = 0.0, 1000.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if voltage(mid) > cell.limits.voltage_min_v else (low, mid)
    return 0.5 * (low + high)


def drive(truth, est, seconds, t0_s=0.0, temperature=25.0, seed=5):
    """Current pulses (1 C and 0.2 C discharge, 0.3 C charge, 10 s each) at 10 Hz, 1 mV noise."""
    rng = np.random.default_rng(seed)
    n = truth.soc.size
    c = truth.cell.capacity_ah
    pattern = (-1.0 * c, -0.2 * c, 0.3 * c)
    t = t0_s
    for k in range(int(seconds * 10)):
        current = pattern[(k // 100) % 3]
        truth.step(0.1, current)
        t += 0.1
        est.step(t, current, truth.voltage_v() + rng.normal(0.0, 0.001, n), np.ones(n, bool),
                 np.full(n, temperature))
    return t


def test_learnt_r0_twice_the_datasheet_lowers_the_discharge_limit(nmc):
    """R0 learnt online on cells whose true R0 and R1 are 2x the datasheet's (30 min of
    pulses): the discharge limits are the true cells' (per cell over the short horizon, the pack
    over the long one) within 4 % (measured +1.6-1.7 % (2 s), +0.3 % (10 s): the filter's SoC
    and RC voltages after the pulses; it also holds a slow pair that this 1-RC truth lacks), and
    about half those of a datasheet-R0 cell in the same state.
    """
    cell = unlimited(nmc)
    cfg = EstimatorConfig()
    n = 4
    # ageing raises R1 with R0 (the filter's r1_follows_r0): the truth's R1 doubled too
    aged = EcmCells(dataclasses.replace(cell, r1_ohm=2.0 * cell.r1_ohm), np.full(n, 0.6),
                    r0_ohm=2.0 * cell.r0_ohm)
    est = PackEstimator(cell, n, cfg)
    est.start_from_soc(0.6, 0.01)                 # a known SoC: the test is about R0
    drive(aged, est, 1800.0)
    learnt = est.estimate()
    # the learnt R0 (resistance's own tests cover how well; here: it is the aged one)
    assert learnt.cell_r0_ohm == pytest.approx(2.0 * cell.r0_ohm, rel=0.03)
    fresh = EcmCells(cell, aged.soc.copy(), r0_ohm=cell.r0_ohm)
    fresh.v_rc_v = aged.v_rc_v.copy()
    for k in range(n):
        expected = truth_discharge_limit(aged, k, cfg.horizon_short_s)
        assert learnt.cell_discharge_current_limit_a[k] == pytest.approx(expected, rel=0.04)
        # a datasheet-R0 cell in the same state may draw ~1.8x as much
        assert truth_discharge_limit(fresh, k, cfg.horizon_short_s) \
            > 1.6 * learnt.cell_discharge_current_limit_a[k]
    expected_pack = min(truth_discharge_limit(aged, k, cfg.horizon_long_s) for k in range(n))
    assert learnt.discharge_current_limit_long_a == pytest.approx(expected_pack, rel=0.04)


def law_sums(n, r0_25_ohm, activation_k, temperatures_degc=(5.0, 45.0), weight=1e4):
    """Temperature-law sums (as persisted) of heavy samples that follow R0 = r0_25 f_k(T)."""
    sums = np.zeros((5, n))
    for t in temperatures_degc:
        x = 1.0 / (t + KELVIN) - 1.0 / T_REF_K
        y = np.log(r0_25_ohm) + activation_k * x
        sums += np.array([[weight], [weight * x], [weight * y], [weight * x * x],
                          [weight * x * y]])
    return sums


def test_learnt_law_and_r0_set_the_limit_at_5_degc(nmc):
    """Restored R0 2x the datasheet's and a learnt law (Ea/R 6000 K against the datasheet's
    3000 K): at 5 degC the discharge limits are the true cell's within 0.5 % (the state is
    exact here; R0 and R1 (2x the datasheet's, as the filter scales R1 with the learnt R0) both
    by the learnt law: with the datasheet law for R1, as before,
    they were 1.1 % (2 s) and 4.4 % (10 s) too high). The truth has no slow pair, so the
    filter is told so (its r_diff starts at 0; with the default prior R1 the 10 s limit is
    0.8 % lower).
    """
    cell = unlimited(nmc)
    n = 3
    # R1 2x as R0 (the filter scales it with the learnt R0: r1_follows_r0)
    truth_cell = dataclasses.replace(unlimited(nmc, activation_k=6000.0), r1_ohm=2.0 * nmc.r1_ohm)
    truth = EcmCells(truth_cell, [0.3, 0.5, 0.8], r0_ohm=2.0 * cell.r0_ohm, temperature_degc=5.0)
    # the truth (EcmCells) holds tau1 at every temperature, so the filter is told so
    est = PackEstimator(cell, n, dataclasses.replace(EstimatorConfig(),
                                                     diffusion_resistance_ratio=0.0,
                                                     tau1_follows_temperature=False))
    est.restore(truth.soc, np.full(n, cell.capacity_ah), np.full(n, 0.01 * cell.capacity_ah),
                np.full(n, 2.0 * cell.r0_ohm), age_s=0.0)
    est.resistance.law.restore(law_sums(n, 2.0 * cell.r0_ohm, 6000.0))
    assert est.resistance.law.activation_k == pytest.approx(6000.0, rel=0.01)
    # one sample at rest (the start reads it as OCV), then the limits
    est.step(1.0, 0.0, truth.voltage_v(), np.ones(n, bool), np.full(n, 5.0))
    estimate = est.estimate()
    cfg = est.config
    for k in range(n):
        assert estimate.cell_discharge_current_limit_a[k] == pytest.approx(
            truth_discharge_limit(truth, k, cfg.horizon_short_s), rel=0.005)
    assert estimate.discharge_current_limit_long_a == pytest.approx(
        truth_discharge_limit(truth, 0, cfg.horizon_long_s), rel=0.005)    # cell 0: lowest SoC


# ------------------------------------------------- both RC pairs, each with its own time constant
@pytest.mark.parametrize('name', ['nmc_lg_m50', 'lfp_a123_anr26650', 'nca_kim2011'])
def test_limit_held_for_the_horizon_ends_at_the_voltage_limit(name):
    """Analytic check of the solve: the limit current held for the horizon never takes the
    model (fast pair, slow pair relaxing with diffusion_time_s through its own r_diff) beyond
    the voltage limit (by 0.01 mV at most), and wherever the voltage decides it ends within
    10 mV of it (median within 0.1 mV). Before the false-position step the second secant pass
    overshot at the knees: LFP 10 s discharge up to 79 mV below voltage_min_v.
    """
    cell = CellSpec.from_file(f'{config_dir()}/cells/{name}.yaml')
    cfg = EstimatorConfig()
    rng = np.random.default_rng(4)
    n = 400
    soc = rng.uniform(0.01, 0.99, n)
    v_rc = rng.normal(0.0, 0.02, n)
    v_diff = rng.normal(0.0, 0.04, n)
    r0 = cell.r0_ohm * rng.uniform(0.5, 3.0, n)
    r1 = cell.r1_ohm * rng.uniform(0.5, 2.0, n)
    r_diff = cell.r1_ohm * rng.uniform(0.0, 5.0, n)
    q = np.full(n, cell.capacity_ah)
    t = np.full(n, 25.0)
    lim = cell.limits
    voltage_bound = 0
    for horizon, (charge, discharge) in zip((2.0, 10.0), horizon_limits(
            cell, cfg, (2.0, 10.0), soc, v_rc, r0, q, t, r1_ohm=r1, v_diff_v=v_diff,
            r_diff_ohm=r_diff)):
        for current, bound, sign, current_max in (
                (charge, lim.voltage_max_v, 1.0, lim.charge_current_max_a),
                (-discharge, lim.voltage_min_v, -1.0, lim.discharge_current_max_a)):
            v = predicted_voltage_v(cell, cfg, horizon, current, soc, v_rc, r0, q, t,
                                    r1_ohm=r1, v_diff_v=v_diff, r_diff_ohm=r_diff)
            # (a zero limit where the relaxation alone already crosses the limit is allowed)
            assert np.all(sign * (v - bound)[current != 0.0] <= 1e-5)
            # voltage-bound: not 0, below the current limit, the SoC window not reached
            end = soc + horizon * current / (3600.0 * q)
            by_voltage = (np.abs(current) > 0.0) & (np.abs(current) < current_max - 1e-9) & \
                (end > 0.0) & (end < 1.0)
            voltage_bound += int(by_voltage.sum())
            if by_voltage.any():
                np.testing.assert_allclose(v[by_voltage], bound, atol=0.01)
                assert np.median(np.abs(v[by_voltage] - bound)) <= 1e-4
    assert voltage_bound >= 10


def test_slow_pair_lowers_the_limits_after_sustained_discharge(nmc):
    """After minutes of discharge the slow pair holds a negative v_diff that relaxes with its
    own ~300 s (not tau1) and takes the step through r_diff: the discharge limit is lower than
    the one that relaxed it with tau1, by what the model says at 10 s.
    """
    cell = unlimited(nmc)
    cfg = EstimatorConfig()
    soc, v_rc, v_diff = np.array([0.2]), np.array([-0.02]), np.array([-0.05])
    r0, r_diff = np.array([cell.r0_ohm]), np.array([2.0 * cell.r1_ohm])
    q, t = np.array([cell.capacity_ah]), np.array([25.0])
    _, with_pair = current_limits(cell, cfg, 10.0, soc, v_rc, r0, q, t, v_diff_v=v_diff,
                                  r_diff_ohm=r_diff)
    _, fast_only = current_limits(cell, cfg, 10.0, soc, v_rc + v_diff, r0, q, t)
    assert with_pair[0] < 0.97 * fast_only[0]             # measured 4.4 % lower
    v = predicted_voltage_v(cell, cfg, 10.0, -fast_only, soc, v_rc, r0, q, t, v_diff_v=v_diff,
                            r_diff_ohm=r_diff)
    assert v[0] < cell.limits.voltage_min_v - 0.03       # the old limit: 43 mV beyond v_min
    v = predicted_voltage_v(cell, cfg, 10.0, -with_pair, soc, v_rc, r0, q, t, v_diff_v=v_diff,
                            r_diff_ohm=r_diff)
    assert v[0] == pytest.approx(cell.limits.voltage_min_v, abs=1e-4)


def test_limits_hold_the_voltage_the_model_leaves_unexplained(nmc):
    """A cell below the model while discharging (the empty knee's surface bend, which the SoC
    filter leaves out of the SoC) keeps that gap over the horizon: a lower discharge limit that
    ends at voltage_min_v; the gap never widens the other direction's limit.
    """
    cell = unlimited(nmc)
    cfg = EstimatorConfig()
    soc, v_rc, r0 = np.array([0.2]), np.array([-0.01]), np.array([cell.r0_ohm])
    q, t = np.array([cell.capacity_ah]), np.array([25.0])
    (charge, discharge), = horizon_limits(cell, cfg, (10.0,), soc, v_rc, r0, q, t)
    for residual in (-0.05, 0.05):
        res = np.array([residual])
        (c, d), = horizon_limits(cell, cfg, (10.0,), soc, v_rc, r0, q, t, residual_v=res)
        if residual < 0.0:
            assert d[0] < 0.95 * discharge[0] and c[0] == charge[0]
            v = predicted_voltage_v(cell, cfg, 10.0, -d, soc, v_rc, r0, q, t, residual_v=res)
            assert v[0] == pytest.approx(cell.limits.voltage_min_v, abs=1e-4)
        else:
            assert c[0] < 0.95 * charge[0] and d[0] == discharge[0]


def test_estimator_learns_the_unexplained_voltage_for_its_limits():
    """PackEstimator at the empty knee (Mohtat2020, SoC 0.1, 1 C): a voltage 50 mV below the
    model, which the surface doubt leaves out of the SoC, is the residual (about -44 mV after
    60 s) and lowers the discharge limit against ``sop_residual`` off.
    """
    cell = unlimited(CellSpec.from_file(f'{config_dir()}/cells/nmc532_mohtat2020.yaml'))
    out = {}
    for on in (True, False):
        cfg = dataclasses.replace(EstimatorConfig(), sop_residual=on)
        truth = EcmCells(cell, [0.1])
        est = PackEstimator(cell, 1, cfg)
        est.start_from_soc(0.1, 0.01)
        drive_together(est, truth, -cell.capacity_ah, 60, bias_v=-0.05)
        assert abs(est.filter.soc[0] - truth.soc[0]) < 0.001     # the SoC is not pulled
        out[on] = (float(est.voltage_residual_v[0]), est.estimate().discharge_current_limit_a)
    assert out[True][0] < -0.035 and out[False][0] == 0.0
    assert out[True][1] < 0.97 * out[False][1]
