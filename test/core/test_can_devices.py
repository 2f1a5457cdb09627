"""Several devices on one CAN bus (core/can_devices.py, issue 15 item 2): a BMS DBC and a
separate current sensor in mA with its own error bits, plus an ignored device; id clashes, an
element mapped twice, required fields over the union, per-device counters.
"""
import os
import shutil

import can
import cantools
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bms_ros.core.can_bus import load_can_settings
from bms_ros.core.can_codec import CanProtocol, CommandEncoder, MeasurementAssembler, PackEncoder
from bms_ros.core.can_devices import BusMapping, CanDevice, load_devices
from bms_ros.core.config import Section
from bms_ros.core.errors import ConfigError

FIXTURES = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'can')
BMS_DBC = os.path.join(FIXTURES, 'percell_bms.dbc')
BMS_MAPPING = os.path.join(FIXTURES, 'percell_bms_bus_mapping.yaml')
BMS_FULL_MAPPING = os.path.join(FIXTURES, 'percell_bms_mapping.yaml')   # maps the current too
SHUNT_DBC = os.path.join(FIXTURES, 'shunt_ma.dbc')
SHUNT_MAPPING = os.path.join(FIXTURES, 'shunt_ma_mapping.yaml')
CELLS, SENSORS = 12, 6

IMD_DBC = """VERSION ""
NS_ :
BS_:
BU_: IMD VCU
BO_ 1537 IMD_Info: 8 IMD
 SG_ IMD_Resistance_kOhm : 7|16@0+ (1,0) [0|50000] "kOhm" VCU
 SG_ IMD_Status : 23|8@0+ (1,0) [0|255] "" VCU
"""
# another device whose DBC reuses the shunt's id 0x521 for a different message
CLASH_DBC = """VERSION ""
NS_ :
BS_:
BU_: CHG VCU
BO_ 1313 Charger_Status: 8 CHG
 SG_ Charger_Voltage : 7|16@0+ (0.1,0) [0|1000] "V" VCU
"""


def _state(current_a=-12.345, voltage_v=39.6):
    return {'cell_voltages_v': np.linspace(3.2, 3.311, CELLS),
            'temperatures_degc': np.arange(20.0, 20.0 + SENSORS),
            'pack_current_a': current_a, 'pack_voltage_v': voltage_v}


@pytest.fixture(scope='module')
def proto():
    return CanProtocol.from_devices([CanDevice('bms', BMS_DBC, BMS_MAPPING),
                                     CanDevice('shunt', SHUNT_DBC, SHUNT_MAPPING)],
                                    CELLS, SENSORS)


def _shunt_frame(current_ma, error=0, counter=0):
    db = cantools.database.load_file(SHUNT_DBC)
    m = db.get_message_by_name('Shunt_Current')
    data = m.encode({'Shunt_Current_mA': current_ma, 'Shunt_Error': error,
                     'Shunt_Counter': counter, 'Shunt_Temperature': 25})
    return can.Message(arbitration_id=m.frame_id, data=data, is_extended_id=False)


def test_each_device_maps_its_part(proto):
    mapping = proto.mapping
    assert isinstance(mapping, BusMapping)
    assert [d.name for d in proto.devices] == ['bms', 'shunt']
    assert {m.name: m.device for m in mapping.measurement} == {
        'BMS_CellVoltages': 'bms', 'BMS_Temperatures': 'bms', 'BMS_PackData': 'bms',
        'Shunt_Current': 'shunt'}
    assert [m.name for m in mapping.commands] == ['VCU_Command']
    assert mapping.frame_devices[(0x521, False)] == 'shunt'
    assert mapping.frame_devices[(0x300, False)] == 'bms'
    # the merged database finds every message of both DBCs
    assert mapping.database.get_message_by_frame_id(0x522).name == 'Shunt_Info'


def test_the_bus_decodes_into_the_truth_within_quantisation(proto):
    state = _state()
    encoder = PackEncoder(proto)
    frames = encoder.encode_all(state)
    assert {f.arbitration_id for f in frames} == {0x300, 0x301, 0x302, 0x521}
    assembler = MeasurementAssembler(proto)
    assert assembler.feed_many(frames, 1.0) == len(frames)
    snap = assembler.snapshot(1.0, 0.5)
    assert snap.pack_current_a == pytest.approx(-12.345, abs=0.0005)     # 1 mA
    assert snap.pack_voltage_v == pytest.approx(39.6, abs=0.005)         # 10 mV
    np.testing.assert_allclose(snap.cell_voltages_v, state['cell_voltages_v'], atol=0.0005)
    np.testing.assert_allclose(snap.temperatures_degc, state['temperatures_degc'], atol=0.5)
    assert snap.cell_voltage_valid.all() and snap.temperature_valid.all()
    assert not (snap.cell_voltages_stale or snap.temperatures_stale or snap.current_stale)
    assert snap.frames_rejected == 0
    assert sum(snap.counts.values()) == 0
    # the current group goes stale when only the shunt stops, though the BMS keeps sending
    assembler.feed_many([f for f in encoder.encode_all(state)
                         if f.arbitration_id != 0x521], 2.0)
    later = assembler.snapshot(2.0, 0.5)
    assert later.current_stale and np.isnan(later.pack_current_a)
    assert later.pack_voltage_v == pytest.approx(39.6, abs=0.005)
    assert not later.cell_voltages_stale


def test_the_sensors_error_bits_invalidate_the_current(proto):
    assembler = MeasurementAssembler(proto)
    pack = next(f for f in PackEncoder(proto).encode_all(_state()) if f.arbitration_id == 0x302)
    assembler.feed(pack, 1.2)                                      # the BMS's pack voltage
    assembler.feed(_shunt_frame(1500, error=0), 1.0)
    assert assembler.snapshot(1.0, 0.5).pack_current_a == pytest.approx(1.5, abs=1e-9)
    assembler.feed(_shunt_frame(1600, error=0x4, counter=1), 1.1)    # a warning bit: valid
    assert assembler.snapshot(1.1, 0.5).pack_current_a == pytest.approx(1.6, abs=1e-9)
    for k, error in enumerate((0x1, 0x2, 0x8, 0xF), start=2):
        assembler.feed(_shunt_frame(1700, error=error, counter=k), 1.2)
        snap = assembler.snapshot(1.2, 0.5)
        assert np.isnan(snap.pack_current_a), error
        assert not snap.current_stale       # the sensor is alive; its value is not usable
    assert snap.counts['error_bits'] == 4
    assert snap.device_counts['shunt']['error_bits'] == 4
    assert snap.device_counts['bms']['error_bits'] == 0


def test_counters_say_which_device(proto):
    assembler = MeasurementAssembler(proto)
    info = can.Message(arbitration_id=0x522, data=bytes(8), is_extended_id=False)  # unmapped
    foreign = can.Message(arbitration_id=0x7FF, data=bytes(8), is_extended_id=False)
    short = can.Message(arbitration_id=0x521, data=bytes(3), is_extended_id=False)
    bad_mux = can.Message(arbitration_id=0x300, data=bytes([9] + [0] * 7),
                          is_extended_id=False)
    assembler.feed_many([info, foreign, short, bad_mux], 1.0)
    counts = assembler.counts
    assert (counts['unknown_id'], counts['wrong_dlc'], counts['decode_error']) == (2, 1, 1)
    by_device = assembler.device_counts
    assert by_device['shunt']['unknown_id'] == 1 and by_device['shunt']['wrong_dlc'] == 1
    assert by_device['bms']['decode_error'] == 1 and by_device['bms']['unknown_id'] == 0
    assert assembler.frames_rejected == 4


def test_a_device_without_mapping_is_ignored_not_unknown(tmp_path):
    imd = tmp_path / 'imd.dbc'
    imd.write_text(IMD_DBC)
    proto = CanProtocol.from_files([BMS_DBC, SHUNT_DBC, imd], [BMS_MAPPING, SHUNT_MAPPING, None],
                                   CELLS, SENSORS)
    assert [d.name for d in proto.devices] == ['percell_bms', 'shunt_ma', 'imd']
    assembler = MeasurementAssembler(proto)
    frame = can.Message(arbitration_id=0x601, data=bytes(8), is_extended_id=False)
    assert assembler.feed(frame, 1.0) is False
    assert assembler.frames_ignored == 1 and assembler.frames_rejected == 0
    assert assembler.device_counts['imd']['ignored'] == 1
    assert assembler.counts['unknown_id'] == 0


def test_commands_come_from_the_device_that_maps_them(proto):
    frames = CommandEncoder(proto).encode_contactor_command(True, False, True)
    assert [f.arbitration_id for f in frames] == [0x310]
    decoded = cantools.database.load_file(BMS_DBC).decode_message(0x310, frames[0].data)
    assert decoded == {'CloseNegative': 1, 'ClosePrecharge': 0, 'ClosePositive': 1}


def test_an_id_clash_names_both_dbcs_the_id_and_both_messages(tmp_path):
    charger = tmp_path / 'charger.dbc'
    charger.write_text(CLASH_DBC)
    with pytest.raises(ConfigError) as info:
        load_devices([CanDevice('bms', BMS_DBC, BMS_MAPPING),
                      CanDevice('shunt', SHUNT_DBC, SHUNT_MAPPING),
                      CanDevice('charger', str(charger))], CELLS, SENSORS,
                     where=('profile.yaml', 'can.devices'))
    assert (info.value.path, info.value.field) == ('profile.yaml', 'can.devices[2].dbc')
    assert info.value.problem == (f"frame id 0x521 (standard) is 'Charger_Status' in {charger} "
                                  f"and 'Shunt_Current' in {SHUNT_DBC}")


def test_the_same_message_defined_identically_in_two_dbcs_is_no_clash(tmp_path):
    # a second DBC that describes the shunt's frame too (a shared definition) and more
    text = open(SHUNT_DBC, encoding='utf-8').read().replace('BO_ 1314 Shunt_Info',
                                                             'BO_ 1315 Other_Info')
    other = tmp_path / 'other.dbc'
    other.write_text(text)
    proto = CanProtocol.from_files([BMS_DBC, SHUNT_DBC, other], [BMS_MAPPING, SHUNT_MAPPING, None],
                                   CELLS, SENSORS)
    assert proto.mapping.frame_devices[(0x521, False)] == 'shunt_ma'
    assert proto.mapping.frame_devices[(0x523, False)] == 'other'
    # but an 11-bit and a 29-bit id with the same number are different frames
    ext = tmp_path / 'ext.dbc'
    ext.write_text(CLASH_DBC.replace('BO_ 1313 ', f'BO_ {0x80000000 | 1313} '))
    proto = CanProtocol.from_files([BMS_DBC, SHUNT_DBC, ext], [BMS_MAPPING, SHUNT_MAPPING, None],
                                   CELLS, SENSORS)
    assert proto.mapping.frame_devices[(0x521, True)] == 'ext'


def test_an_element_mapped_by_two_devices_names_both_mapping_files():
    with pytest.raises(ConfigError) as info:
        load_devices([CanDevice('bms', BMS_DBC, BMS_FULL_MAPPING),
                      CanDevice('shunt', SHUNT_DBC, SHUNT_MAPPING)], CELLS, SENSORS)
    assert info.value.path == SHUNT_MAPPING
    assert info.value.field == 'measurement[0].signals[0].field'
    assert info.value.problem == ('pack_current_a already mapped by BMS_PackData.PackCurrent '
                                  f'in {BMS_FULL_MAPPING}')


def test_the_same_message_mapped_by_two_devices(tmp_path):
    other = tmp_path / 'shunt_copy.dbc'
    shutil.copy(SHUNT_DBC, other)
    mapping = tmp_path / 'voltage_mapping.yaml'     # maps the shunt frame's temperature
    mapping.write_text(yaml.safe_dump({'measurement': [{'message': 'Shunt_Current', 'signals': [
        {'signal': 'Shunt_Temperature', 'field': 'link_voltage_v'}]}]}))
    with pytest.raises(ConfigError) as info:
        load_devices([CanDevice('bms', BMS_DBC, BMS_MAPPING),
                      CanDevice('shunt', SHUNT_DBC, SHUNT_MAPPING),
                      CanDevice('copy', str(other), str(mapping))], CELLS, SENSORS)
    assert (info.value.path, info.value.field) == (str(mapping), 'measurement[0].message')
    assert info.value.problem == ("'Shunt_Current' (frame id 0x521 (standard)) is mapped by "
                                  f'{SHUNT_MAPPING} too')


def test_required_fields_and_coverage_are_checked_over_all_devices(tmp_path):
    data = yaml.safe_load(open(BMS_MAPPING, encoding='utf-8'))
    del data['measurement'][2]                                  # BMS_PackData: pack voltage
    no_voltage = tmp_path / 'no_voltage.yaml'
    no_voltage.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_devices([CanDevice('bms', BMS_DBC, str(no_voltage)),
                      CanDevice('shunt', SHUNT_DBC, SHUNT_MAPPING)], CELLS, SENSORS,
                     where=('p.yaml', 'can.devices'))
    assert (info.value.path, info.value.field) == ('p.yaml', 'can.devices')
    assert info.value.problem == ('measurement: no device maps pack_voltage_v (required; '
                                  f'mappings: {no_voltage}, {SHUNT_MAPPING})')
    # cells split over two devices are fine as long as together they cover the pack
    data = yaml.safe_load(open(BMS_MAPPING, encoding='utf-8'))
    data['measurement'][0]['signals'] = data['measurement'][0]['signals'][:11]
    eleven = tmp_path / 'eleven.yaml'
    eleven.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r'cell_voltages_v\[11\] not covered by any signal'):
        load_devices([CanDevice('bms', BMS_DBC, str(eleven)),
                      CanDevice('shunt', SHUNT_DBC, SHUNT_MAPPING)], CELLS, SENSORS)
    # one mapped device (beside an ignored one): the single-mapping checks, unchanged
    with pytest.raises(ConfigError) as info:
        load_devices([CanDevice('bms', BMS_DBC, BMS_MAPPING), CanDevice('shunt', SHUNT_DBC)],
                     CELLS, SENSORS)
    assert (info.value.path, info.value.field) == (BMS_MAPPING, 'measurement')
    assert info.value.problem == 'no signal maps pack_current_a (required)'


def test_device_names(tmp_path):
    for devices, problem in (
            ([CanDevice('a b', BMS_DBC, BMS_MAPPING)], "expected letters, digits and _, got 'a b'"),
            ([CanDevice('x', BMS_DBC, BMS_MAPPING), CanDevice('x', SHUNT_DBC, SHUNT_MAPPING)],
             "device 'x' is listed twice (can.devices[0])"),
            ([CanDevice('x', BMS_DBC)], 'no device has a mapping')):
        with pytest.raises(ConfigError) as info:
            load_devices(devices, CELLS, SENSORS, where=('p.yaml', 'can.devices'))
        assert info.value.problem == problem


class _Profile:
    """The one thing load_can_settings reads of a Profile: its can: section."""

    def __init__(self, path, can_section):
        self.path = str(path)
        self._can = can_section

    def section(self, name):
        return Section(self._can, self.path, name)


def test_profile_devices_are_relative_to_the_profile_file(tmp_path):
    folder = tmp_path / 'can'
    folder.mkdir()
    for path in (BMS_DBC, BMS_MAPPING, SHUNT_DBC, SHUNT_MAPPING):
        shutil.copy(path, folder)
    profiles = tmp_path / 'profiles'
    profiles.mkdir()
    profile = _Profile(profiles / 'bus.yaml', {'devices': [
        {'name': 'bms', 'dbc': '../can/percell_bms.dbc',
         'mapping': '../can/percell_bms_bus_mapping.yaml'},
        {'dbc': '../can/shunt_ma.dbc', 'mapping': '../can/shunt_ma_mapping.yaml'}]})
    settings = load_can_settings(profile)
    assert [d.name for d in settings.devices] == ['bms', 'shunt_ma']
    assert settings.devices[1].dbc_path == str(profiles / '../can/shunt_ma.dbc')
    assert settings.devices_where == (profile.path, 'can.devices')
    proto = CanProtocol.from_settings(settings, CELLS, SENSORS)
    assert [d.name for d in proto.devices] == ['bms', 'shunt_ma']
    # callers that pass settings.dbc_path / mapping_path get the same bus
    same = CanProtocol.from_files(settings.dbc_path, settings.mapping_path, CELLS, SENSORS)
    assert [m.name for m in same.mapping.measurement] == [
        m.name for m in proto.mapping.measurement]
    with pytest.raises(ConfigError) as info:       # not found: relative to the profile
        load_can_settings(_Profile(profiles / 'bus.yaml', {'devices': [
            {'dbc': 'shunt_ma.dbc'}]}))
    assert info.value.field == 'can.devices[0].dbc'
    assert info.value.problem == f"file not found: {profiles / 'shunt_ma.dbc'}"
    with pytest.raises(ConfigError) as info:
        load_can_settings(_Profile(profiles / 'bus.yaml', {
            'dbc': '../can/shunt_ma.dbc', 'devices': [{'dbc': '../can/shunt_ma.dbc'}]}))
    assert (info.value.field, info.value.problem) == (
        'can.dbc', 'give either dbc / mapping or devices, not both')


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0x300, 0x301, 0x302, 0x310, 0x521, 0x522, 0x601,
                                           0x7FF]),
                          st.binary(min_size=0, max_size=8)), max_size=40))
def test_any_frames_on_the_bus_are_counted_never_raised(proto, frames):
    assembler = MeasurementAssembler(proto)
    msgs = [can.Message(arbitration_id=i, data=d, is_extended_id=False) for i, d in frames]
    accepted = assembler.feed_many(msgs, 1.0)
    assert assembler.frames_received == len(msgs)
    assert accepted + assembler.frames_rejected + assembler.frames_ignored == len(msgs)
    total = assembler.counts
    by_device = assembler.device_counts
    for reason in ('wrong_dlc', 'decode_error', 'error_bits', 'invalid_flag'):
        assert sum(c[reason] for c in by_device.values()) == total[reason]
    snap = assembler.snapshot(1.0, 0.5)
    assert np.isnan(snap.pack_current_a) or abs(snap.pack_current_a) <= 2000.0


def test_a_pack_taking_a_state_request_needs_no_contactor_command_on_a_bus(tmp_path):
    pytest.importorskip('bms_ros.core.pack_report')   # control style (b), issue 15 item 4
    dbc = tmp_path / 'pack_bms.dbc'
    dbc.write_text(open(BMS_DBC, encoding='utf-8').read().replace(
        'BO_ 784 VCU_Command: 1 VCU',
        'BO_ 785 VCU_StateRequest: 1 VCU\n SG_ Request : 7|2@0+ (1,0) [0|3] "" BMS\n\n'
        'BO_ 784 VCU_Command: 1 VCU').replace(
        'BA_ "GenMsgCycleTime" BO_ 784 100;',
        'BA_ "GenMsgCycleTime" BO_ 784 100;\nBA_ "GenMsgCycleTime" BO_ 785 100;'))
    data = yaml.safe_load(open(BMS_MAPPING, encoding='utf-8'))
    del data['commands']
    data['state_request'] = {'message': 'VCU_StateRequest', 'signal': 'Request',
                             'values': {'STANDBY': 0, 'DRIVE': 1, 'CHARGE': 2}}
    path = tmp_path / 'pack_bms_mapping.yaml'
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    loaded = load_devices([CanDevice('bms', str(dbc), str(path)),
                           CanDevice('shunt', SHUNT_DBC, SHUNT_MAPPING)], CELLS, SENSORS)
    assert loaded.commands == [] and loaded.state_request.name == 'VCU_StateRequest'
    # without the state request the contactor command is required over the bus again
    del data['state_request']
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match='commands: no device maps negative_closed'):
        load_devices([CanDevice('bms', str(dbc), str(path)),
                      CanDevice('shunt', SHUNT_DBC, SHUNT_MAPPING)], CELLS, SENSORS)
