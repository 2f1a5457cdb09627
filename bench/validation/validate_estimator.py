"""Validate the state estimator against PyBaMM (DFN) simulations of published cells.

Runs in the validation venv (PyBaMM is not a runtime dependency of bms_ros):

    .venv-validation/bin/python bench/validation/validate_estimator.py [--out DIR] [--fixtures]

1. ``simulate``: for each cell (LG M50 with PyBaMM's ``Chen2020`` set, A123 ANR26650 with
   ``Prada2013``) and each variant (``nominal``; ``faded``: electrode width x 0.85, i.e. 15 %
   less capacity and 1/0.85 x the resistance), a DFN simulation from full charge: repeated
   US06/highway/UDDS-like drive schedules (bench/validation/drive_cycles.py, 2 s steps, mean
   0.5 C, clipped at 3 C discharge / 1 C regeneration or the datasheet limits if lower) down
   to the lower cut-off voltage, a
   10 min rest, a 0.5 C CC-CV charge to the upper cut-off (until C/20) and a 10 min rest.
   Truth SoC = 1 - (discharged charge) / Q, with Q the capacity between the OCV table's 0 %
   and 100 % (PyBaMM's electrode SoH solver, the same windows as config/ocv/*.csv).
2. Sensor model: voltage + N(0, 2 mV) quantised to 1 mV; current + N(0, 0.2 % C) quantised to
   1 mA; temperature + N(0, 0.2 degC) quantised to 0.1 degC.
3. Cases, each run through ``python -m bms_ros.tools.estimate_csv`` in the main venv:
   ``noise`` (initial SoC from the first voltage, the cell at rest), ``offset`` (+1 % C added
   to the measured current), ``wrong_soc`` (--initial-soc truth - 0.2 at full charge),
   ``wrong_soc_mid_low`` / ``wrong_soc_mid_high`` (started mid-drive at truth ~0.7 with
   --initial-soc truth -/+ 0.2) and ``faded`` (the faded cell, estimator starts from the
   datasheet capacity) and ``faded_second_cycle`` (the same recording again, started from the
   state the first pass saved: --save-state / --state).
4. Metrics (bms_ros.core.estimation.metrics): SoC RMSE and max |error| after convergence,
   convergence time (first time after which |error| stays <= 2 %), capacity error at the end
   of the discharge and after the full cycle; R0: the estimate's median over the drive
   (SoC > 20 %) against the DFN's 2 s step resistance (median dV/dI over steps > 0.5 C of the
   noise-free simulation).

``--fixtures`` also writes test/fixtures/pybamm/*.csv.gz (drive at 2 s, rest and charge at
10 s) and cases.json, read by test/core/test_estimation_pybamm.py without PyBaMM.
"""
import argparse
import gzip
import io
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

import drive_cycles  # noqa: E402

from bms_ros.core.estimation import metrics  # noqa: E402  (numpy only)

MAIN_PYTHON = os.path.join(REPO, '.venv', 'bin', 'python')
FIXTURES = os.path.join(REPO, 'test', 'fixtures', 'pybamm')

CELLS = {
    'nmc': {'parameter_set': 'Chen2020', 'cell_yaml': 'config/cells/nmc_lg_m50.yaml',
            'capacity_ah': 5.0, 'v_min': 2.5, 'v_max': 4.2, 'seed': 1,
            'discharge_max_a': 7.275, 'charge_max_a': 3.395},      # datasheet limits
    'lfp': {'parameter_set': 'Prada2013', 'cell_yaml': 'config/cells/lfp_a123_anr26650.yaml',
            'capacity_ah': 2.3, 'v_min': 2.0, 'v_max': 3.6, 'seed': 2,
            'discharge_max_a': 50.0, 'charge_max_a': 10.0},
}
FADE_WIDTH = 0.85
MEAN_DISCHARGE_C = 0.5
MAX_DISCHARGE_C = 3.0
MAX_REGEN_C = 1.0
DT_S = 2.0
SLOW_DT_S = 10.0          # fixture sampling of the rest and charge phases
NOISE_V = 0.002
NOISE_C = 0.002           # current noise as a fraction of 1 C
NOISE_DEGC = 0.2
OFFSET_C = 0.01           # current-sensor offset case: +1 % of 1 C
WRONG_SOC = 0.2
MID_START_SOC = 0.7


def drive_profile(capacity_ah, seed, discharge_max_a, charge_max_a):
    """Cell current (+ = charging) every DT_S: US06/highway/UDDS-like schedules, repeated.

    Clipped at 3 C discharge / 1 C regeneration, or the cell's datasheet limits if lower (as
    the BMS's current limits would); for the LG M50 that is 1.5 C / 0.7 C.
    """
    rng = np.random.default_rng(seed)
    power = np.concatenate([drive_cycles.battery_power_w(drive_cycles.speed_trace(k, rng, DT_S),
                                                         DT_S)
                            for k in ('us06', 'hwy', 'udds') * 8])
    current = -power / power.mean() * MEAN_DISCHARGE_C * capacity_ah
    return np.clip(current, -min(MAX_DISCHARGE_C * capacity_ah, discharge_max_a),
                   min(MAX_REGEN_C * capacity_ah, charge_max_a))


def simulate(cell, variant):
    """DFN drive-to-empty then CC-CV charge; returns dict of arrays and the true capacity."""
    import pybamm
    spec = CELLS[cell]
    params = pybamm.ParameterValues(spec['parameter_set'])
    param = pybamm.LithiumIonParameters()
    esoh = pybamm.lithium_ion.ElectrodeSOHSolver(params, param)
    sol = esoh.solve({'Q_Li': params.evaluate(param.Q_Li_particles_init),
                      'Q_n': params.evaluate(param.n.Q_init),
                      'Q_p': params.evaluate(param.p.Q_init)})
    q_true = float(sol['Q'])
    if variant == 'faded':
        params['Electrode width [m]'] = params['Electrode width [m]'] * FADE_WIDTH
        q_true *= FADE_WIDTH
    # regeneration near full may pass the upper limit for a moment: do not stop there
    params['Upper voltage cut-off [V]'] = spec['v_max'] + 0.3
    current = drive_profile(spec['capacity_ah'], spec['seed'], spec['discharge_max_a'],
                            spec['charge_max_a'])
    t = np.arange(len(current)) * DT_S
    c_rate = spec['capacity_ah']
    experiment = pybamm.Experiment([
        pybamm.step.current(np.column_stack([t, -current]), termination=f'< {spec["v_min"]} V'),
        'Rest for 10 minutes',
        f'Charge at {0.5 * c_rate} A until {spec["v_max"]} V',
        f'Hold at {spec["v_max"]} V until {0.05 * c_rate} A',
        'Rest for 10 minutes'], period=f'{SLOW_DT_S} seconds')
    model = pybamm.lithium_ion.DFN()
    sim = pybamm.Simulation(model, parameter_values=params, experiment=experiment,
                            solver=pybamm.IDAKLUSolver())
    start = time.monotonic()
    solution = sim.solve(initial_soc=1.0)
    elapsed = time.monotonic() - start
    t_s = solution['Time [s]'].entries
    keep = np.concatenate([[True], np.diff(t_s) > 1e-6])   # steps repeat their boundary point
    t_s = t_s[keep]
    current_a = -solution['Current [A]'].entries[keep]
    voltage_v = solution['Voltage [V]'].entries[keep]
    discharged_ah = solution['Discharge capacity [A.h]'].entries[keep]
    soc = 1.0 - discharged_ah / q_true
    drive_end_s = float(solution.cycles[0]['Time [s]'].entries[-1])
    print(f'{cell}/{variant}: DFN {elapsed:.1f} s cpu, {t_s[-1]:.0f} s simulated, '
          f'drive ends at {drive_end_s:.0f} s (SoC {np.interp(drive_end_s, t_s, soc):.3f}), '
          f'Q = {q_true:.4f} Ah', flush=True)
    return {'t_s': t_s, 'current_a': current_a, 'voltage_v': voltage_v,
            'temperature_c': np.full_like(t_s, 25.0), 'soc_true': soc,
            'capacity_true_ah': q_true, 'drive_end_s': drive_end_s}


def decimate(data):
    """Drop samples closer than 1 s to the previous one (step boundaries of the experiment).

    The drive is output every DT_S, the later rest and charge steps every SLOW_DT_S.
    """
    t = data['t_s']
    keep = np.ones(len(t), dtype=bool)
    last = -np.inf
    for k, value in enumerate(t):
        keep[k] = value - last >= 1.0
        if keep[k]:
            last = value
    return {k: (v[keep] if isinstance(v, np.ndarray) else v) for k, v in data.items()}


def add_noise(data, capacity_ah, seed):
    """The sensor model of the module docstring."""
    rng = np.random.default_rng(seed)
    n = len(data['t_s'])
    out = dict(data)
    out['voltage_v'] = np.round(data['voltage_v'] + rng.normal(0, NOISE_V, n), 3)
    out['current_a'] = np.round(data['current_a'] + rng.normal(0, NOISE_C * capacity_ah, n), 3)
    out['temperature_c'] = np.round(data['temperature_c'] + rng.normal(0, NOISE_DEGC, n), 1)
    return out


def step_resistance_ohm(truth, capacity_ah):
    """The DFN's 2 s step resistance: median dV/dI over drive steps > 0.5 C above 20 % SoC,
    from the noise-free simulation -- the quantity the R0 estimator measures.
    """
    t, i, v = truth['t_s'], truth['current_a'], truth['voltage_v']
    di, dv, dt = np.diff(i), np.diff(v), np.diff(t)
    use = (np.abs(di) > 0.5 * capacity_ah) & (dt < 2.5) & (t[1:] < truth['drive_end_s']) \
        & (truth['soc_true'][1:] > 0.2)
    return float(np.median(dv[use] / di[use]))


def gzip_text(path, mode):
    """A gzip text stream without a time stamp, so unchanged fixtures stay byte-identical."""
    return io.TextIOWrapper(gzip.GzipFile(path, mode.replace('t', '') or 'wb', compresslevel=9,
                                          mtime=0), encoding='utf-8')


def write_csv(path, data, columns, opener=open):
    with opener(path, 'wt') as stream:
        stream.write(','.join(columns) + '\n')
        fmt = {'t_s': '{:.1f}', 'current_a': '{:.3f}', 'voltage_v': '{:.3f}',
               'temperature_c': '{:.1f}', 'soc_true': '{:.5f}'}
        for row in zip(*(data[c] for c in columns)):
            stream.write(','.join(fmt[c].format(v) for c, v in zip(columns, row)) + '\n')


def read_output(path):
    data = np.genfromtxt(path, delimiter=',', names=True)
    return {name: data[name] for name in data.dtype.names}


def cases_for(cell, variant, data):
    """(name, input modifier, extra estimate_csv arguments, first row) of each case."""
    spec = CELLS[cell]
    if variant == 'faded':
        # the second pass starts from the state (capacity, R0) the first pass learnt
        return [('faded', 0.0, ['--save-state', '{work}/faded_state_{cell}.json'], 0),
                ('faded_second_cycle', 0.0, ['--state', '{work}/faded_state_{cell}.json'], 0)]
    mid = int(np.argmax(data['soc_true'] <= MID_START_SOC))
    z_mid = float(data['soc_true'][mid])
    return [
        ('noise', 0.0, [], 0),
        ('offset', OFFSET_C * spec['capacity_ah'], [], 0),
        ('wrong_soc', 0.0, ['--initial-soc', f'{1.0 - WRONG_SOC:.3f}'], 0),
        ('wrong_soc_mid_low', 0.0, ['--initial-soc', f'{z_mid - WRONG_SOC:.3f}'], mid),
        ('wrong_soc_mid_high', 0.0, ['--initial-soc', f'{z_mid + WRONG_SOC:.3f}'], mid),
    ]


def run_case(cell, name, data, offset_a, extra, first, work):
    """Write IN.csv, run estimate_csv in the main venv, return metrics."""
    spec = CELLS[cell]
    sliced = {k: (v[first:] if isinstance(v, np.ndarray) else v) for k, v in data.items()}
    sliced['current_a'] = sliced['current_a'] + offset_a
    in_path = os.path.join(work, f'{cell}_{name}_in.csv')
    out_path = os.path.join(work, f'{cell}_{name}_out.csv')
    write_csv(in_path, sliced, ('t_s', 'current_a', 'voltage_v', 'temperature_c'))
    extra = [a.format(work=work, cell=cell) for a in extra]
    command = [MAIN_PYTHON, '-m', 'bms_ros.tools.estimate_csv', '--cell',
               os.path.join(REPO, spec['cell_yaml']), '--input', in_path, '--output', out_path,
               *extra]
    start = time.monotonic()
    subprocess.run(command, check=True, cwd=REPO)
    elapsed = time.monotonic() - start
    out = read_output(out_path)
    result = metrics.evaluate(sliced['t_s'], sliced['soc_true'], out['soc_est'],
                              out['capacity_est_ah'], data['capacity_true_ah'],
                              data['drive_end_s'])
    drive = (out['t_s'] < data['drive_end_s']) & (sliced['soc_true'] > 0.2)
    result.update({'cell': cell, 'case': name, 'wall_s': round(elapsed, 2),
                   'r0_est_drive_median_ohm': float(np.median(out['r0_est_ohm'][drive])),
                   'r0_step_truth_ohm': data['r0_step_truth_ohm'],
                   'command': ' '.join(os.path.relpath(c, REPO) if c.startswith(REPO) else c
                                       for c in command)})
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=os.path.join(REPO, 'out', 'validation'),
                        help='folder for IN/OUT CSV files and results.json')
    parser.add_argument('--fixtures', action='store_true',
                        help='also write test/fixtures/pybamm/ (decimated, gzip)')
    parser.add_argument('--cells', default='nmc,lfp')
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    results, fixture_cases = [], []
    for cell in args.cells.split(','):
        for variant in ('nominal', 'faded'):
            truth = decimate(simulate(cell, variant))
            data = add_noise(truth, CELLS[cell]['capacity_ah'],
                             seed=CELLS[cell]['seed'] * 10 + (variant == 'faded'))
            data['r0_step_truth_ohm'] = step_resistance_ohm(truth, CELLS[cell]['capacity_ah'])
            if args.fixtures:
                os.makedirs(FIXTURES, exist_ok=True)
                name = f'{cell}_{variant}.csv.gz'
                write_csv(os.path.join(FIXTURES, name), data,
                          ('t_s', 'current_a', 'voltage_v', 'temperature_c', 'soc_true'),
                          opener=gzip_text)
            for case, offset_a, extra, first in cases_for(cell, variant, data):
                result = run_case(cell, case, data, offset_a, extra, first, args.out)
                results.append(result)
                fixture_cases.append({
                    'cell': cell, 'case': case, 'file': f'{cell}_{variant}.csv.gz',
                    'cell_yaml': CELLS[cell]['cell_yaml'], 'current_offset_a': offset_a,
                    'args': extra, 'first_row': first,
                    'capacity_true_ah': data['capacity_true_ah'],
                    'r0_step_truth_ohm': data['r0_step_truth_ohm'],
                    'drive_end_s': data['drive_end_s']})
                print(json.dumps({k: v for k, v in result.items() if k != 'command'}),
                      flush=True)
    with open(os.path.join(args.out, 'results.json'), 'w') as stream:
        json.dump(results, stream, indent=1)
    if args.fixtures:
        with open(os.path.join(FIXTURES, 'cases.json'), 'w') as stream:
            json.dump({'source': 'bench/validation/validate_estimator.py --fixtures',
                       'cases': fixture_cases}, stream, indent=1)
    print_table(results)


def print_table(results):
    head = ('cell', 'case', 'soc_rmse', 'soc_max_err', 'convergence_s', 'first_in_band_s',
            'capacity_err_discharge', 'capacity_err_cycle', 'r0_est_drive_median_ohm',
            'r0_step_truth_ohm')
    print(' | '.join(head))
    for r in results:
        print(' | '.join(str(r.get(h)) if not isinstance(r.get(h), float) else f'{r[h]:.4f}'
                         for h in head))


if __name__ == '__main__':
    main()
