"""Starter mappings guessed from a DBC (bms_ros.core.dbc_skeleton): the guessed lines alone
load through load_mapping and map cells, temperatures and current as the shipped mappings do.
"""
import os

import pytest

from bms_ros.core.can_mapping import load_dbc, load_mapping
from bms_ros.core.dbc_skeleton import skeleton
from bms_ros.core.profile import config_dir
from bms_ros.tools import dbc_skeleton as tool

CAN_DIR = os.path.join(config_dir(), 'can')
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'fixtures', 'can')
CASES = [
    (os.path.join(CAN_DIR, 'bms_ros.dbc'), os.path.join(CAN_DIR, 'bms_ros_mapping.yaml'), 16, 8),
    (os.path.join(CAN_DIR, 'alt_bms.dbc'), os.path.join(CAN_DIR, 'alt_bms_mapping.yaml'), 16, 8),
    (os.path.join(FIXTURES, 'percell_bms.dbc'),
     os.path.join(FIXTURES, 'percell_bms_mapping.yaml'), 12, 6),
]
COMPARED = ('cell_voltages_v', 'temperatures_degc', 'pack_current_a', 'pack_voltage_v')


def owners(mapping):
    """(field, element) -> (message, signal, sign of the gain) of every mapped element."""
    out = {}
    for mm in mapping.measurement:
        for s in mm.signals:
            if s.field not in COMPARED:
                continue
            n = mapping.field_length(s.field)
            for mux in (mm.mux_values or (None,)):
                if mm.mux_stride is None and mux is not None and \
                        s.signal not in _branch_signals(mm, mux):
                    continue
                e = mm.element(s, mux)
                if e < n:
                    out[(s.field, e)] = (mm.name, s.signal, s.gain > 0)
    return out


def _branch_signals(mm, mux):
    return {t.name for t in mm.dbc_message.signals if not t.multiplexer_ids
            or mux in t.multiplexer_ids or t.multiplexer_signal != mm.mux_signal}


@pytest.mark.parametrize('dbc, shipped, cells, sensors', CASES,
                         ids=[os.path.basename(c[0]) for c in CASES])
def test_skeleton_loads_and_maps_as_the_shipped_mapping(tmp_path, dbc, shipped, cells, sensors):
    text = skeleton(load_dbc(dbc), os.path.basename(dbc), cells, sensors)
    path = tmp_path / 'skeleton.yaml'
    path.write_text(text)
    guessed = load_mapping(path, dbc, cells, sensors)        # nothing uncommented
    reference = load_mapping(shipped, dbc, cells, sensors)
    got, want = owners(guessed), owners(reference)
    assert len(want) == cells + sensors + 2
    assert got == want
    assert guessed.mapped_fields() == reference.mapped_fields()
    for kind in ('contactor', 'balancing'):
        ours, theirs = guessed.command(kind), reference.command(kind)
        assert (ours and ours.name) == (theirs and theirs.name)


def test_percell_flags_and_diagnostics_stay_commented(tmp_path):
    dbc = os.path.join(FIXTURES, 'percell_bms.dbc')
    text = skeleton(load_dbc(dbc), 'percell_bms.dbc', 12, 6)
    lines = text.splitlines()
    for name in ('CellVoltage_000_Invalid', 'BalancerTemperature', 'TempStatus'):
        line = next(line for line in lines if f'signal: {name},' in line)
        assert line.lstrip().startswith('#'), line
    # the multiplexer's named choices are shown
    assert any('4 Diagnostics' in line and line.lstrip().startswith('#') for line in lines)
    # fewer cells: the named signals beyond the pack stay commented out, and it still loads
    short = skeleton(load_dbc(dbc), 'percell_bms.dbc', 9, 6)
    line = next(line for line in short.splitlines() if 'signal: CellVoltage_010,' in line)
    assert line.lstrip().startswith('#') and 'beyond the pack (9)' in line
    path = tmp_path / 'short.yaml'
    path.write_text(short)
    assert load_mapping(path, dbc, 9, 6).field_length('cell_voltages_v') == 9


def test_missing_period_is_a_todo(tmp_path):
    dbc = tmp_path / 'nocycle.dbc'
    dbc.write_text('VERSION ""\nNS_ :\nBS_:\nBU_: BMS VCU\n'
                   'BO_ 256 Pack: 4 BMS\n'
                   ' SG_ PackCurrent : 0|16@1- (0.1,0) [-3000|3000] "A" VCU\n'
                   ' SG_ PackVoltage : 16|16@1+ (0.01,0) [0|600] "V" VCU\n')
    text = skeleton(load_dbc(dbc), 'nocycle.dbc')
    assert '  #   period_s: TODO    # no cycle time in the DBC: required for a measurement ' \
           'message' in text.splitlines()
    assert '# TODO measurement: nothing guessed for cell_voltages_v, temperatures_degc ' \
           '(required)' in text.splitlines()


def test_tool_prints_and_exits_2_on_a_bad_dbc(tmp_path, capsys):
    assert tool.main([os.path.join(CAN_DIR, 'bms_ros.dbc'), '--cells', '16']) == 0
    assert capsys.readouterr().out.startswith('# Starter mapping of bms_ros.dbc')
    assert tool.main([str(tmp_path / 'none.dbc')]) == 2
    assert capsys.readouterr().err == f'dbc_skeleton: {tmp_path / "none.dbc"}: file not found\n'
