"""Configuration loading, OCV tables, cell specs, profiles and atomic persistence."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bms_ros.core.cell import CellSpec
from bms_ros.core.config import Section, load_yaml
from bms_ros.core.errors import ConfigError, PersistenceError
from bms_ros.core.ocv import OcvTable
from bms_ros.core.persistence import read_json, write_json_atomic
from bms_ros.core.profile import Profile, config_dir

CONFIG = config_dir()
LFP = os.path.join(CONFIG, 'cells', 'lfp_a123_anr26650.yaml')
NMC = os.path.join(CONFIG, 'cells', 'nmc_lg_m50.yaml')


def test_core_never_imports_rclpy():
    code = ('import sys, pkgutil, importlib, bms_ros.core as c\n'
            'for m in pkgutil.walk_packages(c.__path__, "bms_ros.core."):\n'
            '    importlib.import_module(m.name)\n'
            'print("rclpy" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'False'


@pytest.mark.parametrize('data, call, message', [
    ({'x': -1}, lambda s: s.number('x', exclusive_minimum=0),
     'f.yaml: x: expected a number > 0, got -1'),
    ({'x': 'a'}, lambda s: s.number('x'), "f.yaml: x: expected a number, got 'a'"),
    ({'x': True}, lambda s: s.number('x'), 'f.yaml: x: expected a number, got True'),
    ({'x': float('nan')}, lambda s: s.number('x'), 'f.yaml: x: expected a finite number, got nan'),
    ({'x': 1.5}, lambda s: s.integer('x'), 'f.yaml: x: expected an integer, got 1.5'),
    ({}, lambda s: s.number('x'), 'f.yaml: x: missing required field'),
    ({'a': {'b': 5}}, lambda s: s.section('a').number('b', maximum=2),
     'f.yaml: a.b: expected a number <= 2, got 5'),
    ({'a': [1, 'z']}, lambda s: s.numbers('a'),
     "f.yaml: a[1]: expected a finite number, got 'z'"),
    ({'a': [2, 1]}, lambda s: s.numbers('a', increasing=True),
     'f.yaml: a: expected strictly increasing values'),
    ({'m': 'q'}, lambda s: s.string('m', choices=('on', 'off')),
     "f.yaml: m: expected one of off, on, got 'q'"),
    ({'typo': 1}, lambda s: s.reject_unknown(('good',)),
     'f.yaml: typo: unknown field (known: good)'),
])
def test_section_errors_name_file_and_field(data, call, message):
    with pytest.raises(ConfigError) as info:
        call(Section(data, 'f.yaml'))
    assert str(info.value) == message


def test_broken_yaml_names_the_file(tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('a: [1, 2\n')
    with pytest.raises(ConfigError, match=r'bad.yaml: invalid YAML'):
        load_yaml(bad)
    with pytest.raises(ConfigError, match=r'missing.yaml: file not found'):
        load_yaml(tmp_path / 'missing.yaml')
    bad.write_text('- 1\n- 2\n')
    with pytest.raises(ConfigError, match='expected a mapping at top level, got list'):
        load_yaml(bad)


def test_ocv_table_interpolates_and_inverts():
    table = OcvTable([0.0, 0.5, 1.0], [3.0, 3.6, 4.2], [0.0, 0.001, 0.0])
    assert table.ocv(0.25) == pytest.approx(3.3)
    assert table.ocv(0.5, 35.0) == pytest.approx(3.61)
    assert table.ocv(np.array([-0.1, 1.2])) == pytest.approx([3.0, 4.2])
    assert table.slope(0.25) == pytest.approx(1.2)
    assert table.soc_from_ocv(np.array([3.3, 3.9])) == pytest.approx([0.25, 0.75])


def test_shipped_ocv_tables_are_monotonic_and_match_their_cells():
    for path, low, high in ((LFP, 2.0, 3.6), (NMC, 2.5, 4.2)):
        cell = CellSpec.from_file(path)
        assert cell.ocv.ocv(0.0) == pytest.approx(low, abs=0.01)
        assert cell.ocv.ocv(1.0) == pytest.approx(high, abs=0.01)
        assert np.all(np.diff(cell.ocv.ocv_grid_v) >= 0)
        assert 'PyBaMM' in cell.ocv.source
        # round trip away from the flat ends
        z = np.linspace(0.1, 0.9, 9)
        if cell.chemistry == 'NMC':
            assert cell.ocv.soc_from_ocv(cell.ocv.ocv(z)) == pytest.approx(z, abs=0.01)


@pytest.mark.parametrize('row, message', [
    ('soc,ocv_v\n0,3\n1,x\n', "row 3.ocv_v: expected a number, got 'x'"),
    ('soc,volts\n0,3\n1,4\n', 'ocv_v: missing column (expected header soc,ocv_v)'),
    ('soc,ocv_v\n0,3\n0.5,4\n0.4,4.1\n1,4.2\n', 'soc: expected strictly increasing SoC'),
    ('soc,ocv_v\n0,3\n0.5,4\n1,3.9\n', 'ocv_v: expected OCV non-decreasing with SoC'),
    ('soc,ocv_v\n0.1,3\n1,4\n', 'soc: expected SoC to span exactly 0..1'),
])
def test_bad_ocv_table(tmp_path, row, message):
    path = tmp_path / 'ocv.csv'
    path.write_text(row)
    with pytest.raises(ConfigError) as info:
        OcvTable.from_csv(path)
    assert str(info.value) == f'{path}: {message}'


def test_unreadable_or_missing_ocv_table_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match='cannot read'):
        OcvTable.from_csv(tmp_path)                     # a folder, not a file
    with pytest.raises(ConfigError, match='file not found'):
        OcvTable.from_csv(tmp_path / 'none.csv')
    (tmp_path / 'empty.csv').write_text('# only a comment\n')
    with pytest.raises(ConfigError, match=r'no rows \(expected header soc,ocv_v\)'):
        OcvTable.from_csv(tmp_path / 'empty.csv')


def test_cell_spec_scaling_and_temperature():
    cell = CellSpec.from_file(LFP)
    group = cell.scaled(10)
    assert group.capacity_ah == pytest.approx(23.0)
    assert group.r0_ohm == pytest.approx(0.001)
    assert group.limits.discharge_current_max_a == pytest.approx(500.0)
    assert float(cell.r0_at(25.0)) == pytest.approx(cell.r0_ohm)
    assert float(cell.r0_at(0.0)) == pytest.approx(cell.r0_ohm * 2.51, rel=0.01)


def test_bad_cell_file_names_field(tmp_path):
    text = open(NMC).read().replace('voltage_min_v: 2.5', 'voltage_min_v: 4.5')
    text = text.replace('../ocv/', os.path.join(CONFIG, 'ocv') + '/')
    path = tmp_path / 'cell.yaml'
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        CellSpec.from_file(path)
    assert str(info.value) == f'{path}: limits.voltage_min_v: must be below voltage_max_v (4.2)'


def test_profiles_load():
    lfp = Profile(os.path.join(CONFIG, 'profiles', 'lfp_16s.yaml')).pack
    assert (lfp.cells_series, lfp.cells_parallel) == (16, 10)
    assert lfp.capacity_ah == pytest.approx(23.0)
    assert 48.0 < lfp.nominal_voltage_v < 54.0
    nmc = Profile(os.path.join(CONFIG, 'profiles', 'nmc_96s.yaml')).pack
    assert 340.0 < nmc.nominal_voltage_v < 370.0
    assert list(nmc.sensor_of_cell()[:4]) == [0, 0, 1, 1]


def test_persistence_is_atomic_and_reports_corruption(tmp_path):
    path = tmp_path / 'sub' / 'state.json'
    assert read_json(path) is None
    write_json_atomic(path, {'soc': [0.5, 0.6]})
    assert read_json(path) == {'soc': [0.5, 0.6]}
    assert os.listdir(path.parent) == ['state.json']  # no temporary left behind
    with pytest.raises(ValueError):
        write_json_atomic(path, {'soc': float('nan')})
    assert read_json(path) == {'soc': [0.5, 0.6]}  # a failed write keeps the old file
    assert os.listdir(path.parent) == ['state.json']
    path.write_text('{"soc": [0.5')
    with pytest.raises(PersistenceError, match='unreadable persisted state'):
        read_json(path)
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(PersistenceError, match='not a JSON object'):
        read_json(path)


def test_ocv_secant_slope_table_equals_the_direct_secant():
    """OcvTable.secant_slope (tabulated once) against the direct two-point formula, on both
    shipped tables, beyond 0..1 and with NaN.
    """
    for name in ('nmc_lg_m50', 'lfp_a123_anr26650'):
        ocv = CellSpec.from_file(os.path.join(config_dir(), 'cells', f'{name}.yaml')).ocv
        soc = np.concatenate([np.linspace(-0.2, 1.2, 20001), [np.nan]])
        for w in (0.01, 0.037):
            lo = np.clip(soc - w, 0.0, 1.0 - 2 * w)
            direct = (ocv.ocv(lo + 2 * w) - ocv.ocv(lo)) / (2 * w)
            fast = ocv.secant_slope(soc, w)
            assert np.isnan(fast[-1])
            np.testing.assert_allclose(fast[:-1], direct[:-1], rtol=0, atol=1e-9)


def test_ocv_entropic_term_and_isothermal_table():
    """OCV(z, T) = OCV_25(z) + dOCV/dT(z) (T - 25); an all-zero column changes nothing, and a
    NaN temperature gives NaN either way (no silent 25 degC).
    """
    soc, ocv_v = [0.0, 0.5, 1.0], [3.0, 3.6, 4.2]
    entropic = OcvTable(soc, ocv_v, [0.0, -2e-4, 4e-4])
    flat = OcvTable(soc, ocv_v)
    z = np.array([0.25, 0.75])
    np.testing.assert_allclose(entropic.ocv(z, 35.0), [3.3 - 1e-3, 3.9 + 1e-3])
    np.testing.assert_allclose(entropic.ocv(z, 25.0), flat.ocv(z, 35.0))
    assert flat.ocv(0.5, 40.0) == pytest.approx(3.6)
    assert np.isnan(flat.ocv(0.5, float('nan'))) and np.isnan(entropic.ocv(0.5, float('nan')))
