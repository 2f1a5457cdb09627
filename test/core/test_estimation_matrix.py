"""The estimator on the TEST half of the validation matrix (issue 14 item 7; no PyBaMM needed).

test/fixtures/pybamm/matrix.json lists the cases bench/validation/make_matrix.py generated
with PyBaMM; bench/estimation_matrix.py scores one (estimate_csv and a naive coulomb counter
beside it). Every test-half case asserts the goals as issue 14 states them: SoC RMSE <= 1 %,
max <= 2 % (from count_after_s on), RMSE never more than 0.1 point above the counter's, and
|capacity error| <= 3 % where the case has a capacity goal. Where today's estimator misses a
goal, test/fixtures/pybamm/matrix_baseline.json (written by ``python -m
bench.estimation_matrix --half test --write-baseline``) says so and the assertion is a strict
xfail naming the figure: it fails the day the goal is met, so the baseline gets refreshed.
Beside it a regression bound holds: no case may get worse than its baseline figure + 25 %
(at least 0.2 point of SoC, 0.5 point of capacity). The ``temp_sweep`` cases (a lumped-thermal
cell under a moving ambient) also check that the learnt temperature law took over, and bound
its R0 at 25 degC and its Ea/R against the set's pulse truth by the baseline's errors + 25 %
(at least 5 points of R0, 10 % of Ea/R). The tuning half is left to the bench.
"""
import json
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import estimation_matrix as matrix  # noqa: E402
from bms_ros.tools import estimate_csv  # noqa: E402

MANIFEST = matrix.load_manifest()
with open(matrix.BASELINE) as _stream:
    BASELINE = json.load(_stream)['cases']
TEST_CASES = {c['name']: c for c in MANIFEST['cases'] if c['half'] == 'test'}
SWEEP = 'temp_sweep'
SWEEP_CASES = sorted(name for name, c in TEST_CASES.items() if c['kind'] == SWEEP)
_RESULTS = {}


def result(name):
    """Scored once per case and test session."""
    if name not in _RESULTS:
        # the law-off variants of temp_sweep cases are bench figures, not asserted here
        _RESULTS[name] = matrix.score_case(TEST_CASES[name], variants=False)
    return _RESULTS[name]


def _describe(figures, goal):
    if goal == 'capacity':
        return f"capacity error {100 * figures['capacity_err']:+.2f} %"
    if goal == 'vs_counter':
        return (f"RMSE {100 * figures['soc_rmse']:.2f} % against the counter's "
                f"{100 * figures['counter_rmse']:.2f} %")
    key = 'soc_rmse' if goal == 'rmse' else 'soc_max_err'
    return f"{goal} {100 * figures[key]:.2f} %"


def _goal_params():
    params = []
    for name in TEST_CASES:
        for goal, met in BASELINE.get(name, {}).get('goals', {}).items():
            marks = () if met else pytest.mark.xfail(
                strict=True, reason=f'goal not met in the baseline: '
                                    f'{_describe(BASELINE[name], goal)}')
            params.append(pytest.param(name, goal, id=f'{name}-{goal}', marks=marks))
    return params


def test_every_test_case_has_a_baseline():
    missing = sorted(set(TEST_CASES) - set(BASELINE))
    assert not missing, ('no baseline figures (run python -m bench.estimation_matrix --half '
                         f'test --write-baseline): {missing}')


def test_each_half_has_every_cell_and_kind():
    for half in ('tuning', 'test'):
        pairs = {(c['cell'], c['kind']) for c in MANIFEST['cases'] if c['half'] == half}
        wanted = {(cell, kind) for cell in MANIFEST['parameter_sets']
                  for kind in MANIFEST['kinds']}
        assert pairs == wanted, f'{half} half lacks {sorted(wanted - pairs)}'
        temperatures = {c['temperature_degc'] for c in MANIFEST['cases']
                        if c['half'] == half and c['kind'] != SWEEP}
        assert temperatures == set(MANIFEST['temperatures_degc'])


@pytest.mark.parametrize('name,goal', _goal_params())
def test_goal(name, goal):
    r = result(name)
    assert r['goals'][goal], f'{name}: {_describe(r, goal)}'


@pytest.mark.parametrize('name', sorted(TEST_CASES))
def test_no_regression(name):
    r, base = result(name), BASELINE[name]
    for key, floor in (('soc_rmse', 0.002), ('soc_max_err', 0.002)):
        bound = base[key] + max(0.25 * base[key], floor)
        assert r[key] <= bound, (f'{name}: {key} {100 * r[key]:.2f} %, baseline '
                                 f'{100 * base[key]:.2f} % (bound {100 * bound:.2f} %)')
    if TEST_CASES[name].get('capacity_goal'):
        bound = abs(base['capacity_err']) + max(0.25 * abs(base['capacity_err']), 0.005)
        assert abs(r['capacity_err']) <= bound, \
            f"{name}: capacity error {100 * r['capacity_err']:+.2f} %, bound {100 * bound:.2f} %"


def _min_span_degc(name):
    """The case's r0_law_min_span_degc (the cell file's estimator: section, else the default)."""
    config, _ = estimate_csv.load_config(
        cell_path=os.path.join(REPO, TEST_CASES[name]['cell_yaml']))
    return config.r0_law_min_span_degc


def test_sweep_recordings_move_the_temperature():
    """Each temp_sweep recording spans more than the law needs (its cell temperature)."""
    assert len(SWEEP_CASES) >= 2
    for name in SWEEP_CASES:
        temp = matrix.recording(TEST_CASES[name]['file'])['temperature_c']
        assert temp.std() >= _min_span_degc(name), f'{name}: std {temp.std():.1f} K'
        assert temp.max() - temp.min() >= 25.0, f'{name}: {temp.min():.1f}..{temp.max():.1f}'


@pytest.mark.parametrize('name', SWEEP_CASES)
def test_sweep_law_takes_over(name):
    r = result(name)
    assert r['law_span_degc'] >= _min_span_degc(name), \
        f"{name}: the law's samples span {r['law_span_degc']:.1f} K"
    assert r['activation_k'] != pytest.approx(r['activation_k_datasheet'], abs=1.0), \
        f"{name}: Ea/R still the cell file's {r['activation_k']:.0f} K"


@pytest.mark.parametrize('name', SWEEP_CASES)
def test_sweep_law_no_regression(name):
    r, base = result(name), BASELINE[name]
    bound = abs(base['r0_25c_err']) + max(0.25 * abs(base['r0_25c_err']), 0.05)
    assert abs(r['r0_25c_err']) <= bound, \
        f"{name}: R0(25 degC) error {100 * r['r0_25c_err']:+.1f} %, bound {100 * bound:.1f} %"
    truth = base['activation_k_truth']
    base_err = abs(base['activation_k'] - truth)
    bound_k = base_err + max(0.25 * base_err, 0.1 * truth)
    assert abs(r['activation_k'] - truth) <= bound_k, \
        (f"{name}: Ea/R {r['activation_k']:.0f} K against the truth {truth:.0f} K "
         f"(bound +- {bound_k:.0f} K)")
