"""The state_estimator's energy fields and its check_mission service (real node process)."""
import math
import os

import numpy as np
import pytest
import yaml
from sensor_msgs.msg import BatteryState

from bms_interfaces.msg import BatteryEstimate, PackMeasurement, PackState
from bms_interfaces.srv import CheckMission, SetSoc
from bms_ros.core.can_codec import CanProtocol
from bms_ros.core.can_devices import CanDevice
from bms_ros.core.cell import CellSpec
from bms_ros.core.energy.config import EnergyConfig
from bms_ros.core.energy.state_of_energy import CellEnergyModel
from bms_ros.core.estimation.synthetic import EcmCells
from bms_ros.core.profile import Profile, config_dir, default_profile_path
from test.support.can_pack import CanPack, start_hub
from test.support.fake_pack import FakePack

from .harness import LATCHED

pytestmark = pytest.mark.ros

CELL = os.path.join(config_dir(), 'cells', 'nmc_lg_m50.yaml')
MODULE = 'bms_ros.nodes.state_estimator'


def profile_file(tmp_path):
    profile = {
        'pack': {'name': 'test_energy_4s', 'serial_number': 'SN-ENERGY', 'location': 'bay',
                 'cells_series': 4, 'cells_parallel': 1, 'temperature_sensors': 2,
                 'cell': CELL},
        'estimator': {'publish_rate_hz': 5.0, 'persist_period_s': 60.0,
                      'status_current_threshold_a': 0.2, 'rest_time_s': 3600.0},
        'energy': {'load_filter_s': 1.0, 'cutoff_voltage_v': 3.0, 'reserve_fraction': 0.1},
        'gazebo': {'mass_kg': 20.0, 'auxiliary_power_w': 10.0},
    }
    path = tmp_path / 'energy.yaml'
    path.write_text(yaml.safe_dump(profile))
    return str(path)


def test_estimate_energy_fields_and_check_mission(ros_env, tmp_path):
    cell = CellSpec.from_file(CELL)
    # the fake pack (test/support/fake_pack) on a 1-RC truth, contactors closed, at -5 A
    pack = FakePack(ros_env, cells=4, sensors=2, truth=EcmCells(cell, [0.5] * 4),
                    closed=(True, False, True))
    pack.set(current_a=-5.0, estimates=False)
    pack.start()
    estimate = ros_env.subscribe(BatteryEstimate, 'estimate')
    ros_env.start_module(MODULE, params={'profile': profile_file(tmp_path),
                                         'state_file': str(tmp_path / 'state.json')})
    ros_env.wait_for_subscribers(pack.measurement_pub, timeout_s=15.0)
    est = estimate.wait_for(lambda m: math.isfinite(m.time_to_empty_s) and m.load_power_w < -60,
                            timeout_s=20.0, what='a time to empty while discharging')
    assert len(est.cell_remaining_energy_wh) == 4
    assert est.load_power_w == pytest.approx(-5.0 * 4 * 3.65, rel=0.1)
    # the model's own prediction from the published SoC, capacity and R0
    model = CellEnergyModel(cell, EnergyConfig(cutoff_voltage_v=3.0))
    r = model.resistance_ohm(np.asarray(est.cell_r0_ohm), 25.0)
    d = model.discharge(np.asarray(est.cell_soc), np.asarray(est.cell_capacity_ah), r, 25.0,
                        -est.load_power_w)
    assert est.remaining_energy_wh == pytest.approx(d.energy_wh, rel=0.02)
    assert est.time_to_empty_s == pytest.approx(d.time_s, rel=0.02)
    assert est.time_to_empty_low_s < est.time_to_empty_s < est.time_to_empty_high_s
    assert 0 < est.remaining_energy_wh < est.energy_full_wh
    assert math.isnan(est.time_to_full_s) and not est.charger_present

    ok = ros_env.call(CheckMission, 'check_mission', CheckMission.Request(
        segment_duration_s=[600.0], segment_drawn_power_w=[20.0], return_duration_s=300.0),
        timeout_s=15.0)
    assert ok.feasible and ok.reason == 'ok' and ok.first_failing_segment == -1
    assert ok.energy_needed_wh == pytest.approx(20.0 / 6.0, rel=1e-3)
    assert ok.margin_wh == pytest.approx(ok.energy_available_wh - ok.reserve_wh
                                         - ok.energy_needed_wh, rel=1e-3)
    assert ok.safe_return_s > ok.duration_s
    long = ros_env.call(CheckMission, 'check_mission', CheckMission.Request(
        segment_duration_s=[60.0, 36000.0], segment_drawn_power_w=[20.0, 40.0]))
    assert not long.feasible and long.first_failing_segment == 1 and long.margin_wh < 0
    path = ros_env.call(CheckMission, 'check_mission', CheckMission.Request(
        path_length_m=300.0, speed_m_per_s=1.0))
    assert path.feasible and path.duration_s == pytest.approx(300.0)
    bad = ros_env.call(CheckMission, 'check_mission', CheckMission.Request(
        segment_duration_s=[1.0, 2.0], segment_drawn_power_w=[5.0]))
    assert not bad.feasible and bad.reason.startswith('bad request')
    pack.stop()


# --- charger presence from CAN: a charger's status frame as a second device on the bus -------

CAN_DIR = os.path.join(config_dir(), 'can')
FIXTURES = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'can')


def can_charger_profile(tmp_path):
    """The default LFP pack with two CAN devices: the bms_ros BMS and a dock charger."""
    source = Profile(default_profile_path())
    with open(source.path, encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    pack = dict(data['pack'])
    pack['cell'] = os.path.join(os.path.dirname(source.path), pack['cell'])
    devices = [CanDevice('bms', os.path.join(CAN_DIR, 'bms_ros.dbc'),
                         os.path.join(CAN_DIR, 'bms_ros_mapping.yaml')),
               CanDevice('charger', os.path.join(FIXTURES, 'charger_status.dbc'),
                         os.path.join(FIXTURES, 'charger_status_mapping.yaml'))]
    profile = {'pack': pack,
               'can': dict(data.get('can', {}), devices=[
                   {'name': d.name, 'dbc': d.dbc_path, 'mapping': d.mapping_path}
                   for d in devices]),
               'estimator': {'publish_rate_hz': 5.0, 'persist_period_s': 60.0},
               'energy': {'charger_present_timeout_s': 2.0}}
    profile['can'].pop('dbc', None)
    profile['can'].pop('mapping', None)
    path = tmp_path / 'can_charger.yaml'
    path.write_text(yaml.safe_dump(profile))
    return str(path), source.pack, devices


def test_charger_status_frame_makes_battery_state_charging(ros_env, tmp_path):
    """The driver decodes the charger's frame; the estimator says CHARGING while the pack is
    full and its contactors are open (0 A), and FULL once the charger's frame says unplugged.
    """
    profile_path, pack, devices = can_charger_profile(tmp_path)
    port = start_hub(ros_env)
    measurements = ros_env.subscribe(PackMeasurement, 'measurement')
    battery = ros_env.subscribe(BatteryState, 'battery_state')
    pack_state = ros_env.publisher(PackState, 'pack_state', LATCHED)
    ros_env.start_module('bms_ros.nodes.can_driver',
                         params={'profile': profile_path, 'port': port, 'publish_rate_hz': 10.0})
    ros_env.start_module(MODULE, params={'profile': profile_path,
                                         'state_file': str(tmp_path / 'state.json')})
    protocol = CanProtocol.from_devices(devices, pack.cells_series, pack.temperature_sensors)
    full_v = float(pack.cell.ocv.ocv(0.995))
    state = {'cell_voltages_v': np.full(pack.cells_series, full_v),
                 'temperatures_degc': np.full(pack.temperature_sensors, 25.0),
                 'pack_current_a': 0.0, 'pack_voltage_v': full_v * pack.cells_series,
                 'link_voltage_v': 0.0, 'negative_contactor_closed': False,
                 'positive_contactor_closed': False, 'precharge_relay_closed': False,
                 'cell_balancing': np.zeros(pack.cells_series, dtype=bool), 'charger_present': True}
    player = CanPack(protocol, port, state)   # the BMS's and the charger's frames
    try:
        ros_env.wait_for_subscribers(pack_state, timeout_s=15.0)
        pack_state.publish(PackState(state=PackState.STATE_STANDBY, state_name='STANDBY'))
        msg = measurements.wait_for(lambda m: m.charger_present_valid, timeout_s=20.0,
                                    what='a measurement with the decoded charger status')
        assert msg.charger_present and not msg.positive_contactor_closed
        reply = ros_env.call(SetSoc, 'set_soc', SetSoc.Request(cell_soc=[0.995]),
                             timeout_s=15.0)
        assert reply.success
        on_dock = battery.wait_for(
            lambda m: m.percentage > 0.97 and m.power_supply_status
            == BatteryState.POWER_SUPPLY_STATUS_CHARGING, timeout_s=15.0,
            what='CHARGING while full with the contactors open')
        assert on_dock.current == pytest.approx(0.0, abs=0.01)     # 0 A: no current says it

        player.update(charger_present=False)      # the charger reports itself unplugged
        battery.clear()
        off = battery.wait_for(lambda m: m.power_supply_status
                               == BatteryState.POWER_SUPPLY_STATUS_FULL, timeout_s=15.0,
                               what='FULL (not CHARGING) once the charger says unplugged')
        assert off.percentage > 0.97 and off.current == pytest.approx(0.0, abs=0.01)
        msg = measurements.wait_for(lambda m: m.charger_present_valid
                                    and not m.charger_present, timeout_s=10.0)
        assert not msg.charger_present
    finally:
        player.close()
    assert player.error is None, player.error
