"""The one core Measurement: the fields of bms_interfaces/PackMeasurement, shared by the CAN
codec and protection.
"""
import math
import os
import types

import numpy as np
import pytest

from bms_ros.core import can_codec, protection
from bms_ros.core.measurement import MESSAGE_FIELDS, Measurement
from bms_ros.core.stamps import message_time_ns, stamp_s

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


def test_from_message_copies_every_field():
    stamp = types.SimpleNamespace
    msg = types.SimpleNamespace(
        cell_voltages_v=[3.3, float('nan')], cell_voltage_valid=[True, False],
        temperatures_degc=[25.0], temperature_valid=[True], pack_current_a=-2.5,
        pack_voltage_v=6.6, link_voltage_v=6.5, negative_contactor_closed=True,
        positive_contactor_closed=False, precharge_relay_closed=True,
        cell_balancing=[False, True], cell_voltages_stamp=stamp(sec=12, nanosec=500_000_000),
        temperatures_stamp=stamp(sec=0, nanosec=0), current_stamp=stamp(sec=1, nanosec=0),
        cell_voltages_stale=False, temperatures_stale=True, current_stale=False,
        contactors_stale=True, frames_received=7, frames_rejected=2, charger_present=True,
        charger_present_valid=True)
    m = Measurement.from_message(msg)
    assert m.cell_voltages_v.dtype == float and math.isnan(m.cell_voltages_v[1])
    assert m.cell_voltage_valid.tolist() == [True, False] and m.cell_balancing.tolist() == [
        False, True]
    assert (m.pack_current_a, m.pack_voltage_v, m.link_voltage_v) == (-2.5, 6.6, 6.5)
    assert m.negative_contactor_closed and not m.positive_contactor_closed
    assert m.cell_voltages_stamp == 12.5 and math.isnan(m.temperatures_stamp)
    assert m.current_stamp == 1.0
    assert m.temperatures_stale and m.contactors_stale and not m.current_stale
    assert (m.frames_received, m.frames_rejected) == (7, 2)
    assert m.charger_present and m.charger_present_valid
    for name in MESSAGE_FIELDS:
        if not name.endswith('_stamp'):
            assert np.asarray(getattr(m, name)).tolist() == pytest.approx(
                np.asarray(getattr(msg, name)).tolist(), nan_ok=True)


def test_stamp_s_of_a_set_and_an_unset_time():
    t = types.SimpleNamespace
    assert stamp_s(t(sec=3, nanosec=250_000_000)) == 3.25
    assert stamp_s(t(sec=0, nanosec=0)) is None
    assert stamp_s(t(sec=0, nanosec=0), 7.0) == 7.0
    assert stamp_s(t(sec=0, nanosec=1), math.nan) == pytest.approx(1e-9)
    msg = types.SimpleNamespace(header=t(stamp=t(sec=2, nanosec=5)))
    assert message_time_ns(msg, 99) == 2_000_000_005
    msg.header.stamp = t(sec=0, nanosec=0)
    assert message_time_ns(msg, 99) == 99
