"""bms_ros.tools.estimate_csv: formats, sign flag, state files and clear errors on bad input."""
import csv
import subprocess
import sys

import numpy as np
import pytest

from bms_ros.core.cell import CellSpec
from bms_ros.core.estimation.synthetic import EcmCells
from bms_ros.core.profile import config_dir
from bms_ros.tools import estimate_csv

CELL = f'{config_dir()}/cells/nmc_lg_m50.yaml'


def write_recording(path, sign=1.0, seconds=1800, start_soc=0.9, extra_column=False):
    """A 1-RC truth: rest, then a 1 C discharge; current written with ``sign`` (+1 charge-pos)."""
    cell = CellSpec.from_file(CELL)
    truth = EcmCells(cell, [start_soc])
    rows = []
    for k in range(seconds):
        i = 0.0 if k < 10 else -5.0
        if k:
            truth.step(1.0, i)
        rows.append((float(k), sign * i, float(truth.voltage_v()[0]), 25.0, float(truth.soc[0])))
    with open(path, 'w') as stream:
        stream.write('# a comment line\n')
        stream.write('t_s,current_a,voltage_v,temperature_c' + (',note' if extra_column else '')
                     + '\n')
        for row in rows:
            stream.write(','.join(f'{v:.6f}' for v in row[:4]) + (',x' if extra_column else '')
                         + '\n')
    return np.array([r[4] for r in rows])


def read(path):
    with open(path) as stream:
        rows = list(csv.DictReader(stream))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def test_output_columns_and_accuracy(tmp_path):
    truth = write_recording(tmp_path / 'in.csv', extra_column=True)
    assert estimate_csv.main(['--cell', CELL, '--input', str(tmp_path / 'in.csv'),
                              '--output', str(tmp_path / 'out.csv')]) == 0
    out = read(tmp_path / 'out.csv')
    assert list(out) == list(estimate_csv.OUTPUT_COLUMNS)
    assert len(out['t_s']) == len(truth)
    assert np.max(np.abs(out['soc_est'] - truth)) < 0.01
    assert (out['ccl_a'] >= 0).all() and (out['dcl_a'] >= 0).all()
    assert np.allclose(out['capacity_est_ah'], 5.0)
    assert out['r0_est_ohm'][-1] == pytest.approx(0.022, rel=0.05)


def test_discharge_positive_flag(tmp_path):
    write_recording(tmp_path / 'pos.csv', sign=1.0)
    write_recording(tmp_path / 'neg.csv', sign=-1.0)
    estimate_csv.main(['--cell', CELL, '--input', str(tmp_path / 'pos.csv'),
                       '--output', str(tmp_path / 'a.csv')])
    estimate_csv.main(['--cell', CELL, '--input', str(tmp_path / 'neg.csv'),
                       '--output', str(tmp_path / 'b.csv'), '--current-sign',
                       'discharge-positive'])
    a, b = read(tmp_path / 'a.csv'), read(tmp_path / 'b.csv')
    assert np.array_equal(a['soc_est'], b['soc_est'])
    assert a['soc_est'][-1] < a['soc_est'][0] - 0.2        # it is a discharge


def test_initial_soc_and_state_files(tmp_path):
    truth = write_recording(tmp_path / 'in.csv')
    assert estimate_csv.main(['--cell', CELL, '--input', str(tmp_path / 'in.csv'),
                              '--output', str(tmp_path / 'out.csv'), '--initial-soc', '0.7',
                              '--save-state', str(tmp_path / 'state.json')]) == 0
    out = read(tmp_path / 'out.csv')
    assert out['soc_est'][0] > 0.75                       # pulled from 0.7 by the first voltage
    assert abs(out['soc_est'][-1] - truth[-1]) < 0.02
    assert estimate_csv.main(['--cell', CELL, '--input', str(tmp_path / 'in.csv'),
                              '--output', str(tmp_path / 'out2.csv'),
                              '--state', str(tmp_path / 'state.json')]) == 0


@pytest.mark.parametrize('content,message', [
    ('t_s,current_a,voltage_v\n0,1,3.7\n', 'missing column(s) temperature_c'),
    ('t_s,current_a,voltage_v,temperature_c\n0,1,3.7,25\n1,x,3.7,25\n',
     'line 3: current_a: not a number'),
    ('t_s,current_a,voltage_v,temperature_c\n0,1,3.7,25\n1,1,nan,25\n',
     'line 3: voltage_v: not finite'),
    ('t_s,current_a,voltage_v,temperature_c\n0,1,3.7,25\n0,1,3.7,25\n',
     'line 3: t_s 0 does not increase'),
    ('t_s,current_a,voltage_v,temperature_c\n0,1,3.7\n', 'line 2: 3 fields'),
    ('t_s,current_a,voltage_v,temperature_c\n', 'no data rows'),
    ('', 'empty'),
])
def test_bad_input_is_a_clear_error(tmp_path, capsys, content, message):
    (tmp_path / 'in.csv').write_text(content)
    code = estimate_csv.main(['--cell', CELL, '--input', str(tmp_path / 'in.csv'),
                              '--output', str(tmp_path / 'out.csv')])
    assert code == 2
    err = capsys.readouterr().err
    assert 'in.csv' in err and message in err
    assert not (tmp_path / 'out.csv').exists()


def test_bad_cell_file_and_state(tmp_path, capsys):
    write_recording(tmp_path / 'in.csv', seconds=20)
    (tmp_path / 'cell.yaml').write_text('name: x\n')
    assert estimate_csv.main(['--cell', str(tmp_path / 'cell.yaml'), '--input',
                              str(tmp_path / 'in.csv'), '--output', str(tmp_path / 'o.csv')]) == 2
    assert 'configuration error' in capsys.readouterr().err
    (tmp_path / 'state.json').write_text('{broken')
    assert estimate_csv.main(['--cell', CELL, '--input', str(tmp_path / 'in.csv'), '--output',
                              str(tmp_path / 'o.csv'), '--state',
                              str(tmp_path / 'state.json')]) == 2
    assert 'unreadable persisted state' in capsys.readouterr().err


def test_initial_soc_out_of_range_and_module_entry(tmp_path):
    write_recording(tmp_path / 'in.csv', seconds=5)
    result = subprocess.run([sys.executable, '-m', 'bms_ros.tools.estimate_csv', '--cell', CELL,
                             '--input', str(tmp_path / 'in.csv'), '--output',
                             str(tmp_path / 'o.csv'), '--initial-soc', '1.5'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and '--initial-soc must be within 0..1' in result.stderr
