"""Multiplexed layouts the codec was not written around (issue 15): a DBC with every cell as
its own named signal in its own branch (named VAL_ choices, 13-bit big-endian values with an
invalid flag beside each) and nested multiplexing, encoded with cantools itself.
"""
import os

import can
import cantools
import numpy as np
import pytest
import yaml

from bms_ros.core.can_codec import CanProtocol, MeasurementAssembler
from bms_ros.core.can_mapping import load_mapping
from bms_ros.core.errors import ConfigError

FIXTURES = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'can')
DBC = os.path.join(FIXTURES, 'percell_bms.dbc')
MAPPING = os.path.join(FIXTURES, 'percell_bms_mapping.yaml')
CELLS, SENSORS = 12, 6
# temperature n: (module choice, inner multiplexer, block)
TEMPERATURE_BRANCH = {0: ('Module_A', 'TempBlockA', 0), 1: ('Module_A', 'TempBlockA', 0),
                      2: ('Module_A', 'TempBlockA', 1), 3: ('Module_A', 'TempBlockA', 1),
                      4: ('Module_B', 'TempBlockB', 0), 5: ('Module_B', 'TempBlockB', 0)}


@pytest.fixture(scope='module')
def db():
    return cantools.database.load_file(DBC)


@pytest.fixture(scope='module')
def proto():
    return CanProtocol.from_files(DBC, MAPPING, CELLS, SENSORS)


def _message(db, name, data):
    """A can.Message of DBC message ``name`` encoded by cantools from physical values."""
    m = db.get_message_by_name(name)
    return can.Message(arbitration_id=m.frame_id, data=m.encode(data), is_extended_id=False)


def _cell_frames(db, cells_mv, counter0=0, invalid=()):
    """One frame per branch, choices by name; the counter runs over all branches."""
    frames = []
    for block in range(4):
        data = {'CellMuxIndex': f'Cells_{3 * block:03d}_{3 * block + 2:03d}',
                'CellMsgCounter': (counter0 + block) % 16}
        for n in range(3 * block, 3 * block + 3):
            data[f'CellVoltage_{n:03d}'] = int(cells_mv[n]) / 1000.0
            data[f'CellVoltage_{n:03d}_Invalid'] = 'Invalid' if n in invalid else 'Valid'
        frames.append(_message(db, 'BMS_CellVoltages', data))
    return frames


def _temperature_frames(db, temps_degc):
    frames = []
    for n in (0, 2, 4):
        module, inner, block = TEMPERATURE_BRANCH[n]
        frames.append(_message(db, 'BMS_Temperatures', {
            'TempModule': module, inner: block, f'Temperature_{n:02d}': int(temps_degc[n]),
            f'Temperature_{n + 1:02d}': int(temps_degc[n + 1]), 'TempStatus': 0}))
    return frames


def _pack_frame(db, current_a, voltage_v):
    return _message(db, 'BMS_PackData', {'PackCurrent': current_a, 'PackVoltage': voltage_v})


def test_the_mapping_takes_absolute_indices_and_nested_multiplexers(proto):
    by_name = {m.name: m for m in proto.measurement_messages}
    cells = by_name['BMS_CellVoltages']
    assert (cells.mux_signal, cells.mux_stride, cells.mux_values) == \
        ('CellMuxIndex', None, (0, 1, 2, 3))
    temps = by_name['BMS_Temperatures']
    assert (temps.mux_signal, temps.mux_stride, temps.mux_values) == ('TempModule', None, (0, 1))
    assert [s.index for s in temps.signals] == list(range(6))


def test_every_cell_and_temperature_decodes_exactly(db, proto):
    rng = np.random.default_rng(15)
    cells_mv = rng.integers(2500, 4200, CELLS)
    temps = rng.integers(-40, 150, SENSORS)
    frames = (_cell_frames(db, cells_mv) + _temperature_frames(db, temps)
              + [_pack_frame(db, -123.4, 51.23)])
    assembler = MeasurementAssembler(proto)
    for frame in frames:
        assert assembler.feed(frame, 5.0) is True
    got = assembler.snapshot(5.0, 0.5)
    np.testing.assert_allclose(got.cell_voltages_v, cells_mv * 0.001, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(got.temperatures_degc, temps.astype(float))
    assert got.pack_current_a == pytest.approx(-123.4, abs=1e-9)
    assert got.pack_voltage_v == pytest.approx(51.23, abs=1e-9)
    assert got.cell_voltage_valid.all() and got.temperature_valid.all()
    assert not (got.cell_voltages_stale or got.temperatures_stale or got.current_stale)
    assert got.frames_rejected == 0 and sum(got.counts.values()) == 0


def test_counters_tell_unmapped_branches_from_decode_errors_and_unknown_ids(db, proto):
    assembler = MeasurementAssembler(proto)
    for frame in _cell_frames(db, np.full(CELLS, 3300)):           # counters 0..3
        assembler.feed(frame, 1.0)
    diagnostics = _message(db, 'BMS_CellVoltages', {               # a branch nobody maps
        'CellMuxIndex': 'Diagnostics', 'BalancerTemperature': 30, 'CellMsgCounter': 4})
    assert assembler.feed(diagnostics, 1.0) is True
    bad_mux = bytearray(diagnostics.data)
    bad_mux[0] = 9                                                 # no such branch in the DBC
    assert assembler.feed(can.Message(arbitration_id=0x300, data=bad_mux,
                                      is_extended_id=False), 1.0) is False
    assert assembler.feed(can.Message(arbitration_id=0x7FF, data=bytes(8),
                                      is_extended_id=False), 1.0) is False
    got = assembler.snapshot(1.0, 0.5)
    assert {k: v for k, v in got.counts.items() if v} == {
        'unmapped_branch': 1, 'decode_error': 1, 'unknown_id': 1}
    assert got.cell_voltage_valid.all()
    np.testing.assert_allclose(got.cell_voltages_v, np.full(CELLS, 3.3), atol=1e-9)


def test_invalid_raw_marker_and_counter_work_with_named_branches(db, proto):
    assembler = MeasurementAssembler(proto)
    cells = np.full(CELLS, 3300)
    first = _cell_frames(db, cells)
    for frame in first:
        assembler.feed(frame, 1.0)
    # cell 7 raw 8191 (the maximum: invalid marker); the next cycle in sequence (counters 4..7)
    m = db.get_message_by_name('BMS_CellVoltages')
    frames = _cell_frames(db, np.full(CELLS, 3400), counter0=4)
    raw = m.decode(bytes(frames[2].data), decode_choices=False, scaling=False)
    raw['CellVoltage_007'] = 8191
    frames[2] = can.Message(arbitration_id=m.frame_id, is_extended_id=False,
                            data=m.encode(raw, scaling=False, strict=False))
    for frame in frames:
        assembler.feed(frame, 1.1)
    got = assembler.snapshot(1.1, 0.5)
    assert np.isnan(got.cell_voltages_v[7]) and got.cell_voltage_valid.sum() == CELLS - 1
    assert got.counts['invalid_marker'] == 1
    # the whole first cycle again: a replayed branch sequence is dropped (counter step back)
    for frame in first:
        assembler.feed(frame, 1.2)
    got = assembler.snapshot(1.2, 0.5)
    assert got.counter_stale == ('BMS_CellVoltages',) and got.cell_voltages_stale
    assert got.counts['counter_jump'] == 3


def _mapping_error(tmp_path, mutate):
    with open(MAPPING, encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    mutate(data)
    path = tmp_path / 'mapping.yaml'
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_mapping(path, DBC, CELLS, SENSORS)
    return f'{info.value.field} | {info.value.problem}'


def test_a_stride_needs_signals_in_the_named_multiplexer_branches(tmp_path):
    def mutate(data):        # TempStatus is in every frame: no branch to stride over
        data['measurement'][1]['multiplexer']['stride'] = 1
        data['measurement'][1]['signals'] = [
            {'signal': 'TempStatus', 'field': 'temperatures_degc', 'index': 0}]
    assert _mapping_error(tmp_path, mutate) == (
        "measurement[1].signals[0].signal | 'TempStatus' is not in a branch of 'TempModule' "
        '(give no stride for absolute indices)')


def test_first_without_a_stride_is_refused(tmp_path):
    assert _mapping_error(tmp_path, lambda d: d['measurement'][0]['multiplexer'].update(
        first=1)) == ('measurement[0].multiplexer.first | only with a stride (absolute '
                      'indices need no first)')


def test_an_absolute_index_beyond_the_pack_is_refused(tmp_path):
    assert _mapping_error(tmp_path, lambda d: d['measurement'][0]['signals'][11].update(
        index=12)) == ('measurement[0].signals[11].index | 12 out of range: cell_voltages_v '
                       'has 12 elements')


def test_the_inner_multiplexer_with_a_stride_addresses_blocks(tmp_path):
    """The same message mapped by its inner multiplexer TempBlockA with a stride of 2."""
    with open(MAPPING, encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    data['measurement'][1] = {
        'message': 'BMS_Temperatures', 'multiplexer': {'signal': 'TempBlockA', 'stride': 2},
        'signals': [{'signal': 'Temperature_00', 'field': 'temperatures_degc', 'index': 0},
                    {'signal': 'Temperature_01', 'field': 'temperatures_degc', 'index': 1},
                    {'signal': 'Temperature_02', 'field': 'temperatures_degc', 'index': 0},
                    {'signal': 'Temperature_03', 'field': 'temperatures_degc', 'index': 1}]}
    path = tmp_path / 'mapping.yaml'
    path.write_text(yaml.safe_dump(data))
    proto = CanProtocol(load_mapping(path, DBC, CELLS, 4))
    db = cantools.database.load_file(DBC)
    assembler = MeasurementAssembler(proto)
    for frame in _temperature_frames(db, [10, 11, 12, 13, 14, 15]):
        assembler.feed(frame, 0.0)
    got = assembler.snapshot(0.0, 0.5)
    # Module_B's frame has no TempBlockA: nothing of it is mapped (an unmapped branch)
    np.testing.assert_array_equal(got.temperatures_degc, [10.0, 11.0, 12.0, 13.0])
    assert got.counts['unmapped_branch'] == 1


def test_the_pack_encoder_sends_every_branch_of_a_nested_multiplexer(proto):
    from bms_ros.core.can_codec import PackEncoder
    state = {'cell_voltages_v': np.linspace(3.2, 3.311, CELLS),
             'temperatures_degc': np.arange(-5.0, -5.0 + SENSORS), 'pack_current_a': 2.5,
             'pack_voltage_v': 39.6}
    frames = PackEncoder(proto).encode_all(state)
    temperatures = [f for f in frames if f.arbitration_id == 0x301]
    # module A block 0, module A block 1, module B block 0
    assert [(f.data[0], f.data[1]) for f in temperatures] == [(0, 0), (0, 1), (1, 0)]
    assembler = MeasurementAssembler(proto)
    assert assembler.feed_many(frames, 1.0) == len(frames)
    snap = assembler.snapshot(1.0, 0.5)
    np.testing.assert_allclose(snap.temperatures_degc, state['temperatures_degc'], atol=0.5)
    np.testing.assert_allclose(snap.cell_voltages_v, state['cell_voltages_v'], atol=0.0005)
    assert not snap.temperatures_stale and sum(snap.counts.values()) == 0
