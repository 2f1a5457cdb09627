"""State estimation: cost per update against the number of cells, and accuracy against PyBaMM.

    .venv/bin/python -m bench.run estimation

* cost: one update = PackEstimator.step (EKF predict + iterated update, R0, capacity counting)
  followed by estimate() (pack SoC, state of power for both horizons), as if every measurement
  were published; the node only asks for an estimate at publish_rate_hz, so the step alone is
  the cost at 10 Hz. Noisy 1-RC data; median and 99th percentile of 400 timed updates after 50
  warm-up ones. Goal: <= 1 ms per update for 200 cells.
* accuracy: the PyBaMM DFN fixtures of test/fixtures/pybamm (made by
  bench/validation/validate_estimator.py) run through estimate_csv's run(); metrics as in
  bms_ros.core.estimation.metrics.
"""
import gzip
import json
import os
import time

import numpy as np

from bms_ros.core.cell import CellSpec
from bms_ros.core.estimation import EstimatorConfig, PackEstimator, metrics
from bms_ros.core.estimation.synthetic import EcmCells
from bms_ros.core.profile import config_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, 'test', 'fixtures', 'pybamm')
CELL_COUNTS = (12, 96, 200, 1000)


def time_updates(n, updates=400, warmup=50):
    """(median, p99, median of step alone) seconds of one update for ``n`` cells."""
    cell = CellSpec.from_file(os.path.join(config_dir(), 'cells', 'nmc_lg_m50.yaml'))
    rng = np.random.default_rng(n)
    truth = EcmCells(cell, rng.uniform(0.4, 0.8, n))
    est = PackEstimator(cell, n, EstimatorConfig())
    valid = np.ones(n, dtype=bool)
    temperature = np.full(n, 25.0)
    samples, steps = [], []
    t = 0.0
    for k in range(warmup + updates):
        current = -5.0 if (k // 20) % 2 else 1.0
        truth.step(0.1, current)
        volts = truth.voltage_v() + rng.normal(0.0, 0.002, n)
        t += 0.1
        start = time.perf_counter()
        est.step(t, current, volts, valid, temperature)
        middle = time.perf_counter()
        est.estimate()
        end = time.perf_counter()
        if k >= warmup:
            samples.append(end - start)
            steps.append(middle - start)
    return (float(np.median(samples)), float(np.percentile(samples, 99)),
            float(np.median(steps)))


def load_fixture(name):
    with gzip.open(os.path.join(FIXTURES, name), 'rt') as stream:
        data = np.genfromtxt(stream, delimiter=',', names=True)
    return {k: np.asarray(data[k], dtype=float) for k in data.dtype.names}


def accuracy_rows():
    from bms_ros.tools import estimate_csv
    with open(os.path.join(FIXTURES, 'cases.json')) as stream:
        cases = json.load(stream)['cases']
    wanted = {('nmc', 'noise'), ('nmc', 'offset'), ('nmc', 'wrong_soc_mid_low'),
              ('nmc', 'faded'), ('lfp', 'noise')}
    rows = []
    for case in cases:
        if (case['cell'], case['case']) not in wanted:
            continue
        data = load_fixture(case['file'])
        first = case['first_row']
        data = {k: v[first:] for k, v in data.items()}
        data['current_a'] = data['current_a'] + case['current_offset_a']
        initial = None
        if '--initial-soc' in case['args']:
            initial = float(case['args'][case['args'].index('--initial-soc') + 1])
        cell = CellSpec.from_file(os.path.join(REPO, case['cell_yaml']))
        out = estimate_csv.run(cell, data, initial_soc=initial)
        m = metrics.evaluate(data['t_s'], data['soc_true'], out['soc_est'],
                             out['capacity_est_ah'], case['capacity_true_ah'], case['drive_end_s'])
        label = f"PyBaMM {case['cell'].upper()} {case['case']}"
        note = 'DFN drive cycles full to empty, CC-CV charge; docs/estimation.md'
        if case['case'] == 'faded':
            rows.append({'benchmark': f'{label}: capacity error after a full cycle',
                         'value': 100 * abs(m['capacity_err_cycle']), 'unit': '%',
                         'goal': '<= 3', 'note': 'faded cell, 85 % capacity, from datasheet'})
            continue
        rows.append({'benchmark': f'{label}: SoC RMSE after convergence',
                     'value': 100 * m['soc_rmse'], 'unit': '%',
                     'goal': '<= 1' if case['cell'] == 'nmc' else 'report (LFP plateau)',
                     'note': note})
        rows.append({'benchmark': f'{label}: SoC max error after convergence',
                     'value': 100 * m['soc_max_err'], 'unit': '%',
                     'goal': '<= 2' if case['cell'] == 'nmc' else 'report (LFP plateau)',
                     'note': note})
        if 'wrong' in case['case']:
            rows.append({'benchmark': f'{label}: convergence from 20 % wrong SoC',
                         'value': m['convergence_s'], 'unit': 's', 'goal': '<= 120',
                         'note': 'into +-2 % and staying 60 s; started mid-drive'})
    return rows


def run():
    rows = []
    for n in CELL_COUNTS:
        median_s, p99_s, step_s = time_updates(n)
        rows.append({'benchmark': f'estimator update (step + estimate), {n} cells',
                     'value': 1e3 * median_s, 'unit': 'ms',
                     'goal': '<= 1 (200 cells)' if n == 200 else '',
                     'note': f'median of 400; p99 {1e3 * p99_s:.2f} ms; step alone '
                             f'{1e3 * step_s:.2f} ms'})
    rows += accuracy_rows()
    return rows


if __name__ == '__main__':
    for row in run():
        print(row)
