"""Charger presence from CAN (issue 16): a charger's status frame as a second device on the
pack's bus, mapped onto charger_present and decoded by the assembler, fresh or unknown.
"""
import os

import can
import cantools
import numpy as np
import pytest

from bms_ros.core.can_codec import CanProtocol, MeasurementAssembler, PackEncoder
from bms_ros.core.can_devices import CanDevice
from bms_ros.core.config import Section
from bms_ros.core.energy.config import EnergyConfig
from bms_ros.core.energy.runtime import EnergyEstimator
from bms_ros.core.errors import ConfigError
from bms_ros.core.profile import Profile, config_dir

CAN_DIR = os.path.join(config_dir(), 'can')
FIXTURES = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'can')
CHARGER_DBC = os.path.join(FIXTURES, 'charger_status.dbc')
CHARGER_MAPPING = os.path.join(FIXTURES, 'charger_status_mapping.yaml')
BMS_DBC = os.path.join(CAN_DIR, 'bms_ros.dbc')
BMS_MAPPING = os.path.join(CAN_DIR, 'bms_ros_mapping.yaml')
CELLS, SENSORS = 16, 4


def protocol(with_charger=True):
    devices = [CanDevice('bms', BMS_DBC, BMS_MAPPING)]
    if with_charger:
        devices.append(CanDevice('charger', CHARGER_DBC, CHARGER_MAPPING))
    return CanProtocol.from_devices(devices, CELLS, SENSORS)


def state(charger_present):
    return {'cell_voltages_v': np.full(CELLS, 3.3), 'temperatures_degc': np.full(SENSORS, 25.0),
                'pack_current_a': 0.0, 'pack_voltage_v': 52.8, 'link_voltage_v': 0.0,
                'negative_contactor_closed': False, 'positive_contactor_closed': False,
                'precharge_relay_closed': False, 'cell_balancing': np.zeros(CELLS, bool),
                'charger_present': charger_present}


def charger_frame(connected, current_a=0.0):
    db = cantools.database.load_file(CHARGER_DBC)
    m = db.get_message_by_name('Charger_Status')
    data = m.encode({'Charger_Connected': int(connected), 'Charger_Output_On': int(connected),
                     'Charger_Output_Current': current_a, 'Charger_Output_Voltage': 57.6})
    return can.Message(arbitration_id=m.frame_id, data=data, is_extended_id=False)


def test_the_charger_status_decodes_fresh_then_goes_unknown():
    proto = protocol()
    assembler = MeasurementAssembler(proto)
    assembler.feed_many(PackEncoder(proto).encode_all(state(False)), 1.0)
    snap = assembler.snapshot(1.0, 0.5)
    assert snap.charger_present_valid and not snap.charger_present
    assembler.feed(charger_frame(True, 11.5), 1.2)
    snap = assembler.snapshot(1.3, 0.5)
    assert snap.charger_present_valid and snap.charger_present
    # not a staleness group of the pack: a silent charger does not make the pack stale
    assert 'charger' not in ' '.join(snap.stale_groups)
    later = assembler.snapshot(1.8, 0.5)          # the charger's frame is 0.6 s old
    assert not later.charger_present_valid and not later.charger_present
    assert snap.counts.get('unknown_id', 0) == 0


def test_without_a_charger_mapping_the_field_is_unknown():
    proto = protocol(with_charger=False)
    assembler = MeasurementAssembler(proto)
    assembler.feed_many(PackEncoder(proto).encode_all(state(True)), 1.0)
    snap = assembler.snapshot(1.0, 0.5)
    assert not snap.charger_present_valid and not snap.charger_present
    # the charger's frame is an unknown id of this bus, counted, not decoded
    assembler.feed(charger_frame(True), 1.0)
    assert not assembler.snapshot(1.0, 0.5).charger_present_valid


def test_charger_present_is_a_single_value(tmp_path):
    """An index on the scalar field is a ConfigError naming the file and the field."""
    bad = tmp_path / 'bad_mapping.yaml'
    bad.write_text('measurement:\n  - message: Charger_Status\n    signals:\n'
                   '      - {signal: Charger_Output_Current, field: charger_present, '
                   'index: 3}\n')
    with pytest.raises(ConfigError) as error:
        CanProtocol.from_devices([CanDevice('bms', BMS_DBC, BMS_MAPPING),
                                  CanDevice('charger', CHARGER_DBC, str(bad))], CELLS, SENSORS)
    assert str(bad) in str(error.value)
    assert "signals[0].index: 'charger_present' is a single value" in str(error.value)


def test_the_energy_runtime_takes_the_decoded_input_like_the_topic():
    """CHARGING needs the input; the decoded flag sets it, its absence ages it to unknown."""
    pack = Profile(os.path.join(config_dir(), 'profiles', 'lfp_16s.yaml')).pack
    cfg = EnergyConfig.from_section(Section({'charger_present_timeout_s': 2.0}, 'test.yaml',
                                            'energy'))
    energy = EnergyEstimator(pack.cell, pack.cells_series, cfg)
    assert energy.charger_input(10.0) is None
    energy.set_charger_present(10.0, True)        # what energy_wiring does with a valid flag
    assert energy.charger_present(11.0, current_a=0.0) is True
    assert energy.charger_input(12.5) is None     # stale: unknown, the current decides
    assert energy.charger_present(12.5, current_a=0.0) is False
