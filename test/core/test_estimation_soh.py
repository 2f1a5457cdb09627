"""SoH: R0 by RLS on current steps, capacity from OCV anchors and counted charge."""
import numpy as np
import pytest

from bms_ros.core.cell import CellSpec
from bms_ros.core.estimation import EstimatorConfig, PackEstimator
from bms_ros.core.estimation.soc_filter import OFFSET, QINV
from bms_ros.core.estimation.soh import CapacityEstimator, ResistanceEstimator
from bms_ros.core.estimation.synthetic import EcmCells
from bms_ros.core.profile import config_dir


@pytest.fixture(scope='module')
def nmc():
    return CellSpec.from_file(f'{config_dir()}/cells/nmc_lg_m50.yaml')


def test_r0_converges_on_steps(nmc):
    """Noisy voltage, true R0 1.6x datasheet on one cell, 1.0x on the other."""
    rng = np.random.default_rng(4)
    truth = EcmCells(nmc, [0.7, 0.7], r0_ohm=[1.6 * nmc.r0_ohm, nmc.r0_ohm])
    est = PackEstimator(nmc, 2, EstimatorConfig())
    est.step(0.0, 0.0, truth.voltage_v(), [True, True], [25.0, 25.0])
    t = 0.0
    for k in range(1200):
        t += 1.0
        i = -5.0 if (k // 10) % 2 else 0.0
        truth.step(1.0, i)
        est.step(t, i, truth.voltage_v() + rng.normal(0, 0.002, 2), [True, True], [25.0, 25.0])
    assert est.resistance.r0_ohm[0] == pytest.approx(1.6 * nmc.r0_ohm, rel=0.05)
    assert est.resistance.r0_ohm[1] == pytest.approx(nmc.r0_ohm, rel=0.05)
    assert est.estimate().soh_resistance == pytest.approx(1.3, rel=0.05)


def test_r0_is_normalised_to_25_degc(nmc):
    """At 0 degC the measured dV/dI is the Arrhenius factor higher; R0 reported at 25 degC."""
    truth = EcmCells(nmc, [0.6], temperature_degc=0.0)
    est = PackEstimator(nmc, 1, EstimatorConfig())
    est.step(0.0, 0.0, truth.voltage_v(), [True], [0.0])
    t = 0.0
    for k in range(600):
        t += 1.0
        i = -5.0 if (k // 10) % 2 else 0.0
        truth.step(1.0, i)
        est.step(t, i, truth.voltage_v(), [True], [0.0])
    assert est.resistance.r0_ohm[0] == pytest.approx(nmc.r0_ohm, rel=0.03)


def test_r0_ignores_small_steps(nmc):
    r = ResistanceEstimator(nmc, 1, EstimatorConfig())
    r.remember(np.array([0.0]), 0.0, 25.0, [True])
    r.update(np.array([0.01]), 0.1, 25.0, [True])     # 0.1 A step, 100 mOhm: below 0.1 C
    assert r.r0_ohm[0] == nmc.r0_ohm


def test_capacity_from_two_anchors(nmc):
    cfg = EstimatorConfig()
    cap = CapacityEstimator(nmc, 2, cfg)
    cap.anchor(np.array([1.0, 1.0]), 0.003, [True, True])
    true_q = np.array([4.25, 5.1])
    # discharge 0.8 of each cell's true capacity, in 1 s steps at -2 A (cell 1 +0.5 A bleed...)
    steps = 3600
    current = -0.8 * true_q * 3600 / steps
    for _ in range(steps):
        cap.count(1.0, current, 0.01, 0.0)
    changed = cap.anchor(np.array([0.2, 0.2]), 0.003, [True, True])
    assert changed.all()
    assert cap.capacity_ah == pytest.approx(true_q, rel=0.01)
    assert (cap.std_ah < 0.05 * true_q).all()


def test_capacity_skips_close_anchors_and_keeps_the_better_anchor(nmc):
    cap = CapacityEstimator(nmc, 1, EstimatorConfig())
    cap.anchor(np.array([1.0]), 0.003, [True])
    for _ in range(100):
        cap.count(36.0, -1.0, 0.01, 0.0)                 # -1 Ah
    # a plateau-like anchor of large doubt, 0.1 away: no capacity, old anchor kept
    assert not cap.anchor(np.array([0.8]), 0.2, [True]).any()
    assert cap.anchor_soc[0] == 1.0
    for _ in range(300):
        cap.count(36.0, -1.0, 0.01, 0.0)                 # -3 Ah more, -4 Ah in all
    assert cap.anchor(np.array([0.2]), 0.003, [True]).all()
    assert cap.capacity_ah[0] == pytest.approx(5.0, rel=0.01)


def test_capacity_rejects_implausible(nmc):
    cap = CapacityEstimator(nmc, 1, EstimatorConfig())
    cap.anchor(np.array([1.0]), 0.003, [True])
    cap.count(3600.0, -0.5, 0.01, 0.0)                 # 0.5 Ah for a 0.8 SoC drop: 0.6 Ah cell
    assert not cap.anchor(np.array([0.2]), 0.003, [True]).any()
    assert cap.capacity_ah[0] == nmc.capacity_ah


def test_faded_cell_capacity_over_a_cycle(nmc):
    """Full -> rest -> empty -> rest -> full on a 1-RC truth with 85 % capacity: within 3 %."""
    truth = EcmCells(nmc, [1.0, 1.0], capacity_ah=[0.85 * nmc.capacity_ah, nmc.capacity_ah])
    est = PackEstimator(nmc, 2, EstimatorConfig())
    t = 0.0
    est.step(t, 0.0, truth.voltage_v(), [True, True], [25.0, 25.0])

    def hold(current_a, seconds):
        nonlocal t
        for _ in range(int(seconds / 2)):
            t += 2.0
            truth.step(2.0, current_a)
            est.step(t, current_a, truth.voltage_v(), [True, True], [25.0, 25.0])

    hold(-2.5, 3600 * 0.85 * 0.9 * nmc.capacity_ah / 2.5)   # to ~10 % of the faded cell
    hold(0.0, 900.0)
    hold(2.5, 3600 * 0.85 * 0.85 * nmc.capacity_ah / 2.5)
    hold(0.0, 900.0)
    q = est.estimate().cell_capacity_ah
    assert q[0] == pytest.approx(0.85 * nmc.capacity_ah, rel=0.03)
    assert q[1] == pytest.approx(nmc.capacity_ah, rel=0.03)
    assert est.estimate().soh_capacity == pytest.approx(0.85, abs=0.03)


def test_capacity_offset_sensitivity_matches_a_shifted_current(nmc):
    """A capacity learnt from counted charge moves with the current offset by
    offset_sensitivity_h (Ah per A): checked against the same cycle counted with the offset
    shifted by 50 mA, and carried into the filter as a capacity/offset covariance."""
    def learnt(offset_a):
        cap = CapacityEstimator(nmc, 1, EstimatorConfig())
        cap.anchor(np.array([1.0]), 0.003, [True])
        for _ in range(3600):
            cap.count(1.0, -4.0 - offset_a, 0.01, 0.0)     # counted = measured - offset
        assert cap.anchor(np.array([0.2]), 0.003, [True]).all()
        return cap

    base, shifted = learnt(0.0), learnt(0.05)
    sensitivity = base.offset_sensitivity_h[0]
    assert sensitivity > 0.5                               # ~1 h / 0.8 x the fusion gain
    assert shifted.capacity_ah[0] - base.capacity_ah[0] == pytest.approx(0.05 * sensitivity,
                                                                         rel=0.02)

    est = PackEstimator(nmc, 1, EstimatorConfig())
    est.filter.initialise(np.array([0.5]), 0.05)
    est.filter.set_capacity(base.capacity_ah, base.std_ah, [True], base.offset_sensitivity_h)
    P = est.filter.P[0]
    assert P[QINV, OFFSET] == P[OFFSET, QINV] < 0.0        # more offset -> more capacity
    assert np.all(np.linalg.eigvalsh(P) > -1e-15)          # still a covariance
    assert abs(P[QINV, OFFSET]) < np.sqrt(P[QINV, QINV] * P[OFFSET, OFFSET])
