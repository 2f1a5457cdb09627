"""The one core Measurement: the fields of bms_interfaces/PackMeasurement, shared by the CAN
codec and protection."""
import math
import os

import pytest

from bms_ros.core import can_codec, protection
from bms_ros.core.measurement import MESSAGE_FIELDS, Measurement

MSG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                   'bms_interfaces', 'msg', 'PackMeasurement.msg')


def message_fields():
    names = []
    with open(MSG, encoding='utf-8') as stream:
        for line in stream:
            words = line.split('#')[0].split()
            if len(words) >= 2 and words[1] != 'header':
                names.append(words[1])
    return names


def test_fields_are_the_message_fields_in_order():
    assert list(MESSAGE_FIELDS) == message_fields()
    assert can_codec.MESSAGE_FIELDS == MESSAGE_FIELDS


def test_one_class_where_it_was_importable():
    assert protection.Measurement is Measurement and can_codec.Measurement is Measurement
    assert issubclass(can_codec.AssembledMeasurement, Measurement)


def test_simple_is_all_valid_with_defaults():
    m = Measurement.simple([3.3, 3.4], [25.0], -2.0)
    assert m.cell_voltage_valid.tolist() == [True, True] and m.temperature_valid.tolist() == [True]
    assert m.pack_voltage_v == pytest.approx(6.7) and m.pack_current_a == -2.0
    assert math.isnan(m.link_voltage_v) and math.isnan(m.cell_voltages_stamp)
    assert m.cell_balancing.size == 0 and not (m.current_stale or m.contactors_stale)
    assert m.frames_received == 0
