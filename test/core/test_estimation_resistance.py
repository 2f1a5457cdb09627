"""The temperature law of R0 learnt online (resistance.TemperatureLaw), its persistence and
its settings.
"""
import dataclasses
import json

import numpy as np
import pytest

from bms_ros.core.cell import CellSpec, arrhenius_factor
from bms_ros.core.config import Section
from bms_ros.core.errors import ConfigError, PersistenceError
from bms_ros.core.estimation import EstimatorConfig, PackEstimator, stored_state
from bms_ros.core.estimation.synthetic import EcmCells
from bms_ros.core.profile import config_dir

R0_FACTORS = np.array([1.0, 1.1, 1.2, 0.9])      # the cells' own ageing (truth)


@pytest.fixture(scope='module')
def nmc():
    return CellSpec.from_file(f'{config_dir()}/cells/nmc_lg_m50.yaml')


def sweep(cell, true_cell, temperature_of, seconds=7200.0, dt_s=2.0, config=None, seed=3,
          noise_degc=0.3):
    """Current steps of 0.5-1.5 C every 10 s on 4 cells whose R0 follows ``true_cell``'s
    law, at the temperatures ``temperature_of(t_s)`` (degC, measured +- noise_degc).
    """
    n = R0_FACTORS.size
    rng = np.random.default_rng(seed)
    truth = EcmCells(true_cell, np.full(n, 0.6), r0_ohm=cell.r0_ohm * R0_FACTORS)
    est = PackEstimator(cell, n, config or EstimatorConfig())
    c_a = cell.capacity_ah
    for k in range(int(seconds / dt_s)):
        t = (k + 1) * dt_s
        truth.temperature_degc[:] = temperature_of(t)
        current = (-1.0 if (k // 5) % 2 else 1.0) * 0.5 * c_a * (1 + (k // 10) % 3)
        truth.step(dt_s, current)
        volts = truth.voltage_v() + rng.normal(0.0, 0.001, n)
        measured = truth.temperature_degc + rng.normal(0.0, noise_degc, n)
        est.step(t, current, volts, np.ones(n, dtype=bool), measured)
    return est, truth


def test_learns_an_activation_energy_twice_the_datasheet(nmc):
    true_cell = dataclasses.replace(nmc, r0_arrhenius_k=2.0 * nmc.r0_arrhenius_k)
    est, _ = sweep(nmc, true_cell, lambda t: 5.0 + 40.0 * t / 7200.0)
    law = est.resistance.law
    assert law.learnt
    # tolerance: 10 % of Ea/R (the datasheet is off by 100 %)
    assert law.activation_k == pytest.approx(true_cell.r0_arrhenius_k, rel=0.10)
    # R0 reported at 25 degC by the learnt law: each cell's own R0 within 6 % (the 1-RC
    # response within a 2 s sample reads as ~4 % more R0)
    assert est.resistance.r0_ohm == pytest.approx(nmc.r0_ohm * R0_FACTORS, rel=0.06)
    # the filter's resistances use the same law
    assert est.filter.arrhenius(0.0) == pytest.approx(
        float(arrhenius_factor(0.0, law.activation_k)))


def test_datasheet_law_without_a_temperature_span(nmc):
    true_cell = dataclasses.replace(nmc, r0_arrhenius_k=2.0 * nmc.r0_arrhenius_k)
    est, _ = sweep(nmc, true_cell, lambda t: 10.0, seconds=1800.0)
    law = est.resistance.law
    assert law.samples > 100                      # samples were taken, the span is not there
    assert law.span_degc() < 1.0
    assert not law.learnt
    assert law.activation_k == nmc.r0_arrhenius_k
    assert est.resistance.at(10.0) / est.resistance.r0_ohm == pytest.approx(
        float(nmc.r0_at(10.0) / nmc.r0_ohm))


def test_nan_temperatures_are_rejected(nmc):
    true_cell = dataclasses.replace(nmc, r0_arrhenius_k=2.0 * nmc.r0_arrhenius_k)
    est, _ = sweep(nmc, true_cell, lambda t: 5.0 + 40.0 * t / 600.0, seconds=600.0,
                   noise_degc=float('nan'))
    law = est.resistance.law
    assert law.samples == 0 and not law.learnt
    assert law.activation_k == nmc.r0_arrhenius_k
    assert np.all(np.isfinite(est.filter.soc)) and np.all(np.isfinite(est.resistance.r0_ohm))
    # a direct sample: NaN or implausible temperatures and non-positive R0 give no point
    assert law.observe([np.nan, 200.0, 25.0, 25.0], [0.02, 0.02, -0.01, np.nan],
                       np.full(4, 5.0), np.ones(4, dtype=bool)) is None
    assert law.samples == 0


def test_learning_off_keeps_the_datasheet_law(nmc):
    true_cell = dataclasses.replace(nmc, r0_arrhenius_k=2.0 * nmc.r0_arrhenius_k)
    est, _ = sweep(nmc, true_cell, lambda t: 5.0 + 40.0 * t / 1800.0, seconds=1800.0,
                   config=EstimatorConfig(r0_law_learn=False))
    assert est.resistance.law.activation_k == nmc.r0_arrhenius_k


def test_law_is_persisted_and_old_files_are_read(nmc, tmp_path):
    true_cell = dataclasses.replace(nmc, r0_arrhenius_k=2.0 * nmc.r0_arrhenius_k)
    est, _ = sweep(nmc, true_cell, lambda t: 5.0 + 40.0 * t / 3600.0, seconds=3600.0)
    k = est.resistance.law.activation_k
    assert k != nmc.r0_arrhenius_k
    path = tmp_path / 'state.json'
    stored_state.save(path, est, 'pack_a')
    fresh = PackEstimator(nmc, 4, EstimatorConfig())
    assert stored_state.load(path, fresh, 'pack_a')
    assert fresh.resistance.law.activation_k == pytest.approx(k, rel=1e-9)
    assert fresh.resistance.r0_ohm == pytest.approx(est.resistance.r0_ohm)
    # a file written before the law was learnt: read, the datasheet law
    doc = json.loads(path.read_text())
    for key in ('r0_law_activation_k', 'r0_law_sums'):
        del doc[key]
    path.write_text(json.dumps(doc))
    old = PackEstimator(nmc, 4, EstimatorConfig())
    assert stored_state.load(path, old, 'pack_a')
    assert old.resistance.law.activation_k == nmc.r0_arrhenius_k
    # bad sums: refused with the field named, nothing restored
    for bad, message in (([[1.0] * 4] * 4, 'r0_law_sums'),
                         ([[-1.0] * 4] + [[0.0] * 4] * 4, 'negative weight'),
                         ([[1.0] * 4] * 4 + [[1.0, 'x', 1.0, 1.0]], r'r0_law_sums\[4\]\[1\]')):
        doc['r0_law_sums'] = bad
        path.write_text(json.dumps(doc))
        refused = PackEstimator(nmc, 4, EstimatorConfig())
        with pytest.raises(PersistenceError, match=message):
            stored_state.load(path, refused, 'pack_a')
        assert not refused.filter.initialised.any()


@pytest.mark.parametrize('data,field', [
    ({'r0_law_forgetting': 0.5}, 'estimator.r0_law_forgetting'),
    ({'r0_law_min_span_degc': 0.0}, 'estimator.r0_law_min_span_degc'),
    ({'r0_law_learn': 'yes'}, 'estimator.r0_law_learn'),
    ({'r0_law_activation_min_k': 5000.0, 'r0_law_activation_max_k': 4000.0},
     'estimator.r0_law_activation_max_k'),
])
def test_law_settings_are_validated(data, field):
    with pytest.raises(ConfigError) as info:
        EstimatorConfig.from_section(Section(data, 'profile.yaml', 'estimator'))
    assert field in str(info.value)


def r0_after_steps(cell, slope_v, steps=200, r0_seen_ohm=None, dt_s=2.0):
    """R0 (ohm) learnt from +-1 C steps whose dV/dI reads ``r0_seen_ohm`` where the OCV slope
    is ``slope_v`` (V per unit SoC).
    """
    from bms_ros.core.estimation.resistance import ResistanceEstimator
    r = ResistanceEstimator(cell, 1, EstimatorConfig())
    slope = np.array([slope_v])
    for k in range(steps):
        i = cell.capacity_ah * (1.0 if k % 2 else -1.0)
        y = np.array([r0_seen_ohm * i])
        r.update(y, i, 1.0, [True], slope_v=lambda: slope, dt_s=dt_s)
        r.remember(y, i, 1.0, [True])
    return float(r.r0_ohm[0])


def test_r0_steps_in_a_knee_weigh_little(nmc):
    """A step's dV/dI in a knee holds the OCV slope x the surface SoC's jump: where the OCV is
    flat R0 follows the steps, where it is steep (10 V per unit) they hardly move it.
    """
    seen = 1.4 * nmc.r0_ohm
    assert r0_after_steps(nmc, 0.5, r0_seen_ohm=seen) == pytest.approx(seen, rel=0.02)
    knee = r0_after_steps(nmc, 10.0, steps=20, r0_seen_ohm=seen)
    flat = r0_after_steps(nmc, 0.5, steps=20, r0_seen_ohm=seen)
    assert knee - nmc.r0_ohm < 0.25 * (flat - nmc.r0_ohm)
    off = dataclasses.replace(EstimatorConfig(), r0_surface_doubt=0.0)
    from bms_ros.core.estimation.resistance import ResistanceEstimator
    r = ResistanceEstimator(nmc, 1, off)
    assert r.surface_jump_per_a == 0.0
