"""SocFilter / PackEstimator SoC tracking on a 1-RC truth (the filter's own model class)."""
import numpy as np
import pytest

from bms_ros.core.cell import CellSpec
from bms_ros.core.estimation import EstimatorConfig, PackEstimator
from bms_ros.core.estimation.synthetic import EcmCells
from bms_ros.core.profile import config_dir

NMC = f'{config_dir()}/cells/nmc_lg_m50.yaml'
LFP = f'{config_dir()}/cells/lfp_a123_anr26650.yaml'


@pytest.fixture(scope='module')
def nmc():
    return CellSpec.from_file(NMC)


def run(estimator, truth, current_a, seconds, dt_s=1.0, t0=0.0, noise_v=0.0, rng=None,
        valid=None):
    """Drive truth and estimator together; returns the time of the last step."""
    n = truth.soc.size
    valid = np.ones(n, dtype=bool) if valid is None else valid
    t = t0
    for _ in range(int(seconds / dt_s)):
        t += dt_s
        i = current_a(t) if callable(current_a) else current_a
        truth.step(dt_s, i)
        v = truth.voltage_v()
        if noise_v:
            v = v + rng.normal(0.0, noise_v, n)
        estimator.step(t, i, v, valid, truth.temperature_degc)
    return t


def test_tracks_constant_discharge_from_ocv(nmc):
    truth = EcmCells(nmc, [0.9])
    est = PackEstimator(nmc, 1, EstimatorConfig())
    est.step(0.0, 0.0, truth.voltage_v(), [True], [25.0])       # at rest: OCV start
    assert est.filter.soc[0] == pytest.approx(0.9, abs=0.005)
    run(est, truth, -2.5, 3600.0)                                # 0.5 C for an hour
    assert truth.soc[0] == pytest.approx(0.4, abs=1e-6)
    assert abs(est.filter.soc[0] - truth.soc[0]) < 0.01


def test_converges_from_20_percent_wrong_soc(nmc):
    rng = np.random.default_rng(3)
    truth = EcmCells(nmc, [0.7])
    est = PackEstimator(nmc, 1, EstimatorConfig())
    est.start_from_soc(0.5)
    run(est, truth, lambda t: -5.0 if int(t / 30) % 2 else -1.0, 120.0, noise_v=0.002, rng=rng)
    assert abs(est.filter.soc[0] - truth.soc[0]) < 0.02


def test_batch_equals_independent_filters(nmc):
    """The cells of a batch are independent small filters: batching changes nothing."""
    socs = [0.3, 0.6, 0.9]
    batch_truth = EcmCells(nmc, socs, capacity_ah=[5.0, 4.5, 5.2], r0_ohm=[0.02, 0.03, 0.025])
    batch = PackEstimator(nmc, 3, EstimatorConfig())
    batch.start_from_soc([0.35, 0.5, 0.95])
    run(batch, batch_truth, lambda t: -4.0 if int(t / 20) % 2 else 1.0, 600.0)
    for k, z in enumerate(socs):
        truth = EcmCells(nmc, [z], capacity_ah=[[5.0, 4.5, 5.2][k]],
                         r0_ohm=[[0.02, 0.03, 0.025][k]])
        single = PackEstimator(nmc, 1, EstimatorConfig())
        single.start_from_soc([[0.35, 0.5, 0.95][k]])
        run(single, truth, lambda t: -4.0 if int(t / 20) % 2 else 1.0, 600.0)
        assert single.filter.soc[0] == pytest.approx(batch.filter.soc[k], abs=1e-9)
        assert single.resistance.r0_ohm[0] == pytest.approx(batch.resistance.r0_ohm[k], abs=1e-12)


def test_invalid_cell_only_predicts(nmc):
    truth = EcmCells(nmc, [0.8, 0.8])
    est = PackEstimator(nmc, 2, EstimatorConfig())
    est.step(0.0, 0.0, truth.voltage_v(), [True, True], [25.0, 25.0])
    # cell 1's voltage reads nonsense but is flagged invalid: it must not move its SoC
    t = 0.0
    for _ in range(600):
        t += 1.0
        truth.step(1.0, -5.0)
        v = truth.voltage_v()
        v[1] = 2.6
        est.step(t, -5.0, v, [True, False], [25.0, 25.0])
    counted = 0.8 - 600 * 5.0 / 3600 / nmc.capacity_ah
    assert est.filter.soc[1] == pytest.approx(counted, abs=0.005)
    assert abs(est.filter.soc[0] - truth.soc[0]) < 0.01


def test_nan_voltage_is_skipped(nmc):
    truth = EcmCells(nmc, [0.5])
    est = PackEstimator(nmc, 1, EstimatorConfig())
    est.step(0.0, 0.0, truth.voltage_v(), [True], [25.0])
    truth.step(1.0, -5.0)
    est.step(1.0, -5.0, [float('nan')], [True], [float('nan')])
    assert np.isfinite(est.filter.x).all() and np.isfinite(est.filter.P).all()


def test_time_must_advance(nmc):
    est = PackEstimator(nmc, 1, EstimatorConfig())
    assert est.step(1.0, 0.0, [3.7], [True], [25.0])
    assert not est.step(1.0, -5.0, [3.6], [True], [25.0])
    assert not est.step(0.5, -5.0, [3.6], [True], [25.0])


def test_covariance_stays_symmetric_positive(nmc):
    rng = np.random.default_rng(1)
    truth = EcmCells(nmc, [0.95, 0.5, 0.1])
    est = PackEstimator(nmc, 3, EstimatorConfig())
    run(est, truth, lambda t: 3.0 * np.sin(t / 40.0) - 1.0, 1800.0, noise_v=0.003, rng=rng)
    P = est.filter.P
    assert np.allclose(P, P.transpose(0, 2, 1))
    assert (np.linalg.eigvalsh(P) > -1e-12).all()


def test_bleed_current_is_counted_per_cell(nmc):
    """A bleeding cell loses its bleed current on top of the pack current."""
    est = PackEstimator(nmc, 2, EstimatorConfig())
    truth = EcmCells(nmc, [0.6, 0.6])
    est.step(0.0, 0.0, truth.voltage_v(), [False, False], [25.0, 25.0])
    est.start_from_soc([0.6, 0.6], 0.001)
    t = 0.0
    for _ in range(3600):
        t += 1.0
        est.step(t, 0.0, truth.voltage_v(), [False, False], [25.0, 25.0], [0.0, -0.5])
    assert est.filter.soc[0] == pytest.approx(0.6, abs=1e-6)
    assert est.filter.soc[1] == pytest.approx(0.6 - 0.5 / nmc.capacity_ah, abs=1e-3)


def test_lfp_plateau_holds_coulomb_count():
    """On LFP's flat OCV the voltage carries little SoC information; the filter must not be
    dragged by 1 mV of noise and keeps the coulomb count.
    """
    lfp = CellSpec.from_file(LFP)
    rng = np.random.default_rng(2)
    truth = EcmCells(lfp, [0.6])
    est = PackEstimator(lfp, 1, EstimatorConfig())
    est.start_from_soc(0.6, 0.01)
    run(est, truth, -2.3, 1800.0, noise_v=0.001, rng=rng)
    assert abs(est.filter.soc[0] - truth.soc[0]) < 0.01


@pytest.mark.parametrize('follows', [False, True])
def test_fast_pair_time_constant_at_temperature(nmc, follows):
    """tau1_follows_temperature: the fast pair relaxes with tau1 x R(T)/R(25 degC) (its
    capacitance held), in the filter's prediction and in the state of power's model alike.
    """
    from bms_ros.core.estimation.soc_filter import VRC, SocFilter
    from bms_ros.core.estimation.state_of_power import predicted_voltage_v
    config = EstimatorConfig(tau1_follows_temperature=follows)
    temps = np.array([10.0, 25.0, 45.0])
    f = SocFilter(nmc, 3, config)
    f.initialise(0.5, 0.01)
    factor = f.arrhenius(temps)
    f.x[:, VRC] = 0.05
    f.predict(10.0, np.zeros(3), temps)
    tau = nmc.tau1_s * (factor if follows else 1.0)
    assert f.x[:, VRC] == pytest.approx(0.05 * np.exp(-10.0 / tau), rel=1e-9)
    if follows:       # colder: slower (R1 C1 with R1 x 1.7 at 10 degC, 0.53 at 45 degC)
        assert f.x[0, VRC] > f.x[1, VRC] > f.x[2, VRC]
    # state of power: after 10 s at zero current what is left of v_rc is the same
    v = predicted_voltage_v(nmc, config, 10.0, np.zeros(3), np.full(3, 0.5), np.full(3, 0.05),
                            nmc.r0_ohm, np.full(3, nmc.capacity_ah), temps,
                            tau1_s=f.tau1_s(factor) if follows else None)
    expected = nmc.ocv.ocv(np.full(3, 0.5), temps) + 0.05 * np.exp(-10.0 / tau)
    assert v == pytest.approx(expected, abs=1e-12)
