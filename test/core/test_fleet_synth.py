"""Synthetic fleet: ageing core, leak, closed-form rest, the CDR codec and one generated bag."""
import json
import os

import numpy as np
import pytest

from bms_ros.core import bag_schema
from bms_ros.core.ageing import AgeingRates, PackAgeing, rest, series_charge
from bms_ros.core.fleet.cdr import MeasurementLayout, decode_measurements, layout_of
from bms_ros.tools import fleet_synth
from bms_ros.tools.bag.bagio import Bag, new_message


def _model(pack=3):
    return fleet_synth.make_model(fleet_synth.FleetSpec(), pack)[1]


def test_cdr_encoding_equals_rosbags_serializer_and_decodes_back():
    store = bag_schema.typestore()
    msgtype = 'bms_interfaces/msg/PackMeasurement'
    ns = 1_767_225_600_123_456_789
    sec, nsec = divmod(ns, 10 ** 9)
    stamp = new_message('builtin_interfaces/msg/Time', sec=sec, nanosec=nsec)
    cells = np.linspace(3.1, 3.4, 16)
    temps = np.linspace(20.0, 27.0, 8)
    bleed = np.zeros(16, dtype=bool)
    bleed[[3, 7]] = True
    message = new_message(
        msgtype, header=new_message('std_msgs/msg/Header', stamp=stamp, frame_id='pack_x'),
        cell_voltages_v=cells, cell_voltage_valid=np.ones(16, bool), temperatures_degc=temps,
        temperature_valid=np.ones(8, bool), pack_current_a=-57.5, pack_voltage_v=52.25,
        link_voltage_v=51.5, negative_contactor_closed=True, positive_contactor_closed=True,
        cell_balancing=bleed, cell_voltages_stamp=stamp, temperatures_stamp=stamp,
        current_stamp=stamp)
    reference = bytes(store.serialize_cdr(message, msgtype))
    layout = MeasurementLayout(16, 8, 'pack_x')
    mine = layout.encode(ns, cells, temps, -57.5, 52.25, 51.5, (True, True, False), bleed)
    assert mine == reference
    read = layout_of(reference)
    assert (read.cells, read.sensors, read.size) == (16, 8, len(reference))
    columns = decode_measurements([reference, mine], read)
    np.testing.assert_allclose(columns['cell_voltages_v'][1], cells, atol=1e-6)
    np.testing.assert_array_equal(columns['cell_balancing'][0], bleed)
    assert columns['pack_current_a'][0] == pytest.approx(-57.5)
    assert columns['header_stamp_s'][0] == pytest.approx(ns * 1e-9, abs=1e-6)
    assert columns['negative_contactor_closed'].all()
    assert not columns['precharge_relay_closed'].any()
    assert layout_of(reference[:-3]) is None


def test_leak_drains_only_its_cell_at_rest():
    model = _model()
    ageing = PackAgeing(model, AgeingRates())
    ageing.set_leak(5, 0.010)
    soc = model.soc.copy()
    rest(model, 86400.0)
    drop_ah = (soc - model.soc) * model.capacity_ah
    base = np.delete(drop_ah, 5)
    # 10 mA for a day = 0.24 Ah more than the cell's own self-discharge
    assert drop_ah[5] - np.median(base) == pytest.approx(0.24, rel=0.05)
    assert np.all(np.abs(base - np.median(base)) < 0.02)
    with pytest.raises(ValueError):
        ageing.set_leak(99, 0.01)


def test_series_charge_puts_equal_charge_into_every_cell():
    model = _model()
    model.soc = np.linspace(0.2, 0.4, model.cells)
    before = model.soc * model.capacity_ah
    charge = series_charge(model, 0.9)
    np.testing.assert_allclose(model.soc * model.capacity_ah - before, charge, rtol=1e-9)
    assert np.max(model.soc) == pytest.approx(0.9)


def test_ageing_fades_capacity_and_grows_r0_with_cycles_and_days():
    model = _model()
    ageing = PackAgeing(model, AgeingRates(1e-3, 1e-3, 2e-3, 1e-3, cell_spread_rel=0.0))
    q0 = model.capacity_ah.copy()
    r0 = model.r0_factor.copy()
    model.soc = model.soc - 0.5          # half a cycle down
    ageing.age_to(10.0)
    # 0.25 EFC x 1e-3 + 10 days x 1e-3
    np.testing.assert_allclose(model.capacity_ah / q0, 1.0 - (0.25e-3 + 10e-3), rtol=1e-6)
    np.testing.assert_allclose(model.r0_factor / r0, 1.0 + (0.5e-3 + 10e-3), rtol=1e-6)


def test_generated_bag_carries_serial_and_mission(tmp_path):
    spec = fleet_synth.FleetSpec(packs=1, bags=1, leak_pack=0, leak_start_day=0.0)
    truth = fleet_synth.generate(spec, str(tmp_path))
    record = truth['packs'][0]
    bag_path = record['bags'][0]['path']
    with Bag(bag_path) as bag:
        assert bag.custom_data['bms_ros.serial_number'] == 'FLEET-LFP-000'
        states = bag.read('battery_state')
        assert [m.serial_number for _, m in states] == ['FLEET-LFP-000']
        measurements = bag.read('measurement')
    assert len(measurements) == record['bags'][0]['measurements']
    currents = np.array([m.pack_current_a for _, m in measurements])
    assert currents.min() < -100.0                      # the 5 C steps of the mission
    assert np.all(np.abs(currents[-100:]) < 0.5)        # ends at rest
    assert record['bags'][0]['cell_soc_end'][0] < 0.2
    assert record['leak_cell'] == 5 and record['role'] == 'fast_fade+leak'
    on_disk = json.loads((tmp_path / 'fleet_truth.json').read_text())
    assert on_disk['packs'][0]['serial'] == 'FLEET-LFP-000'
    assert os.path.isdir(os.path.join(str(tmp_path), 'FLEET-LFP-000'))
