"""Validation of DBC mappings (bms_ros.core.can_mapping): exact error texts, file and field."""
import copy
import os

import pytest
import yaml

from bms_ros.core.can_mapping import load_dbc, load_mapping
from bms_ros.core.errors import ConfigError
from bms_ros.core.profile import config_dir

CAN_DIR = os.path.join(config_dir(), 'can')
DBC = os.path.join(CAN_DIR, 'bms_ros.dbc')
ALT_DBC = os.path.join(CAN_DIR, 'alt_bms.dbc')
MAPPING = os.path.join(CAN_DIR, 'bms_ros_mapping.yaml')
ALT_MAPPING = os.path.join(CAN_DIR, 'alt_bms_mapping.yaml')


def base():
    with open(MAPPING, encoding='utf-8') as stream:
        return yaml.safe_load(stream)


def error_of(tmp_path, mutate, cells=16, sensors=8):
    """The ConfigError of loading the project mapping after ``mutate``; fails if none."""
    data = base()
    mutate(data)
    path = tmp_path / 'mapping.yaml'
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_mapping(path, DBC, cells, sensors)
    assert info.value.path == str(path)
    return f'{info.value.field} | {info.value.problem}'


@pytest.mark.parametrize('dbc, mapping', [(DBC, MAPPING), (ALT_DBC, ALT_MAPPING)])
@pytest.mark.parametrize('cells, sensors', [(1, 1), (16, 8), (96, 48), (1000, 1000)])
def test_shipped_mappings_load_for_every_pack_size(dbc, mapping, cells, sensors):
    loaded = load_mapping(mapping, dbc, cells, sensors)
    assert loaded.mapped_fields() == {
        'cell_voltages_v', 'temperatures_degc', 'pack_current_a', 'pack_voltage_v',
        'link_voltage_v', 'negative_contactor_closed', 'positive_contactor_closed',
        'precharge_relay_closed', 'cell_balancing'}
    assert loaded.command('contactor') is not None
    assert loaded.command('balancing') is not None


def test_project_layout_and_periods():
    loaded = load_mapping(MAPPING, DBC, 96, 48)
    by_name = {m.name: m for m in loaded.measurement}
    cells = by_name['Pack_CellVoltages']
    assert (cells.frame_id, cells.is_extended, cells.mux_stride) == (0x120, False, 4)
    assert cells.mux_values == tuple(range(24))            # 96 cells / 4 per frame
    assert by_name['Pack_Temperatures'].mux_values == tuple(range(12))
    assert by_name['Pack_BalancingFeedback'].mux_values == (0, 1, 2)
    assert {n: m.period_s for n, m in by_name.items()} == {
        'Pack_CellVoltages': 0.1, 'Pack_Temperatures': 0.1, 'Pack_CurrentVoltage': 0.01,
        'Pack_Status': 0.1, 'Pack_BalancingFeedback': 0.1}
    current = by_name['Pack_CurrentVoltage'].signals[0]
    assert current.gain == pytest.approx(0.001)               # 1 mA
    assert current.invalid_raw == 2 ** 23 - 1                 # max raw value reserved
    assert (current.raw_min, current.raw_max) == (-2000000, 2000000)


def test_alt_layout_is_independent():
    loaded = load_mapping(ALT_MAPPING, ALT_DBC, 16, 8)
    by_name = {m.name: m for m in loaded.measurement}
    cells = by_name['AltBMS_CellVoltages']
    assert cells.is_extended and cells.frame_id == 0x18FF10F4
    assert (cells.mux_stride, cells.mux_first, cells.mux_values) == (3, 1, (1, 2, 3, 4, 5, 6))
    assert cells.dbc_message.signals[1].byte_order == 'big_endian'
    current = by_name['AltBMS_Power'].signals[0]
    assert current.gain == pytest.approx(-0.001)              # discharge-positive on the bus


def test_dbc_that_does_not_parse(tmp_path):
    path = tmp_path / 'broken.dbc'
    path.write_text('VERSION ""\nBO_ oops\n')
    with pytest.raises(ConfigError) as info:
        load_dbc(path)
    assert str(info.value).startswith(f'{path}: cannot load DBC: ')


def test_missing_dbc(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_dbc(tmp_path / 'none.dbc')
    assert str(info.value) == f'{tmp_path / "none.dbc"}: file not found'


def _signal(data, message, index):
    return data['measurement'][message]['signals'][index]


CASES = [
    ('unknown message', lambda d: d['measurement'][0].update(message='Pack_CellVoltage'),
     "measurement[0].message | unknown message 'Pack_CellVoltage' in bms_ros.dbc "
     "(did you mean 'Pack_CellVoltages'?)"),
    ('unknown signal', lambda d: _signal(d, 0, 1).update(signal='CellVoltage9'),
     "measurement[0].signals[1].signal | unknown signal 'CellVoltage9' in message "
     "'Pack_CellVoltages' (did you mean 'CellVoltage3'?)"),
    ('unknown field', lambda d: _signal(d, 1, 0).update(field='temperature_degc'),
     "measurement[1].signals[0].field | expected one of cell_balancing, cell_voltages_v, "
     "charger_present, link_voltage_v, negative_contactor_closed, pack_current_a, "
     "pack_voltage_v, "
     "positive_contactor_closed, precharge_relay_closed, temperatures_degc, got "
     "'temperature_degc'"),
    ('index beyond the multiplexer block', lambda d: _signal(d, 0, 1).update(index=4),
     'measurement[0].signals[1].index | 4 out of range: expected 0 <= index < '
     'multiplexer stride 4'),
    ('fixed index beyond the pack',
     lambda d: _signal(d, 2, 0).update(field='cell_voltages_v', index=20),
     'measurement[2].signals[0].index | 20 out of range: cell_voltages_v has 16 elements'),
    ('index on a scalar', lambda d: _signal(d, 2, 0).update(index=1),
     "measurement[2].signals[0].index | 'pack_current_a' is a single value, not an array"),
    ('duplicate scalar target', lambda d: _signal(d, 2, 2).update(field='pack_voltage_v'),
     'measurement[2].signals[2].field | pack_voltage_v already mapped by '
     'Pack_CurrentVoltage.PackVoltage'),
    ('duplicate element', lambda d: _signal(d, 0, 3).update(index=2),
     'measurement[0].signals[3].field | cell_voltages_v[2] already mapped by '
     'Pack_CellVoltages.CellVoltage2 (mux 0)'),
    ('cells not covered', lambda d: d['measurement'][0]['signals'].pop(),
     'measurement | cell_voltages_v[3, 7, 11, 15] not covered by any signal'),
    ('required field missing', lambda d: d['measurement'].pop(2),
     'measurement | no signal maps pack_current_a, pack_voltage_v (required)'),
    ('multiplexer missing', lambda d: d['measurement'][0].pop('multiplexer'),
     "measurement[0].multiplexer | missing: message 'Pack_CellVoltages' is multiplexed by "
     'CellVoltageMux'),
    ('not a multiplexer',
     lambda d: d['measurement'][0]['multiplexer'].update(signal='CellVoltage0'),
     "measurement[0].multiplexer.signal | 'CellVoltage0' is not a multiplexer of message "
     "'Pack_CellVoltages' (multiplexers: CellVoltageMux)"),
    ('unknown key', lambda d: d['measurement'][0].update(periode_s=0.1),
     'measurement[0].periode_s | unknown field (known: counter, message, multiplexer, '
     'period_s, signals)'),
    ('unknown counter', lambda d: d['measurement'][3].update(counter='Nope'),
     "measurement[3].counter | unknown signal 'Nope' in message 'Pack_Status'"),
    ('message twice',
     lambda d: d['measurement'].append(copy.deepcopy(d['measurement'][0])),
     "measurement[5].message | message 'Pack_CellVoltages' is mapped twice"),
    ('mixed command kinds',
     lambda d: d['commands'][0]['signals'][0].update(field='cell_bleed', bitmask=True),
     "commands[0].signals[1].field | 'precharge_closed' cannot share message "
     "'Controller_ContactorCommand' with the fields of another command"),
    ('index required', lambda d: _signal(d, 4, 0).update(bitmask=False),
     'measurement[4].signals[0].index | missing required field'),
    ('scale on a bitmask', lambda d: _signal(d, 4, 0).update(scale=2.0),
     'measurement[4].signals[0].scale | a bitmask takes its bits as they are: no scale or '
     'offset'),
    ('zero period', lambda d: d['measurement'][0].update(period_s=0),
     'measurement[0].period_s | expected a number > 0.0, got 0'),
    ('invalid marker outside the type', lambda d: _signal(d, 2, 0).update(invalid_raw=2 ** 30),
     'measurement[2].signals[0].invalid_raw | expected a number <= 8388607, got 1073741824'),
    ('zero scale', lambda d: _signal(d, 2, 0).update(scale=0),
     'measurement[2].signals[0].scale | must not be 0'),
    ('multiplexer used as a value', lambda d: _signal(d, 0, 0).update(signal='CellVoltageMux'),
     "measurement[0].signals[0].signal | 'CellVoltageMux' is already used in message "
     "'Pack_CellVoltages'"),
    ('commands missing', lambda d: d.pop('commands'),
     'commands | missing required field'),
    ('1-bit flag mapped as a value', lambda d: _signal(d, 3, 0).update(field='pack_current_a'),
     "measurement[3].signals[0].field | 'pack_current_a' is a value, but "
     "'NegativeContactorClosed' in message 'Pack_Status' is a 1-bit signal: a flag cannot be "
     'mapped onto it'),
]


@pytest.mark.parametrize('mutate, expected', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_mapping_error_texts(tmp_path, mutate, expected):
    assert error_of(tmp_path, mutate) == expected


def test_more_cells_than_the_dbc_carries(tmp_path):
    # 250 blocks of 4 cells: a 1001st cell has no signal
    assert error_of(tmp_path, lambda d: None, cells=1001) == \
        'measurement | cell_voltages_v[1000] not covered by any signal'


def test_mapping_file_errors(tmp_path):
    path = tmp_path / 'mapping.yaml'
    path.write_text('measurement: [\n')
    with pytest.raises(ConfigError, match='invalid YAML'):
        load_mapping(path, DBC, 16, 8)
    path.write_text('measurement: []\ncommands: []\nextra: 1\n')
    with pytest.raises(ConfigError) as info:
        load_mapping(path, DBC, 16, 8)
    assert str(info.value) == (f'{path}: extra: unknown field (known: commands, measurement, '
                               'pack_report, state_request)')


# Named per-cell signals (zero-padded numbers) and an 8-bit on/off signal with choices 0/1.
PADDED_DBC = """VERSION ""
NS_ :
BS_:
BU_: BMS VCU
BO_ 768 BMS_Cells: 8 BMS
 SG_ CellVoltage_017 : 0|13@1+ (0.001,0) [0|8.19] "V" VCU
 SG_ CellVoltage_197 : 13|13@1+ (0.001,0) [0|8.19] "V" VCU
 SG_ CellVoltage_170 : 26|13@1+ (0.001,0) [0|8.19] "V" VCU
 SG_ HeaterOn : 39|8@1+ (1,0) [0|1] "" VCU
 SG_ Mode : 47|8@1+ (1,0) [0|3] "" VCU
BO_ 784 VCU_Command: 1 VCU
 SG_ CloseNegative : 0|1@1+ (1,0) [0|1] "" BMS
 SG_ ClosePrecharge : 1|1@1+ (1,0) [0|1] "" BMS
 SG_ ClosePositive : 2|1@1+ (1,0) [0|1] "" BMS
BA_DEF_ BO_ "GenMsgCycleTime" INT 0 10000;
BA_ "GenMsgCycleTime" BO_ 768 100;
VAL_ 768 HeaterOn 0 "Off" 1 "On" ;
VAL_ 768 Mode 0 "Off" 1 "On" ;
"""


def _padded_error(tmp_path, signal, field='cell_voltages_v', index=0):
    dbc = tmp_path / 'padded.dbc'
    dbc.write_text(PADDED_DBC)
    mapping = {'measurement': [{'message': 'BMS_Cells', 'signals': [
        {'signal': signal, 'field': field, 'index': index}]}],
        'commands': [{'message': 'VCU_Command', 'signals': [
            {'signal': 'CloseNegative', 'field': 'negative_closed'},
            {'signal': 'ClosePrecharge', 'field': 'precharge_closed'},
            {'signal': 'ClosePositive', 'field': 'positive_closed'}]}]}
    path = tmp_path / 'mapping.yaml'
    path.write_text(yaml.safe_dump(mapping))
    with pytest.raises(ConfigError) as info:
        load_mapping(path, dbc, 1, 1)
    assert info.value.path == str(path)
    return f'{info.value.field} | {info.value.problem}'


def test_did_you_mean_prefers_the_zero_padded_name(tmp_path):
    import difflib
    # difflib alone would suggest CellVoltage_197
    assert difflib.get_close_matches('CellVoltage_17', ['CellVoltage_017', 'CellVoltage_197'],
                                     n=1) == ['CellVoltage_197']
    assert _padded_error(tmp_path, 'CellVoltage_17') == (
        "measurement[0].signals[0].signal | unknown signal 'CellVoltage_17' in message "
        "'BMS_Cells' (did you mean 'CellVoltage_017'?)")
    assert _padded_error(tmp_path, 'CellVoltage_0197') == (
        "measurement[0].signals[0].signal | unknown signal 'CellVoltage_0197' in message "
        "'BMS_Cells' (did you mean 'CellVoltage_197'?)")
    # no padded twin: the closest name as before
    assert _padded_error(tmp_path, 'CellVolage_170') == (
        "measurement[0].signals[0].signal | unknown signal 'CellVolage_170' in message "
        "'BMS_Cells' (did you mean 'CellVoltage_170'?)")


def test_boolean_choice_signal_is_not_a_value(tmp_path):
    assert _padded_error(tmp_path, 'HeaterOn', 'temperatures_degc') == (
        "measurement[0].signals[0].field | 'temperatures_degc' is a value, but 'HeaterOn' in "
        "message 'BMS_Cells' is a boolean signal (choices 0 'Off', 1 'On'): a flag cannot be "
        'mapped onto it')
    # choices 0/1 on a wider range (0..3): a value with named codes, past the flag check
    assert _padded_error(tmp_path, 'Mode', 'temperatures_degc') == (
        'measurement | no signal maps cell_voltages_v, pack_current_a, pack_voltage_v '
        '(required)')


def test_percell_invalid_flag_is_not_a_cell_voltage(tmp_path):
    fixture = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'fixtures', 'can')
    with open(os.path.join(fixture, 'percell_bms_mapping.yaml'), encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    data['measurement'][0]['signals'][0]['signal'] = 'CellVoltage_000_Invalid'
    path = tmp_path / 'mapping.yaml'
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_mapping(path, os.path.join(fixture, 'percell_bms.dbc'), 12, 6)
    assert str(info.value) == (
        f"{path}: measurement[0].signals[0].field: 'cell_voltages_v' is a value, but "
        "'CellVoltage_000_Invalid' in message 'BMS_CellVoltages' is a 1-bit signal: a flag "
        'cannot be mapped onto it')
