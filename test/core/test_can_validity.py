"""Validity of a mapped value (issue 15 item 3): an invalid flag, error bits or the invalid raw
marker each make the value NaN and invalid (stamped, counted per reason), never a stale-looking
valid value; the flag and error signals are checked at load (same message and branch).
"""
import os

import can
import cantools
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bms_ros.core.can_codec import CanProtocol, MeasurementAssembler, PackEncoder
from bms_ros.core.can_mapping import load_mapping
from bms_ros.core.errors import ConfigError

FIXTURES = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'can')
DBC = os.path.join(FIXTURES, 'percell_bms.dbc')
MAPPING = os.path.join(FIXTURES, 'percell_bms_mapping.yaml')
CELLS, SENSORS = 12, 6

# a valid-flag (1 = valid), a valid flag of another branch, a multi-bit status, a signed one
VALID_DBC = """VERSION ""
NS_ :
BS_:
BU_: BMS VCU
BO_ 512 Pack_Values: 8 BMS
 SG_ Mux M : 7|2@0+ (1,0) [0|3] "" VCU
 SG_ Current : 15|16@0- (0.01,0) [-300|300] "A" VCU
 SG_ CurrentValid : 5|1@0+ (1,0) [0|1] "" VCU
 SG_ Voltage m0 : 31|16@0+ (0.01,0) [0|600] "V" VCU
 SG_ VoltageValid m0 : 4|1@0+ (1,0) [0|1] "" VCU
 SG_ LinkVoltage m1 : 31|16@0+ (0.01,0) [0|600] "V" VCU
 SG_ Status : 47|8@0+ (1,0) [0|255] "" VCU
 SG_ SignedStatus : 55|8@0- (1,0) [-128|127] "" VCU
BO_ 513 Pack_Cells: 2 BMS
 SG_ Cell0 : 7|8@0+ (0.02,0) [0|5] "V" VCU
 SG_ Temp0 : 15|8@0+ (1,-40) [-40|150] "degC" VCU
BO_ 514 Cmd: 1 VCU
 SG_ N : 0|1@1+ (1,0) [0|1] "" BMS
 SG_ P : 1|1@1+ (1,0) [0|1] "" BMS
 SG_ Q : 2|1@1+ (1,0) [0|1] "" BMS
BA_DEF_ BO_ "GenMsgCycleTime" INT 0 10000;
BA_ "GenMsgCycleTime" BO_ 512 10;
BA_ "GenMsgCycleTime" BO_ 513 100;
"""


def _valid_mapping(current=None, voltage=None):
    return {
        'measurement': [
            {'message': 'Pack_Values', 'multiplexer': {'signal': 'Mux'}, 'signals': [
                {'signal': 'Current', 'field': 'pack_current_a', 'invalid_raw': None,
                 **(current or {})},
                {'signal': 'Voltage', 'field': 'pack_voltage_v', 'invalid_raw': None,
                 **(voltage or {})}]},
            {'message': 'Pack_Cells', 'signals': [
                {'signal': 'Cell0', 'field': 'cell_voltages_v', 'index': 0},
                {'signal': 'Temp0', 'field': 'temperatures_degc', 'index': 0}]}],
        'commands': [{'message': 'Cmd', 'signals': [
            {'signal': 'N', 'field': 'negative_closed'},
            {'signal': 'P', 'field': 'precharge_closed'},
            {'signal': 'Q', 'field': 'positive_closed'}]}]}


def _load(tmp_path, data, dbc_text=VALID_DBC):
    dbc = tmp_path / 'pack.dbc'
    dbc.write_text(dbc_text)
    path = tmp_path / 'mapping.yaml'
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path), str(dbc)


def _error(tmp_path, data):
    path, dbc = _load(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_mapping(path, dbc, 1, 1)
    assert info.value.path == path
    return f'{info.value.field} | {info.value.problem}'


def _percell(tmp_path, flags=True, temperature_error=None):
    data = yaml.safe_load(open(MAPPING, encoding='utf-8'))
    if flags:
        for s in data['measurement'][0]['signals']:
            s['invalid_flag'] = s['signal'] + '_Invalid'
    if temperature_error is not None:
        for s in data['measurement'][1]['signals']:
            s.update(error_bits='TempStatus', error_mask=temperature_error)
    path = tmp_path / 'percell.yaml'
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return CanProtocol(load_mapping(str(path), DBC, CELLS, SENSORS))


def _cells_frame(db, block, cells_mv, invalid=(), counter=0):
    m = db.get_message_by_name('BMS_CellVoltages')
    data = {'CellMuxIndex': block, 'CellMsgCounter': counter}
    for n in range(3 * block, 3 * block + 3):
        data[f'CellVoltage_{n:03d}'] = cells_mv[n]
        data[f'CellVoltage_{n:03d}_Invalid'] = int(n in invalid)
    return can.Message(arbitration_id=m.frame_id, is_extended_id=False,
                       data=m.encode(data, scaling=False, strict=False))


@pytest.fixture(scope='module')
def db():
    return cantools.database.load_file(DBC)


def test_an_invalid_flag_makes_its_value_nan(tmp_path, db):
    proto = _percell(tmp_path)
    assembler = MeasurementAssembler(proto)
    cells_mv = [3300 + n for n in range(CELLS)]
    frames = [_cells_frame(db, b, cells_mv, invalid=(4,), counter=b) for b in range(4)]
    assembler.feed_many(frames, 1.0)
    snap = assembler.snapshot(1.0, 0.5)
    expected = np.array(cells_mv) / 1000.0
    expected[4] = np.nan
    np.testing.assert_allclose(snap.cell_voltages_v, expected, atol=1e-9)  # the raw was valid
    assert snap.cell_voltage_valid.tolist() == [n != 4 for n in range(CELLS)]
    assert not snap.cell_voltages_stale          # stamped: the sender is alive
    assert snap.counts['invalid_flag'] == 1 and snap.counts['invalid_marker'] == 0
    # the next frame with the flag clear makes it valid again
    assembler.feed(_cells_frame(db, 1, cells_mv, counter=4), 1.1)
    assert assembler.snapshot(1.1, 0.5).cell_voltages_v[4] == pytest.approx(3.304, abs=1e-9)
    # without invalid_flag in the mapping the same frame's value would pass as valid
    plain = MeasurementAssembler(_percell(tmp_path, flags=False))
    plain.feed_many(frames, 1.0)
    assert plain.snapshot(1.0, 0.5).cell_voltages_v[4] == pytest.approx(3.304, abs=1e-9)


def test_the_encoder_sets_the_flag_for_nan_and_the_decoder_reads_it(tmp_path):
    proto = _percell(tmp_path)
    state = {'cell_voltages_v': np.full(CELLS, 3.3), 'temperatures_degc': np.full(SENSORS, 25.0),
             'pack_current_a': 1.0, 'pack_voltage_v': 40.0}
    state['cell_voltages_v'][7] = np.nan
    frames = PackEncoder(proto).encode_all(state)
    block = next(f for f in frames if f.arbitration_id == 0x300 and f.data[0] == 2)
    decoded = cantools.database.load_file(DBC).decode_message(0x300, block.data,
                                                              decode_choices=False)
    assert (decoded['CellVoltage_006_Invalid'], decoded['CellVoltage_007_Invalid'],
            decoded['CellVoltage_008_Invalid']) == (0, 1, 0)
    assembler = MeasurementAssembler(proto)
    assembler.feed_many(frames, 1.0)
    snap = assembler.snapshot(1.0, 0.5)
    assert np.isnan(snap.cell_voltages_v[7]) and not snap.cell_voltage_valid[7]
    assert snap.cell_voltage_valid.sum() == CELLS - 1


def test_error_bits_with_a_mask(tmp_path, db):
    proto = _percell(tmp_path, temperature_error=0x01)
    assembler = MeasurementAssembler(proto)
    m = db.get_message_by_name('BMS_Temperatures')

    def frame(status):
        return can.Message(arbitration_id=m.frame_id, is_extended_id=False, data=m.encode(
            {'TempModule': 0, 'TempBlockA': 0, 'Temperature_00': 21, 'Temperature_01': 22,
             'TempStatus': status}))
    assembler.feed(frame(0x02), 1.0)                # outside the mask: valid
    assert assembler.latest('temperatures_degc', 0) == pytest.approx(21.0)
    assembler.feed(frame(0x03), 1.1)
    snap = assembler.snapshot(1.1, 0.5)
    assert np.isnan(snap.temperatures_degc[:2]).all() and not snap.temperature_valid[:2].any()
    assert snap.counts['error_bits'] == 2          # both values of the frame


def test_the_invalid_raw_marker_still_works_beside_a_flag(tmp_path, db):
    proto = _percell(tmp_path)
    assembler = MeasurementAssembler(proto)
    cells_mv = [3300] * CELLS
    cells_mv[2] = 8191                               # the 13-bit maximum: invalid_raw max
    assembler.feed(_cells_frame(db, 0, cells_mv), 1.0)
    snap = assembler.snapshot(1.0, 0.5)
    assert np.isnan(snap.cell_voltages_v[2]) and snap.cell_voltages_v[1] == pytest.approx(3.3)
    assert snap.counts['invalid_marker'] == 1 and snap.counts['invalid_flag'] == 0


def test_a_valid_flag_invalid_when_zero(tmp_path):
    path, dbc = _load(tmp_path, _valid_mapping(
        current={'invalid_flag': 'CurrentValid', 'invalid_when': 0},
        voltage={'invalid_flag': 'VoltageValid', 'invalid_when': 0}))
    proto = CanProtocol.from_files(dbc, path, 1, 1)
    m = cantools.database.load_file(dbc).get_message_by_name('Pack_Values')
    assembler = MeasurementAssembler(proto)
    for t, valid in ((1.0, 1), (1.1, 0)):
        data = m.encode({'Mux': 0, 'Current': -12.5, 'CurrentValid': valid, 'Voltage': 48.0,
                         'VoltageValid': valid, 'Status': 0, 'SignedStatus': 0})
        assembler.feed(can.Message(arbitration_id=512, data=data, is_extended_id=False), t)
        snap = assembler.snapshot(t, 0.5)
        if valid:
            assert (snap.pack_current_a, snap.pack_voltage_v) == (pytest.approx(-12.5),
                                                                  pytest.approx(48.0))
        else:
            assert np.isnan(snap.pack_current_a) and np.isnan(snap.pack_voltage_v)
    assert assembler.counts['invalid_flag'] == 2


@pytest.mark.parametrize('current, voltage, expected', [
    ({'invalid_flag': 'CurentValid'}, None,
     "measurement[0].signals[0].invalid_flag | unknown signal 'CurentValid' in message "
     "'Pack_Values' (did you mean 'CurrentValid'?)"),
    ({'invalid_flag': 'Status'}, None,
     "measurement[0].signals[0].invalid_flag | 'Status' has 8 bits: an invalid_flag is a 1-bit "
     'or boolean signal (error_bits takes a multi-bit one)'),
    ({'invalid_flag': 'VoltageValid'}, None,     # only in branch 0, the current is in every frame
     "measurement[0].signals[0].invalid_flag | 'VoltageValid' is not in every frame that "
     "carries 'Current' (another multiplexer branch)"),
    ({'invalid_flag': 'Current'}, None,
     "measurement[0].signals[0].invalid_flag | 'Current' is the value itself, not a flag"),
    ({'invalid_flag': 'Mux'}, None,
     "measurement[0].signals[0].invalid_flag | 'Mux' is a multiplexer, not a flag"),
    ({'invalid_flag': 'CurrentValid', 'invalid_when': 2}, None,
     'measurement[0].signals[0].invalid_when | expected a number <= 1, got 2'),
    ({'invalid_when': 0}, None,
     'measurement[0].signals[0].invalid_when | only with an invalid_flag'),
    ({'error_bits': 'SignedStatus'}, None,
     "measurement[0].signals[0].error_bits | 'SignedStatus' is signed: error bits are an "
     'unsigned signal'),
    ({'error_bits': 'Status', 'error_mask': 256}, None,
     'measurement[0].signals[0].error_mask | expected a number <= 255, got 256'),
    ({'error_mask': 3}, None, 'measurement[0].signals[0].error_mask | only with error_bits'),
    # a value of branch 0 with a flag that is in every frame: fine
    (None, {'invalid_flag': 'CurrentValid'}, None),
])
def test_validity_errors_name_file_and_field(tmp_path, current, voltage, expected):
    data = _valid_mapping(current, voltage)
    if expected is None:
        path, dbc = _load(tmp_path, data)
        loaded = load_mapping(path, dbc, 1, 1)
        voltage_map = loaded.measurement[0].signals[1]
        assert (voltage_map.flag, voltage_map.flag_invalid) == ('CurrentValid', 1)
        return
    assert _error(tmp_path, data) == expected


def test_a_flag_in_another_branch_is_refused_for_named_signals(tmp_path):
    data = yaml.safe_load(open(MAPPING, encoding='utf-8'))
    data['measurement'][0]['signals'][0]['invalid_flag'] = 'CellVoltage_003_Invalid'
    path = tmp_path / 'm.yaml'
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        load_mapping(str(path), DBC, CELLS, SENSORS)
    assert info.value.field == 'measurement[0].signals[0].invalid_flag'
    assert info.value.problem == ("'CellVoltage_003_Invalid' is not in every frame that "
                                  "carries 'CellVoltage_000' (another multiplexer branch)")
    # the outer branch's signal is in every frame of an inner one (nested multiplexing)
    data = yaml.safe_load(open(MAPPING, encoding='utf-8'))
    data['measurement'][1]['signals'][0]['error_bits'] = 'TempBlockA'
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match="'TempBlockA' is a multiplexer, not a flag"):
        load_mapping(str(path), DBC, CELLS, SENSORS)


@settings(max_examples=200, deadline=None)
@given(raw=st.integers(0, 8191), flag=st.integers(0, 1), block=st.integers(0, 3),
       slot=st.integers(0, 2))
def test_decoded_value_is_nan_exactly_when_flagged_or_marked(tmp_path_factory, raw, flag,
                                                             block, slot):
    proto = _PROTO.get('p') or _PROTO.setdefault('p', _percell(tmp_path_factory.mktemp('v')))
    assembler = MeasurementAssembler(proto)
    cell = 3 * block + slot
    cells_mv = [3300] * CELLS
    cells_mv[cell] = raw
    assembler.feed(_cells_frame(_DB, block, cells_mv, invalid=(cell,) if flag else ()), 1.0)
    value = assembler.snapshot(1.0, 0.5).cell_voltages_v[cell]
    if flag or raw == 8191:
        assert np.isnan(value)
    else:
        assert value == pytest.approx(raw / 1000.0, abs=1e-9)


_PROTO = {}
_DB = cantools.database.load_file(DBC)


_ANY = st.one_of(st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=True),
                 st.sampled_from(['CurrentValid', 'VoltageValid', 'Status', 'SignedStatus',
                                  'Mux', 'Current', 'Nope', '']),
                 st.lists(st.integers(0, 1), max_size=2), st.dictionaries(st.text(max_size=2),
                                                                           st.integers(),
                                                                           max_size=1))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(['invalid_flag', 'invalid_when', 'error_bits',
                                        'error_mask']), _ANY, max_size=4))
def test_any_validity_keys_load_or_give_a_config_error(tmp_path_factory, keys):
    path, dbc = _load(tmp_path_factory.mktemp('k'), _valid_mapping(current=keys))
    try:
        loaded = load_mapping(path, dbc, 1, 1)
    except ConfigError as error:
        assert error.path == path and error.field.startswith('measurement[0].signals[0].')
        return
    current = loaded.measurement[0].signals[0]
    assert current.flag in (None, 'CurrentValid') and current.flag_invalid in (0, 1)
    assert current.error in (None, 'Status', 'CurrentValid') and 0 <= current.error_mask <= 255


STATE_DBC = VALID_DBC.replace(
    ' SG_ SignedStatus : 55|8@0- (1,0) [-128|127] "" VCU\n',
    ' SG_ SignedStatus : 55|8@0- (1,0) [-128|127] "" VCU\n'
    ' SG_ PosState : 57|2@1+ (1,0) [0|3] "" VCU\n'
    ' SG_ NegState : 59|2@1+ (1,0) [0|3] "" VCU\n')


@pytest.mark.parametrize('invalid_raw', [3, None])
def test_a_two_bit_contactor_state_that_is_not_0_or_1_is_unknown_not_closed(tmp_path,
                                                                           invalid_raw):
    """J1939 style: 0 open, 1 closed, 2 error, 3 not available; only 0 and 1 are feedback."""
    data = _valid_mapping()
    data['measurement'][0]['signals'] += [
        {'signal': 'PosState', 'field': 'positive_contactor_closed', 'invalid_raw': invalid_raw},
        {'signal': 'NegState', 'field': 'negative_contactor_closed', 'invalid_raw': invalid_raw}]
    path, dbc = _load(tmp_path, data, STATE_DBC)
    proto = CanProtocol.from_files(dbc, path, 1, 1)
    m = cantools.database.load_string(STATE_DBC).get_message_by_name('Pack_Values')
    assembler = MeasurementAssembler(proto)

    def feed(pos, neg, t):
        assembler.feed(can.Message(arbitration_id=m.frame_id, is_extended_id=False, data=m.encode(
            {'Mux': 0, 'Current': 1.0, 'CurrentValid': 1, 'Voltage': 50.0, 'VoltageValid': 1,
             'Status': 0, 'SignedStatus': 0, 'PosState': pos, 'NegState': neg})), t)
        return assembler.snapshot(t, 0.5)

    snap = feed(1, 1, 1.0)
    assert snap.positive_contactor_closed and snap.negative_contactor_closed
    assert not snap.contactors_stale
    for k, state in enumerate((2, 3)):
        snap = feed(state, 0, 1.1 + k / 10)
        assert not snap.positive_contactor_closed and not snap.negative_contactor_closed
        assert snap.contactors_stale, f'state {state} must read unknown, not open'
    counts = snap.counts
    if invalid_raw == 3:
        assert (counts['invalid_marker'], counts['out_of_range']) == (1, 1)
    else:
        assert (counts['invalid_marker'], counts['out_of_range']) == (0, 2)
    snap = feed(0, 0, 1.5)
    assert not snap.contactors_stale and not snap.positive_contactor_closed
