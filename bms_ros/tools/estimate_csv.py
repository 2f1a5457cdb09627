r"""Run the state estimator offline on a recording of one cell (docs/estimation.md).

    python -m bms_ros.tools.estimate_csv --cell CELL.yaml --input IN.csv --output OUT.csv \
        [--initial-soc X [--initial-soc-std S]] \
        [--current-sign discharge-positive|charge-positive] \
        [--state STATE.json] [--save-state STATE.json] [--profile PROFILE.yaml]

Settings: the cell file's own ``estimator:`` section with the ``estimator:`` fields of
--profile on top (as the node takes them), else the defaults of EstimatorConfig (a warning
says so); the settings used are printed to stderr.
IN.csv: header ``t_s,current_a,voltage_v,temperature_c`` (any column order, extra columns
ignored, ``#`` lines are comments); t_s strictly increasing. Current sign by --current-sign
(default charge-positive, the bms_ros convention). OUT.csv: ``t_s,soc_est,capacity_est_ah,
r0_est_ohm,ccl_a,dcl_a`` (SoC 0..1; R0 at 25 degC; ccl/dcl the charge/discharge current limits
over the short horizon, magnitudes >= 0). A bad row stops the run with exit code 2 and a message
naming the file, line and column.
"""
import argparse
import csv
import logging
import math
import sys

import numpy as np

from ..core.cell import CellSpec
from ..core.errors import BmsError, ConfigError, MeasurementError, PersistenceError
from ..core.estimation import stored_state
from ..core.estimation.config import EstimatorConfig
from ..core.estimation.runtime import CsvMeasurement, EstimatorRuntime

INPUT_COLUMNS = ('t_s', 'current_a', 'voltage_v', 'temperature_c')
OUTPUT_COLUMNS = ('t_s', 'soc_est', 'capacity_est_ah', 'r0_est_ohm', 'ccl_a', 'dcl_a')
STATE_PACK_NAME = 'estimate_csv'


def read_input(path):
    """Columns of IN.csv as float arrays; MeasurementError names file, line and column."""
    try:
        stream = open(path, newline='', encoding='utf-8')
    except OSError as error:
        raise MeasurementError(f'{path}: cannot read: {error.strerror}') from None
    with stream:
        lines = ((number, line) for number, line in enumerate(stream, start=1)
                 if line.strip() and not line.lstrip().startswith('#'))
        numbered = list(lines)
    if not numbered:
        raise MeasurementError(f'{path}: empty (expected header {",".join(INPUT_COLUMNS)})')
    reader = csv.reader(line for _, line in numbered)
    header = [name.strip() for name in next(reader)]
    missing = [c for c in INPUT_COLUMNS if c not in header]
    if missing:
        raise MeasurementError(f'{path}: line {numbered[0][0]}: missing column(s) '
                               f'{", ".join(missing)} (header must have {",".join(INPUT_COLUMNS)})')
    index = {c: header.index(c) for c in INPUT_COLUMNS}
    data = {c: [] for c in INPUT_COLUMNS}
    last_t = -math.inf
    for (line_number, _), row in zip(numbered[1:], reader):
        if len(row) != len(header):
            raise MeasurementError(f'{path}: line {line_number}: {len(row)} fields, header has '
                                   f'{len(header)}')
        for column in INPUT_COLUMNS:
            text = row[index[column]].strip()
            try:
                value = float(text)
            except ValueError:
                raise MeasurementError(f'{path}: line {line_number}: {column}: not a number: '
                                       f'{text!r}') from None
            if not math.isfinite(value):
                raise MeasurementError(f'{path}: line {line_number}: {column}: not finite: '
                                       f'{text!r}')
            data[column].append(value)
        t = data['t_s'][-1]
        if t <= last_t:
            raise MeasurementError(f'{path}: line {line_number}: t_s {t:g} does not increase '
                                   f'(previous {last_t:g})')
        last_t = t
    if not data['t_s']:
        raise MeasurementError(f'{path}: no data rows')
    return {c: np.asarray(v) for c, v in data.items()}


def run(cell, data, initial_soc=None, config=None, state_path=None, save_state_path=None,
        initial_soc_std=None):
    """Estimate over the rows of ``data`` (current + = charging); returns OUTPUT_COLUMNS arrays.

    Every row goes through the estimator runtime the state_estimator node runs
    (bms_ros.core.estimation.runtime: checks, plausibility, time line), as a one-cell pack
    whose contactors are unknown. ``initial_soc``: start there with the doubt
    ``initial_soc_std`` (default: the config's) instead of reading the SoC from the first
    voltage; a first voltage at rest is read as OCV and fused with it by the two doubts.
    """
    runtime = EstimatorRuntime(cell, 1, config or EstimatorConfig(), 1, [0], STATE_PACK_NAME)
    if state_path:
        if not stored_state.load(state_path, runtime.estimator, STATE_PACK_NAME):
            raise PersistenceError(f'{state_path}: no such state file')
    if initial_soc is not None:
        runtime.estimator.start_from_soc(initial_soc, initial_soc_std)
    n = len(data['t_s'])
    out = {c: np.full(n, np.nan) for c in OUTPUT_COLUMNS}
    t_col, i_col = data['t_s'], data['current_a']
    v_col, temp_col = data['voltage_v'], data['temperature_c']
    for k in range(n):
        t = float(t_col[k])
        # the CSV's time is both stamp and steady clock: no clock jumps offline
        runtime.on_measurement(CsvMeasurement(i_col[k], v_col[k], temp_col[k]), t, t, t)
        est = runtime.estimate()
        out['t_s'][k] = t
        out['soc_est'][k] = est.cell_soc[0]
        out['capacity_est_ah'][k] = est.cell_capacity_ah[0]
        out['r0_est_ohm'][k] = est.cell_r0_ohm[0]
        out['ccl_a'][k] = est.charge_current_limit_a
        out['dcl_a'][k] = est.discharge_current_limit_a
    if save_state_path:
        stored_state.save(save_state_path, runtime.estimator, STATE_PACK_NAME)
    return out


def load_config(profile_path=None, cell_path=None):
    """(EstimatorConfig, where it came from): the cell file's own ``estimator:`` section with
    the ``estimator:`` fields of ``profile_path`` on top (as the node takes them), else the
    defaults.
    """
    if profile_path:
        from ..core.config import Section
        from ..core.estimation.config import settings_source
        top = Section.from_file(profile_path)
        return (EstimatorConfig.for_cell(top.section('estimator', {}), cell_path),
                settings_source(profile_path, cell_path))
    if cell_path:
        from ..core.config import Section
        top = Section.from_file(cell_path)
        if top.has('estimator'):
            return EstimatorConfig.from_section(top.section('estimator')), f'cell file {cell_path}'
    return EstimatorConfig(), 'defaults'


def settings_text(config, source):
    """One line per setting that matters offline, and where the settings came from (the
    line the node and the replays log).
    """
    from ..core.estimation.config import settings_text as text
    return 'estimate_csv: ' + text(config, source)


def write_output(path, out):
    """Write the estimate columns ``out`` (OUTPUT_COLUMNS) as a CSV to ``path``."""
    with open(path, 'w', newline='', encoding='utf-8') as stream:
        stream.write(','.join(OUTPUT_COLUMNS) + '\n')
        for row in zip(*(out[c] for c in OUTPUT_COLUMNS)):
            stream.write(f'{row[0]:.3f},{row[1]:.5f},{row[2]:.4f},{row[3]:.6f},{row[4]:.3f},'
                         f'{row[5]:.3f}\n')


def parse_args(argv):
    """The parsed command line ``argv``."""
    parser = argparse.ArgumentParser(
        prog='python -m bms_ros.tools.estimate_csv',
        description='Per-cell SoC, capacity, R0 and current limits from a one-cell recording.')
    parser.add_argument('--cell', required=True, help='cell file (config/cells/*.yaml format)')
    parser.add_argument('--input', required=True,
                        help='IN.csv: t_s,current_a,voltage_v,temperature_c')
    parser.add_argument('--output', required=True, help='OUT.csv to write')
    parser.add_argument('--initial-soc', type=float, default=None,
                        help='start from this SoC (0..1) instead of reading it from the first '
                             'voltage')
    parser.add_argument('--initial-soc-std', type=float, default=None,
                        help='doubt (standard deviation, 0..1) of --initial-soc (default: '
                             'the estimator setting initial_soc_std, 0.25)')
    parser.add_argument('--current-sign', choices=('charge-positive', 'discharge-positive'),
                        default='charge-positive',
                        help='sign convention of current_a in IN.csv (default charge-positive)')
    parser.add_argument('--state', default=None,
                        help='start from a state file written by --save-state (capacity, R0, SoC)')
    parser.add_argument('--save-state', default=None, help='write the final state to this file')
    parser.add_argument('--profile', default=None,
                        help="profile YAML whose estimator: fields to use on top of the cell "
                             "file's own estimator: section, as the node takes them (default: "
                             "the cell file's alone, else the built-in defaults)")
    args = parser.parse_args(argv)
    if args.initial_soc is not None and not 0.0 <= args.initial_soc <= 1.0:
        parser.error(f'--initial-soc must be within 0..1, got {args.initial_soc}')
    if args.initial_soc_std is not None and not 0.0 < args.initial_soc_std <= 1.0:
        parser.error(f'--initial-soc-std must be within 0..1 (above 0), got '
                     f'{args.initial_soc_std}')
    if args.initial_soc_std is not None and args.initial_soc is None:
        parser.error('--initial-soc-std needs --initial-soc')
    return args


def main(argv=None):
    """The estimate_csv command line; the exit code (2 on a bad input or setting, printed)."""
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    args = parse_args(argv)
    try:
        cell = CellSpec.from_file(args.cell)
        config, source = load_config(args.profile, args.cell)
        print(settings_text(config, source), file=sys.stderr)
        if source == 'defaults':
            print('estimate_csv: warning: no --profile and no estimator: section in the cell '
                  'file: running on the built-in defaults (the shipped profiles differ, e.g. '
                  'rest_time_s)', file=sys.stderr)
        data = read_input(args.input)
        if args.current_sign == 'discharge-positive':
            data['current_a'] = -data['current_a']
        out = run(cell, data, args.initial_soc, config=config, state_path=args.state,
                  save_state_path=args.save_state, initial_soc_std=args.initial_soc_std)
        write_output(args.output, out)
    except (BmsError, OSError) as error:
        kind = 'configuration error' if isinstance(error, ConfigError) else 'error'
        print(f'estimate_csv: {kind}: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
