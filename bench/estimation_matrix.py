"""The estimator validation matrix: estimate_csv and a naive coulomb counter on every case.

    .venv/bin/python -m bench.estimation_matrix [--half tuning|test|all] [--case NAME ...]
        [--kind KIND ...] [--cell CELL ...] [--write-baseline] [--json OUT.json] [--markdown]
        [--write-inputs DIR]
    .venv/bin/python -m bench.run estimation_matrix          # the whole matrix as bench rows

Cases: test/fixtures/pybamm/matrix.json (made by bench/validation/make_matrix.py from PyBaMM
simulations; docs/estimation.md "Validation matrix"). Each case runs
``bms_ros.tools.estimate_csv.run`` in-process on the recording with the settings the CLI takes
without ``--profile`` (the cell file's ``estimator:`` section, else the defaults): rows from
``first_row``, ``current_offset_a`` added to the measured current, ``--initial-soc`` from
``args``; beside it a naive coulomb counter: the cell file's nominal capacity, the initial SoC
from the same information the estimator gets (``--initial-soc`` if given, else the cell's OCV
table read at the first voltage and temperature, under load or not), trapezoidal counting,
clipped to 0..1, no correction.

Errors count from ``count_after_s`` after the first row (120 s; 300 s for unrelaxed starts).
Goal per case: SoC RMSE <= 1 %, max |error| <= 2 %, RMSE never more than 0.1 point above the
counter's; where ``capacity_goal`` is set (two partial cycles of 30 %), |capacity error| <= 3 %
at the last sample. ``temp_sweep`` cases (a moving cell temperature) also report R0 at
25 degC and the temperature law's Ea/R (from the saved estimator state) against the set's pulse
truth, and are scored twice more: with ``r0_law_learn`` off (the cell file's Ea/R, the
datasheet law) and off with the true Ea/R written into the cell file (the ceiling).
``--write-baseline`` merges the figures of the cases run into
test/fixtures/pybamm/matrix_baseline.json, which test/core/test_estimation_matrix.py reads
for its strict xfails and regression bounds.
"""
import argparse
import dataclasses
import datetime
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from bms_ros.core.cell import CellSpec
from bms_ros.core.estimation import metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, 'test', 'fixtures', 'pybamm')
MANIFEST = os.path.join(FIXTURES, 'matrix.json')
BASELINE = os.path.join(FIXTURES, 'matrix_baseline.json')

GOAL_RMSE = 0.01
GOAL_MAX = 0.02
GOAL_VS_COUNTER = 0.001
GOAL_CAPACITY = 0.03
GOAL_TEXT = 'RMSE <= 1 %, max <= 2 %, RMSE <= counter + 0.1 pt (capacity <= 3 % where set)'


def load_manifest(path=MANIFEST):
    with open(path) as stream:
        return json.load(stream)


def select(cases, half='all', names=(), kinds=(), cells=()):
    """The cases of one half (or all), optionally only the named ones / kinds / cells."""
    out = [c for c in cases if half == 'all' or c['half'] == half]
    if names:
        unknown = set(names) - {c['name'] for c in cases}
        if unknown:
            raise SystemExit(f'unknown case(s): {", ".join(sorted(unknown))}')
        out = [c for c in out if c['name'] in names]
    if kinds:
        out = [c for c in out if c['kind'] in kinds]
    if cells:
        out = [c for c in out if c['cell'] in cells]
    return out


_RECORDINGS = {}


def recording(file):
    """Columns of a fixture file as float arrays (cached: several cases share one file)."""
    if file not in _RECORDINGS:
        with gzip.open(os.path.join(FIXTURES, file), 'rt') as stream:
            data = np.genfromtxt(stream, delimiter=',', names=True)
        _RECORDINGS[file] = {k: np.asarray(data[k], dtype=float) for k in data.dtype.names}
    return _RECORDINGS[file]


def case_input(case):
    """The recording as estimate_csv gets it for this case (sliced, offset added)."""
    data = {k: v[case['first_row']:].copy() for k, v in recording(case['file']).items()}
    data['current_a'] = data['current_a'] + case['current_offset_a']
    return data


def initial_soc_of(case):
    args = case['args']
    return float(args[args.index('--initial-soc') + 1]) if '--initial-soc' in args else None


def naive_counter(cell, data, initial_soc=None):
    """SoC of a plain coulomb counter (nominal capacity, no correction), 0..1 per sample."""
    if initial_soc is None:
        initial_soc = float(cell.ocv.soc_from_ocv(data['voltage_v'][0],
                                                  data['temperature_c'][0]))
    t, i = data['t_s'], data['current_a']
    counted_ah = np.concatenate([[0.0], np.cumsum(np.diff(t) * 0.5 * (i[1:] + i[:-1]))]) / 3600.0
    return np.clip(initial_soc + counted_ah / cell.capacity_ah, 0.0, 1.0)


def errors(t_s, soc_true, soc, count_after_s):
    """(RMSE, max |error|) of a SoC trace over the samples from count_after_s on."""
    use = t_s - t_s[0] >= count_after_s
    err = soc[use] - soc_true[use]
    return float(np.sqrt(np.mean(err ** 2))), float(np.max(np.abs(err)))


def goals_of(result, case):
    """{goal: met} for one scored case."""
    goals = {'rmse': result['soc_rmse'] <= GOAL_RMSE,
             'max': result['soc_max_err'] <= GOAL_MAX,
             'vs_counter': result['soc_rmse'] <= result['counter_rmse'] + GOAL_VS_COUNTER}
    if case.get('capacity_goal'):
        goals['capacity'] = abs(result['capacity_err']) <= GOAL_CAPACITY
    return goals


def run_estimator(cell, data, initial_soc, config):
    """estimate_csv.run on one recording: (outputs, saved state document, estimator cpu s)."""
    from bms_ros.tools import estimate_csv
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'state.json')
        start = time.process_time()
        out = estimate_csv.run(cell, data, initial_soc=initial_soc, config=config,
                               save_state_path=path)
        cpu_s = time.process_time() - start
        with open(path) as stream:
            state = json.load(stream)
    return out, state, cpu_s


def law_figures(cell, config, state, case):
    """R0 at 25 degC (ohm), the law's Ea/R (K) and its sample span (K) from a saved state,
    with the errors against the case's truth where it has one (temp_sweep).
    """
    from bms_ros.core.estimation.resistance import TemperatureLaw
    law = TemperatureLaw(cell, 1, config)
    law.restore(state['r0_law_sums'])
    figures = {'r0_25c_ohm': float(state['cell_r0_ohm'][0]),
               'activation_k': float(state['r0_law_activation_k']),
               'law_span_degc': law.span_degc()}
    if 'r0_truth_25c_ohm' in case:
        figures['r0_25c_err'] = figures['r0_25c_ohm'] / case['r0_truth_25c_ohm'] - 1.0
        figures['activation_k_err'] = figures['activation_k'] / case['r0_truth_activation_k'] \
            - 1.0
    return figures


# temp_sweep cases are scored three times: as configured (the law learnt), with the law
# forced off (the cell file's Ea/R, what the law replaces) and, as a ceiling, off with the
# true Ea/R written into the cell file
LAW_VARIANTS = ('law_off', 'k_truth')


def score_case(case, variants=True):
    """Run estimate_csv and the counter on one case; the figures as a dict (SoC 0..1)."""
    from bms_ros.tools import estimate_csv
    cell_path = os.path.join(REPO, case['cell_yaml'])
    cell = CellSpec.from_file(cell_path)
    # as the CLI without --profile: the cell file's own estimator: section, else the defaults
    config, _ = estimate_csv.load_config(cell_path=cell_path)
    data = case_input(case)
    initial = initial_soc_of(case)
    out, state, cpu_s = run_estimator(cell, data, initial, config)
    counter = naive_counter(cell, data, initial)
    t, truth = data['t_s'], data['soc_true']
    rmse, max_err = errors(t, truth, out['soc_est'], case['count_after_s'])
    c_rmse, c_max = errors(t, truth, counter, case['count_after_s'])
    result = {'name': case['name'], 'half': case['half'], 'kind': case['kind'],
              'cell': case['cell'], 'temperature_degc': case['temperature_degc'],
              'soc_rmse': rmse, 'soc_max_err': max_err, 'counter_rmse': c_rmse,
              'counter_max_err': c_max,
              'capacity_err': float(out['capacity_est_ah'][-1] / case['capacity_true_ah'] - 1.0),
              'counter_capacity_err': float(cell.capacity_ah / case['capacity_true_ah'] - 1.0),
              'convergence_s': metrics.convergence_time_s(t, out['soc_est'] - truth),
              'samples': len(t), 'cpu_s': round(cpu_s, 2),
              **law_figures(cell, config, state, case)}
    result['goals'] = goals_of(result, case)
    result['pass'] = all(result['goals'].values())
    if 'r0_truth_25c_ohm' in case:
        result['r0_truth_25c_ohm'] = case['r0_truth_25c_ohm']
        result['activation_k_truth'] = case['r0_truth_activation_k']
        result['activation_k_datasheet'] = cell.r0_arrhenius_k
    if 'r0_truth_25c_ohm' in case and variants:
        for variant in LAW_VARIANTS:
            v_cell = cell if variant == 'law_off' else dataclasses.replace(
                cell, r0_arrhenius_k=case['r0_truth_activation_k'])
            v_config = dataclasses.replace(config, r0_law_learn=False)
            v_out, v_state, v_cpu = run_estimator(v_cell, data, initial, v_config)
            v_rmse, v_max = errors(t, truth, v_out['soc_est'], case['count_after_s'])
            result[variant] = {'soc_rmse': v_rmse, 'soc_max_err': v_max,
                               **law_figures(v_cell, v_config, v_state, case)}
            result['cpu_s'] = round(result['cpu_s'] + v_cpu, 2)
    return result


def score(cases, progress=None):
    results = []
    for case in cases:
        results.append(score_case(case))
        if progress:
            progress(results[-1])
    return results


def _pct(value):
    return f'{100 * value:5.2f}' if np.isfinite(value) else '  nan'


def format_row(r):
    failed = [g for g, ok in r['goals'].items() if not ok]
    cap = f"{100 * r['capacity_err']:+6.1f}"
    return (f"{r['name']:<38} {r['half']:<6} {_pct(r['soc_rmse'])} / {_pct(r['soc_max_err'])}"
            f"   {_pct(r['counter_rmse'])} / {_pct(r['counter_max_err'])}   {cap}"
            f"{'*' if 'capacity' in r['goals'] else ' '}  "
            f"{'pass' if r['pass'] else 'FAIL ' + ','.join(failed)}"
            + ''.join(f'\n    {line}' for line in law_lines(r)))


def _law_text(figures):
    return (f"R0(25 degC) {1e3 * figures['r0_25c_ohm']:6.2f} mOhm "
            f"({100 * figures['r0_25c_err']:+5.1f} %), Ea/R {figures['activation_k']:5.0f} K "
            f"({100 * figures['activation_k_err']:+5.1f} %)")


def law_lines(r):
    """The temperature law's figures of a temp_sweep result (nothing for other cases)."""
    if 'r0_truth_25c_ohm' not in r:
        return []
    lines = [f"truth: R0(25 degC) {1e3 * r['r0_truth_25c_ohm']:.2f} mOhm, Ea/R "
             f"{r['activation_k_truth']:.0f} K (cell file {r['activation_k_datasheet']:.0f} K)",
             f"law learnt:   SoC {_pct(r['soc_rmse'])} / {_pct(r['soc_max_err'])}, "
             f"{_law_text(r)}, span {r['law_span_degc']:.1f} K"]
    labels = {'law_off': 'law off:     ', 'k_truth': 'off, true k: '}
    for variant in LAW_VARIANTS:
        if variant in r:
            v = r[variant]
            lines.append(f"{labels[variant]} SoC {_pct(v['soc_rmse'])} / "
                         f"{_pct(v['soc_max_err'])}, {_law_text(v)}")
    return lines


HEADER = (f"{'case':<38} {'half':<6} bms_ros RMSE/max %   counter RMSE/max %   cap err %  "
          'goal')


def markdown(results):
    """The matrix as a markdown table (docs/estimation.md)."""
    lines = ['| case | half | bms_ros RMSE / max (%) | counter RMSE / max (%) | capacity err (%) '
             '| goal |', '|---|---|---|---|---|---|']
    for r in results:
        failed = [g for g, ok in r['goals'].items() if not ok]
        ok = 'pass' if r['pass'] else 'fail: ' + ', '.join(failed)
        own = f"{100 * r['soc_rmse']:.2f} / {100 * r['soc_max_err']:.2f}"
        lines.append(f"| {r['name']} | {r['half']} | {f'**{own}**' if r['pass'] else own} | "
                     f"{100 * r['counter_rmse']:.2f} / {100 * r['counter_max_err']:.2f} | "
                     f"{100 * r['capacity_err']:+.1f}"
                     f"{' (goal)' if 'capacity' in r['goals'] else ''}"
                     f" | {ok} |")
    return '\n'.join(lines)


def summary(results):
    lines = []
    for half in ('tuning', 'test'):
        part = [r for r in results if r['half'] == half]
        if part:
            lines.append(f'{half}: {sum(r["pass"] for r in part)}/{len(part)} cases pass; '
                         f'worse than the counter by > 0.1 pt in '
                         f'{sum(not r["goals"]["vs_counter"] for r in part)}')
    return lines


def write_inputs(cases, folder):
    """IN.csv of each case for the estimate_csv CLI; returns the commands that replay them."""
    os.makedirs(folder, exist_ok=True)
    commands = []
    for case in cases:
        data = case_input(case)
        path = os.path.join(folder, f"{case['name']}.csv")
        with open(path, 'w') as stream:
            stream.write('t_s,current_a,voltage_v,temperature_c,soc_true,ocv_true_v\n')
            for row in zip(data['t_s'], data['current_a'], data['voltage_v'],
                           data['temperature_c'], data['soc_true'], data['ocv_true_v']):
                stream.write('{:.1f},{:.4f},{:.3f},{:.1f},{:.5f},{:.4f}\n'.format(*row))
        commands.append(' '.join([
            '.venv/bin/python -m bms_ros.tools.estimate_csv', '--cell', case['cell_yaml'],
            '--input', path, '--output', path[:-4] + '_out.csv', *case['args']]))
    return commands


def run():
    """Bench rows: one per case (value = SoC RMSE in %), then a pass count per half."""
    results = score(load_manifest()['cases'])
    rows = []
    for r in results:
        failed = [g for g, ok in r['goals'].items() if not ok]
        note = (f"{r['half']}; max {100 * r['soc_max_err']:.2f} %; counter "
                f"{100 * r['counter_rmse']:.2f} / {100 * r['counter_max_err']:.2f} %; "
                f"capacity {100 * r['capacity_err']:+.1f} %; "
                + ('pass' if r['pass'] else 'FAIL ' + ','.join(failed)))
        rows.append({'benchmark': f"matrix {r['name']}", 'value': 100 * r['soc_rmse'],
                     'unit': '% RMSE', 'goal': GOAL_TEXT if r is results[0] else '',
                     'note': note})
    for half in ('tuning', 'test'):
        part = [r for r in results if r['half'] == half]
        rows.append({'benchmark': f'matrix: {half} half cases passing',
                     'value': float(sum(r['pass'] for r in part)), 'unit': f'of {len(part)}',
                     'goal': f'{len(part)}', 'note': 'docs/estimation.md "Validation matrix"'})
    return rows


def _git_head():
    """The commit the estimator came from, '+uncommitted' if bms_ros/ differs from it."""
    try:
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--', 'bms_ros'], cwd=REPO,
                               check=True, capture_output=True, text=True).stdout.strip()
        return head + (' +uncommitted' if dirty else '')
    except (OSError, subprocess.CalledProcessError):
        return ''


def write_baseline(results, path=BASELINE, label=None):
    """Merge the figures of ``results`` into the baseline file (other cases are kept)."""
    baseline = {'cases': {}}
    if os.path.exists(path):
        with open(path) as stream:
            baseline = json.load(stream)
    for r in results:
        baseline['cases'][r['name']] = {
            k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()
            if k in ('half', 'soc_rmse', 'soc_max_err', 'counter_rmse', 'counter_max_err',
                     'capacity_err', 'goals')
            or k in ('r0_25c_err', 'activation_k', 'activation_k_truth')
            and 'activation_k_truth' in r}
        for variant in LAW_VARIANTS:
            if variant in r:
                baseline['cases'][r['name']][variant] = {
                    k: round(v, 5) for k, v in r[variant].items()
                    if k in ('soc_rmse', 'soc_max_err', 'r0_25c_err', 'activation_k')}
    baseline.update({
        'written_by': 'python -m bench.estimation_matrix --write-baseline',
        'written_utc': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M'),
        'estimator': label or _git_head(), 'goals': GOAL_TEXT})
    baseline['cases'] = dict(sorted(baseline['cases'].items()))
    with open(path, 'w') as stream:
        json.dump(baseline, stream, indent=1)
        stream.write('\n')


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m bench.estimation_matrix',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--half', choices=('tuning', 'test', 'all'), default='all')
    parser.add_argument('--case', nargs='*', default=[], help='only these case names')
    parser.add_argument('--kind', nargs='*', default=[], help='only these kinds of case')
    parser.add_argument('--cell', nargs='*', default=[], help='only these cells')
    parser.add_argument('--write-baseline', action='store_true',
                        help=f'merge the figures into {os.path.relpath(BASELINE, REPO)}')
    parser.add_argument('--json', default=None, help='also write the results to this file')
    parser.add_argument('--markdown', action='store_true', help='print a markdown table too')
    parser.add_argument('--write-inputs', default=None, metavar='DIR',
                        help='write each case as IN.csv for the estimate_csv CLI (sliced, offset '
                             'added) and print the commands; no scoring')
    parser.add_argument('--label', default=None,
                        help='estimator version to record in the baseline (default: git HEAD)')
    args = parser.parse_args(argv)
    cases = select(load_manifest()['cases'], args.half, args.case, args.kind, args.cell)
    if args.write_inputs:
        for command in write_inputs(cases, args.write_inputs):
            print(command)
        return 0
    print(HEADER)
    start = time.monotonic()
    results = score(cases, progress=lambda r: print(format_row(r), flush=True))
    for line in summary(results):
        print(line)
    cpu = sum(r['cpu_s'] for r in results)
    print(f'{len(results)} cases, {sum(r["samples"] for r in results)} samples, '
          f'estimator {cpu:.0f} s cpu, {time.monotonic() - start:.0f} s wall '
          f'(* = capacity goal case)')
    if args.markdown:
        print(markdown(results))
    if args.json:
        with open(args.json, 'w') as stream:
            json.dump(results, stream, indent=1)
    if args.write_baseline:
        write_baseline(results, label=args.label)
        print(f'baseline: {os.path.relpath(BASELINE, REPO)} ({len(results)} cases merged)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
