"""The estimator against PyBaMM DFN truth, from the fixtures (no PyBaMM needed here).

test/fixtures/pybamm/ holds what bench/validation/validate_estimator.py --fixtures wrote: noisy
one-cell recordings (drive at 2 s, rest and charge at 10 s) with the true SoC, and cases.json
(cell, offset, initial SoC, true capacity). The issue's goals are asserted as stated; where the
estimator does not reach a goal the assertion is an expected failure (strict: it fails the day
the goal is reached, so the table gets updated) and a regression bound at the level reached is
asserted instead. docs/estimation.md has the table.
"""
import gzip
import json
import os

import numpy as np
import pytest

from bms_ros.core.cell import CellSpec
from bms_ros.core.estimation import metrics
from bms_ros.tools import estimate_csv

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, 'test', 'fixtures', 'pybamm')

GOALS = {'soc_rmse': 0.01, 'soc_max_err': 0.02, 'convergence_s': 120.0,
         'capacity_err_cycle': 0.03}

# (cell, case, metric, reached on the fixtures, goal met) -- reached: the value measured when
# the fixtures were made (bench/validation/validate_estimator.py); bound = 1.25 x reached
EXPECTED = [
    ('nmc', 'noise', 'soc_rmse', 0.0075, True),
    ('nmc', 'noise', 'soc_max_err', 0.0181, True),
    ('nmc', 'offset', 'soc_rmse', 0.0082, True),
    ('nmc', 'offset', 'soc_max_err', 0.0193, True),
    ('nmc', 'wrong_soc', 'soc_rmse', 0.0075, True),
    ('nmc', 'wrong_soc', 'soc_max_err', 0.0181, True),
    ('nmc', 'wrong_soc', 'convergence_s', 0.0, True),
    ('nmc', 'wrong_soc_mid_low', 'soc_rmse', 0.0098, True),
    ('nmc', 'wrong_soc_mid_low', 'soc_max_err', 0.0197, True),
    ('nmc', 'wrong_soc_mid_low', 'convergence_s', 158.0, False),
    ('nmc', 'wrong_soc_mid_high', 'soc_rmse', 0.0087, True),
    ('nmc', 'wrong_soc_mid_high', 'soc_max_err', 0.0194, True),
    ('nmc', 'wrong_soc_mid_high', 'convergence_s', 68.0, True),
    ('nmc', 'faded', 'capacity_err_cycle', 0.0010, True),
    ('nmc', 'faded_second_cycle', 'soc_rmse', 0.0039, True),
    ('nmc', 'faded_second_cycle', 'soc_max_err', 0.0185, True),
    # LFP (Prada2013): the flat plateau; reported, goals not expected
    ('lfp', 'noise', 'soc_rmse', 0.0230, False),
    ('lfp', 'noise', 'soc_max_err', 0.1088, False),
    # 4784 s until 2026-12-02: a held current's model error now counts once per diffusion
    # time (held_load_correlated), so the 0.5 C charge on the plateau keeps the count's -2.0
    # to -2.1 points of the 15 % rest (this case runs the defaults, not the LFP file's
    # settings), right at the 2-point band: 7974 s (docs/estimation.md, "Near misses")
    ('lfp', 'wrong_soc_mid_low', 'convergence_s', 7974.0, False),
    ('lfp', 'faded', 'capacity_err_cycle', 0.0185, True),
    ('lfp', 'faded_second_cycle', 'soc_rmse', 0.0203, False),
]


def load_fixture(name):
    with gzip.open(os.path.join(FIXTURES, name), 'rt') as stream:
        data = np.genfromtxt(stream, delimiter=',', names=True)
    return {k: np.asarray(data[k], dtype=float) for k in data.dtype.names}


@pytest.fixture(scope='module')
def results(tmp_path_factory):
    """Metrics of every case, computed once (about 20 s)."""
    with open(os.path.join(FIXTURES, 'cases.json')) as stream:
        cases = json.load(stream)['cases']
    work = tmp_path_factory.mktemp('pybamm')
    out = {}
    for case in cases:
        data = load_fixture(case['file'])
        data = {k: v[case['first_row']:] for k, v in data.items()}
        data['current_a'] = data['current_a'] + case['current_offset_a']
        args = case['args']
        kwargs = {}
        if '--initial-soc' in args:
            kwargs['initial_soc'] = float(args[args.index('--initial-soc') + 1])
        state = str(work / f"{case['cell']}_state.json")
        if '--save-state' in args:
            kwargs['save_state_path'] = state
        if '--state' in args:
            kwargs['state_path'] = state
        cell = CellSpec.from_file(os.path.join(REPO, case['cell_yaml']))
        est = estimate_csv.run(cell, data, **kwargs)
        result = metrics.evaluate(data['t_s'], data['soc_true'], est['soc_est'],
                                  est['capacity_est_ah'], case['capacity_true_ah'],
                                  case['drive_end_s'])
        drive = (data['t_s'] < case['drive_end_s']) & (data['soc_true'] > 0.2)
        result['r0_err'] = float(np.median(est['r0_est_ohm'][drive])
                                 / case['r0_step_truth_ohm'] - 1.0)
        out[case['cell'], case['case']] = result
    return out


def _params(met):
    return [pytest.param(cell, case, metric, reached, id=f'{cell}-{case}-{metric}',
                         marks=() if met else pytest.mark.xfail(
                             strict=True, reason=f'goal not reached: {reached:g}'))
            for cell, case, metric, reached, met_ in EXPECTED if met_ == met or met is None]


@pytest.mark.parametrize('cell,case,metric,reached', _params(True) + _params(False))
def test_goal(results, cell, case, metric, reached):
    value = abs(results[cell, case][metric])
    assert value <= GOALS[metric], f'{cell} {case} {metric} = {value:.4g}'


@pytest.mark.parametrize('cell,case,metric,reached',
                         [(c, k, m, r) for c, k, m, r, _ in EXPECTED])
def test_no_regression(results, cell, case, metric, reached):
    value = abs(results[cell, case][metric])
    assert np.isfinite(value)
    assert value <= 1.25 * reached + (1.0 if metric == 'convergence_s' else 0.0005), \
        f'{cell} {case} {metric} = {value:.4g}, reached {reached:g} when the fixtures were made'


@pytest.mark.parametrize('cell,case,tolerance', [
    ('nmc', 'noise', 0.05), ('nmc', 'faded', 0.05), ('nmc', 'faded_second_cycle', 0.05),
    ('lfp', 'noise', 0.15), ('lfp', 'faded_second_cycle', 0.15)])
def test_r0_matches_the_dfn_step_resistance(results, cell, case, tolerance):
    """R0 over the drive against the DFN's 2 s step resistance (noise-free dV/dI at steps)."""
    assert abs(results[cell, case]['r0_err']) <= tolerance


def test_capacity_learnt_on_the_faded_cell(results):
    """Starting from the datasheet (14 % high), one full cycle brings it within 3 %; the first
    discharge alone (the joint update, no rest yet) moves it part of the way (8.6 % with the
    joint's 10 s thinning), the rest at the bottom does the rest.
    """
    assert 0.03 < results['nmc', 'faded']['capacity_err_discharge'] < 0.12
    assert abs(results['nmc', 'faded']['capacity_err_cycle']) <= 0.03
