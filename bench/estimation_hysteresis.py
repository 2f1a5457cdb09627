"""OCV hysteresis on LFP: estimate_csv with and without the cell's hysteresis model, and the
naive coulomb counter, on the DFN cases of bench/validation/make_hysteresis.py.

    .venv/bin/python -m bench.estimation_hysteresis [--half tuning|test|all] [--json OUT]

The cases and their goals are the validation matrix's (bench/estimation_matrix.py: RMSE <= 1 %,
max <= 2 %, RMSE <= counter + 0.1 point); "with" is the cell file the manifest names
(lfp_a123_anr26650_hysteresis.yaml: the A123 cell with a 12 mV half gap), "without" the same
cell without that section (lfp_a123_anr26650.yaml, the matrix's). See docs/estimation.md
"OCV hysteresis on LFP".
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from bench import estimation_matrix as em

MANIFEST = os.path.join(em.FIXTURES, 'hysteresis.json')
BASELINE = os.path.join(em.FIXTURES, 'hysteresis_baseline.json')
WITHOUT_YAML = 'config/cells/lfp_a123_anr26650.yaml'


def load_cases(half='all'):
    return em.select(em.load_manifest(MANIFEST)['cases'], half)


def score(case):
    """(with the hysteresis model, without it) as estimation_matrix.score_case results."""
    with_model = em.score_case(case, variants=False)
    without = em.score_case(dict(case, cell_yaml=WITHOUT_YAML), variants=False)
    return with_model, without


def format_rows(case, with_model, without):
    sim = case['simulation']
    gammas = f"{sim['gamma_lithiation']:g}/{sim['gamma_delithiation']:g}" + (
        ' varying' if sim['gamma_varies_with_stoichiometry'] else '')
    return (f"{case['name']:<30} {case['half']:<6} M {1e3 * sim['half_gap_v']:4.1f} mV "
            f"gamma {gammas:<14} with {em._pct(with_model['soc_rmse'])} / "
            f"{em._pct(with_model['soc_max_err'])}  without {em._pct(without['soc_rmse'])} / "
            f"{em._pct(without['soc_max_err'])}  counter {em._pct(with_model['counter_rmse'])} /"
            f" {em._pct(with_model['counter_max_err'])}  "
            f"{'pass' if with_model['pass'] else 'FAIL'}")


def run():
    """Bench rows (bench.run): per case the SoC RMSE with the model, the rest in the note."""
    rows = []
    for case in load_cases():
        with_model, without = score(case)
        rows.append({'benchmark': f"hysteresis {case['name']}",
                     'value': 100 * with_model['soc_rmse'], 'unit': '% RMSE',
                     'goal': em.GOAL_TEXT if not rows else '',
                     'note': (f"{case['half']}; max {100 * with_model['soc_max_err']:.2f} %; "
                              f"without the model {100 * without['soc_rmse']:.2f} / "
                              f"{100 * without['soc_max_err']:.2f} %; counter "
                              f"{100 * with_model['counter_rmse']:.2f} %; "
                              + ('pass' if with_model['pass'] else 'FAIL'))})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m bench.estimation_hysteresis',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--half', choices=('tuning', 'test', 'all'), default='all')
    parser.add_argument('--json', default=None)
    parser.add_argument('--write-baseline', action='store_true',
                        help=f'write the figures to {os.path.relpath(BASELINE, em.REPO)}')
    args = parser.parse_args(argv)
    out = []
    for case in load_cases(args.half):
        with_model, without = score(case)
        print(format_rows(case, with_model, without), flush=True)
        out.append({'name': case['name'], 'half': case['half'], 'with': with_model,
                    'without': without})
    if args.json:
        with open(args.json, 'w') as stream:
            json.dump(out, stream, indent=1)
    if args.write_baseline:
        write_baseline(out)
    return 0


def write_baseline(results):
    """Per case: SoC RMSE / max with and without the hysteresis model, the counter's, and which
    goals the model meets (test/core/test_estimation_hysteresis.py bounds the test half by it).
    """
    keep = ('soc_rmse', 'soc_max_err', 'counter_rmse', 'counter_max_err', 'goals')
    doc = {'written_by': 'python -m bench.estimation_hysteresis --write-baseline',
           'estimator': em._git_head(),
           'cases': {r['name']: {'half': r['half'],
                                 'with': {k: r['with'][k] for k in keep},
                                 'without': {k: r['without'][k] for k in keep[:2]}}
                     for r in results}}
    with open(BASELINE, 'w') as stream:
        json.dump(doc, stream, indent=1, sort_keys=True)
        stream.write('\n')


if __name__ == '__main__':
    sys.exit(main())
