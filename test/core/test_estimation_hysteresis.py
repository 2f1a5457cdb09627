"""OCV hysteresis (estimation.hysteresis): the state, the cell file's section, the wiring into
the estimator (a 1-RC truth), and the DFN cases of bench/validation/make_hysteresis.py (test
half only, bounded by test/fixtures/pybamm/hysteresis_baseline.json).
"""
import dataclasses
import json
import math
import os

import numpy as np
import pytest
import yaml

from bench import estimation_hysteresis as eh
from bms_ros.core.cell import CellSpec
from bms_ros.core.errors import ConfigError
from bms_ros.core.estimation import EstimatorConfig, PackEstimator
from bms_ros.core.estimation.hysteresis import OcvHysteresis
from bms_ros.core.estimation.synthetic import EcmCells
from bms_ros.core.profile import config_dir
from bms_ros.tools.estimate_csv import load_config

CELLS = os.path.join(config_dir(), 'cells')


@pytest.fixture(scope='module')
def lfp():
    return CellSpec.from_file(os.path.join(CELLS, 'lfp_a123_anr26650_hysteresis.yaml'))


def test_state_follows_the_charge_passed(lfp):
    """From an unknown start (doubt M), 30 % charged sets h to 1 - exp(-rate x 0.3); at rest it
    holds; 5 % discharged moves it the other way by the same law; the doubt left is the half
    gap's share and how far a rate 4x off would have taken h.
    """
    cfg = EstimatorConfig()
    hys = OcvHysteresis(lfp, 1, cfg)
    m, rate = lfp.hysteresis_v, lfp.hysteresis_rate
    assert (m, rate) == (0.012, 15.0)
    assert hys.doubt_v()[0] == pytest.approx(m)
    q_as = 3600.0 * lfp.capacity_ah
    for _ in range(300):                                 # 0.3 of SoC charged in 300 s
        hys.step(1.0, np.array([0.3 * q_as / 300.0]))
    h = 1.0 - math.exp(-rate * 0.3)
    assert hys.h[0] == pytest.approx(h, rel=1e-6)
    assert hys.voltage_v()[0] == pytest.approx(m * h, rel=1e-6)
    hys.step(3600.0, np.array([0.0]))
    assert hys.h[0] == pytest.approx(h, rel=1e-6)
    for _ in range(50):                                  # 0.05 discharged
        hys.step(1.0, np.array([-0.05 * q_as / 50.0]))
    h = -1.0 + (h + 1.0) * math.exp(-rate * 0.05)
    assert hys.h[0] == pytest.approx(h, rel=1e-6)
    slow = 1.0 - math.exp(-rate / cfg.hysteresis_rate_factor * 0.3)
    slow = -1.0 + (slow + 1.0) * math.exp(-rate / cfg.hysteresis_rate_factor * 0.05)
    fast_rate = rate * cfg.hysteresis_rate_factor
    fast = -1.0 + (2.0 - math.exp(-fast_rate * 0.3)) * math.exp(-fast_rate * 0.05)
    rate_h = max(abs(slow - h), abs(fast - h))
    unknown = math.exp(-rate * 0.35)
    assert hys.doubt_v()[0] == pytest.approx(
        m * math.sqrt(unknown ** 2 + (cfg.hysteresis_doubt * h) ** 2 + rate_h ** 2), rel=1e-6)


def test_no_section_no_hysteresis():
    cell = CellSpec.from_file(os.path.join(CELLS, 'lfp_a123_anr26650.yaml'))
    hys = OcvHysteresis(cell, 2, EstimatorConfig())
    hys.step(10.0, np.array([5.0, -5.0]))
    assert not hys.active
    assert (hys.voltage_v() == 0.0).all() and (hys.doubt_v() == 0.0).all()


@pytest.mark.parametrize('section, field', [
    ({'half_gap_v': -0.01, 'rate_per_soc': 15.0}, 'half_gap_v'),
    ({'half_gap_v': 0.01, 'rate_per_soc': 0.0}, 'rate_per_soc'),
    ({'half_gap_v': 0.01, 'rate_per_soc': 15.0, 'gap': 1}, 'gap'),
])
def test_cell_file_section_is_validated(tmp_path, section, field):
    with open(os.path.join(CELLS, 'lfp_a123_anr26650_hysteresis.yaml')) as stream:
        doc = yaml.safe_load(stream)
    doc['ocv_hysteresis'] = section
    doc['ocv_table'] = os.path.join(config_dir(), 'ocv', 'lfp_a123_anr26650.csv')
    path = tmp_path / 'cell.yaml'
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as error:
        CellSpec.from_file(path)
    assert field in str(error.value) and 'cell.yaml' in str(error.value)


def test_hysteresis_cell_file_is_the_matrix_cell_plus_its_section():
    docs = []
    for name in ('lfp_a123_anr26650.yaml', 'lfp_a123_anr26650_hysteresis.yaml'):
        with open(os.path.join(CELLS, name)) as stream:
            docs.append(yaml.safe_load(stream))
    assert docs[1].pop('ocv_hysteresis') == {'half_gap_v': 0.012, 'rate_per_soc': 15.0}
    assert docs[0] == docs[1]


def _charge_then_rest(cell, truth_half_gap_v, config):
    """A 1-RC truth at 40 % whose OCV lies M above the table after a charge (its own law: the
    branch switches after 3 % of SoC passed one way); 0.5 C to 60 %, then 1 h at rest.
    """
    truth = EcmCells(cell, [0.4])
    est = PackEstimator(cell, 1, config)
    t, passed, valid, temp = 0.0, 0.0, np.ones(1, dtype=bool), np.full(1, 25.0)
    est.step(t, 0.0, truth.voltage_v() - truth_half_gap_v, valid, temp)   # after a discharge
    current = 0.5 * cell.capacity_ah
    while truth.soc[0] < 0.6:
        t += 2.0
        truth.step(2.0, current)
        passed += 2.0 * current / (3600.0 * cell.capacity_ah)
        h = -1.0 + 2.0 * min(passed / 0.03, 1.0)
        est.step(t, current, truth.voltage_v() + truth_half_gap_v * h, valid, temp)
    for _ in range(1800):
        t += 2.0
        truth.step(2.0, 0.0)
        est.step(t, 0.0, truth.voltage_v() + truth_half_gap_v, valid, temp)
    return est.estimate().cell_soc[0], truth.soc[0]


def test_a_rest_after_a_charge_is_read_below_its_voltage(lfp):
    """10 mV of hysteresis on the plateau, no initial SoC: a start at rest after a discharge
    (the voltage M below the table), then a rest after a charge (M above). With the model the
    start is doubted by M (h unknown) and the rest read M lower: within 4 points (3.6, the
    plateau start's doubt). Without the section both are read as OCV: the rest anchor takes the
    SoC more than 6 points high (9.3). With a sure count neither moves (the plateau's band).
    """
    config, _ = load_config(cell_path=lfp.path)      # the cell file's estimator section
    soc, truth = _charge_then_rest(lfp, 0.010, config)
    assert abs(soc - truth) < 0.04
    plain = dataclasses.replace(lfp, hysteresis_v=0.0)
    soc_plain, _ = _charge_then_rest(plain, 0.010, config)
    assert soc_plain - truth > 0.06


# ------------------------------------------------------------------ the DFN cases (test half)

with open(eh.BASELINE) as _stream:
    BASELINE = json.load(_stream)['cases']
TEST_CASES = eh.load_cases('test')


def test_the_halves_and_the_baseline_agree():
    cases = eh.load_cases('all')
    assert {c['name'] for c in cases} == set(BASELINE)
    assert sum(c['half'] == 'test' for c in cases) == 3
    assert all(BASELINE[c['name']]['half'] == c['half'] for c in cases)


@pytest.fixture(scope='module')
def scored():
    return {case['name']: eh.score(case) for case in TEST_CASES}


@pytest.mark.parametrize('name', [c['name'] for c in TEST_CASES])
def test_hysteresis_case_within_its_bound(scored, name):
    """Regression bound: SoC RMSE and max no more than the baseline + 25 % (+ 0.2 point at
    least), with the model; the case's goals are the strict xfails below.
    """
    with_model, _ = scored[name]
    base = BASELINE[name]['with']
    for key in ('soc_rmse', 'soc_max_err'):
        assert with_model[key] <= max(1.25 * base[key], base[key] + 0.002), key


GOAL_CASES = [pytest.param(c['name'], goal, marks=pytest.mark.xfail(
    strict=True, reason=f"goal not met in the baseline: {goal}"))
    if not BASELINE[c['name']]['with']['goals'][goal] else pytest.param(c['name'], goal)
    for c in TEST_CASES for goal in ('rmse', 'max', 'vs_counter')]


@pytest.mark.parametrize('name, goal', GOAL_CASES)
def test_hysteresis_case_goal(scored, name, goal):
    assert scored[name][0]['goals'][goal]


MODEL_PAYS = [pytest.param(c['name'], marks=pytest.mark.xfail(
    strict=True, reason='the model is worse here than none (baseline)'))
    if BASELINE[c['name']]['with']['soc_rmse'] > BASELINE[c['name']]['without']['soc_rmse']
    else pytest.param(c['name']) for c in TEST_CASES]


@pytest.mark.parametrize('name', MODEL_PAYS)
def test_the_model_is_better_than_none(scored, name):
    with_model, without = scored[name]
    assert with_model['soc_rmse'] < without['soc_rmse']
    assert with_model['soc_max_err'] < without['soc_max_err']


def test_the_state_is_persisted_and_validated(lfp, tmp_path):
    """A restart knows which side of the gap the cell rests on (cell_hysteresis in the state
    file); a value out of range is refused naming the field; a file without it (or another
    cell's) leaves the state unknown.
    """
    from bms_ros.core.errors import PersistenceError
    from bms_ros.core.estimation import stored_state
    est = PackEstimator(lfp, 2, EstimatorConfig())
    est.step(0.0, 0.0, np.full(2, 3.30), [True, True], [25.0, 25.0])
    for k in range(1, 8):                                # 0.15 of SoC charged at 1 C
        est.step(100.0 * k, 2.3, np.full(2, 3.35), [True, True], [25.0, 25.0])
    path = str(tmp_path / 'state.json')
    stored_state.save(path, est, 'pack')
    again = PackEstimator(lfp, 2, EstimatorConfig())
    assert stored_state.load(path, again, 'pack')
    for name in stored_state.HYSTERESIS_FIELDS:
        assert getattr(again.hysteresis, name) == pytest.approx(getattr(est.hysteresis, name))
    assert again.hysteresis.h[0] > 0.9 and again.hysteresis.doubt_v()[0] < 0.7 * lfp.hysteresis_v
    with open(path) as stream:
        doc = json.load(stream)
    doc['cell_hysteresis']['h'][1] = 1.5
    with open(path, 'w') as stream:
        json.dump(doc, stream)
    with pytest.raises(PersistenceError, match=r'cell_hysteresis: h\[1\]'):
        stored_state.load(path, PackEstimator(lfp, 2, EstimatorConfig()), 'pack')
    del doc['cell_hysteresis']
    with open(path, 'w') as stream:
        json.dump(doc, stream)
    fresh = PackEstimator(lfp, 2, EstimatorConfig())
    assert stored_state.load(path, fresh, 'pack')
    assert (fresh.hysteresis.h == 0.0).all()
    assert fresh.hysteresis.doubt_v() == pytest.approx(np.full(2, lfp.hysteresis_v))
