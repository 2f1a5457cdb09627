"""The state_estimator node in its own process, fed by the fake pack on a 1-RC truth."""
import json
import math
import os

import numpy as np
import pytest
import yaml
from sensor_msgs.msg import BatteryState

from bms_interfaces.msg import BatteryEstimate, PackMeasurement, ProtectionEvent, ProtectionStatus
from bms_interfaces.srv import SetSoc
from bms_ros.core.cell import CellSpec
from bms_ros.core.estimation import pack_soc
from bms_ros.core.estimation.synthetic import EcmCells
from bms_ros.core.profile import config_dir
from test.support.fake_pack import FakePack

pytestmark = pytest.mark.ros

CELL = os.path.join(config_dir(), 'cells', 'nmc_lg_m50.yaml')
MODULE = 'bms_ros.nodes.state_estimator'


def small_profile(tmp_path):
    """4 NMC cells in series, 2 sensors; fast publishing and persisting."""
    profile = {
        'pack': {'name': 'test_nmc_4s', 'serial_number': 'SN-TEST-4S', 'location': 'test_bay',
                 'cells_series': 4, 'cells_parallel': 1, 'temperature_sensors': 2,
                 'cell': CELL},
        'estimator': {'publish_rate_hz': 5.0, 'persist_period_s': 1.0,
                      'status_current_threshold_a': 0.2, 'rest_time_s': 3600.0},
    }
    path = tmp_path / 'nmc_4s.yaml'
    path.write_text(yaml.safe_dump(profile))
    return str(path)


def start_pack(env, soc, current_a, **values):
    """The fake pack (test/support/fake_pack) on a 1-RC truth at a constant current: 2 sensors,
    contactors closed, no estimate of its own (the node under test makes it).
    """
    pack = FakePack(env, cells=len(soc), sensors=2, truth=EcmCells(CellSpec.from_file(CELL), soc),
                    closed=(True, False, True))
    pack.set(current_a=current_a, estimates=False, **values)
    return pack.start()


def truth_pack_soc(pack):
    """The pack SoC of the truth over the cells the pack reports valid."""
    with pack.lock:
        ok = np.asarray(pack.valid_cells)
        return pack_soc(pack.truth.soc[ok], pack.truth.capacity_ah[ok])[0]


def test_battery_state_follows_a_discharge(ros_env, tmp_path):
    profile = small_profile(tmp_path)
    state = tmp_path / 'state.json'
    battery = ros_env.subscribe(BatteryState, 'battery_state')
    estimate = ros_env.subscribe(BatteryEstimate, 'estimate')
    probe = start_pack(ros_env, [0.60, 0.64, 0.57, 0.62], current_a=-10.0,   # 2 C discharge
                       valid_cells=[True, True, True, False], valid_sensors=[True, False])
    ros_env.start_module(MODULE, params={'profile': profile, 'state_file': str(state)})
    ros_env.wait_for_subscribers(probe.measurement_pub, timeout_s=15.0)
    first = battery.wait_for(lambda m: m.present and math.isfinite(m.percentage),
                             timeout_s=15.0, what='a present battery with a percentage')
    battery.clear()
    msg = battery.wait_count(15, timeout_s=10.0)[-1]     # ~3 s of discharge later
    truth = truth_pack_soc(probe)
    assert msg.percentage == pytest.approx(truth, abs=0.02)
    assert msg.percentage < first.percentage              # it discharges
    assert msg.current == pytest.approx(-10.0)            # negative when discharging
    assert msg.power_supply_status == BatteryState.POWER_SUPPLY_STATUS_DISCHARGING
    assert msg.power_supply_technology == BatteryState.POWER_SUPPLY_TECHNOLOGY_LION
    assert msg.power_supply_health == BatteryState.POWER_SUPPLY_HEALTH_UNKNOWN  # no protection
    assert msg.present
    assert msg.serial_number == 'SN-TEST-4S' and msg.location == 'test_bay'
    assert msg.design_capacity == pytest.approx(5.0)
    assert msg.capacity > 0 and msg.charge == pytest.approx(msg.percentage * msg.capacity,
                                                            rel=1e-3)
    assert len(msg.cell_voltage) == 4 and len(msg.cell_temperature) == 4
    assert math.isnan(msg.cell_voltage[3]) and all(3.0 < v < 4.2 for v in msg.cell_voltage[:3])
    assert msg.cell_temperature[:2] == pytest.approx([25.0, 25.0])     # sensor 0: cells 0, 1
    assert all(math.isnan(t) for t in msg.cell_temperature[2:])         # sensor 1 invalid
    est = estimate.wait_for(lambda m: m.discharge_current_limit_a > 0, timeout_s=5.0)
    assert len(est.cell_soc) == 4 and math.isnan(est.cell_soc[3])
    assert est.cell_soc[:3] == pytest.approx(probe.truth.soc[:3], abs=0.03)
    assert est.pack_soc_min <= est.pack_soc <= est.pack_soc_max
    assert est.charge_current_limit_a >= 0 and est.measurements_rejected == 0

    # a malformed measurement is rejected and counted, not a crash
    bad = PackMeasurement()
    bad.cell_voltages_v = [3.7] * 3
    bad.pack_current_a = -10.0
    probe.measurement_pub.publish(bad)
    estimate.wait_for(lambda m: m.measurements_rejected >= 1, timeout_s=5.0,
                      what='the bad measurement counted')

    # a latched over-temperature trip: health OVERHEAT, limits 0
    status_pub = ros_env.publisher(ProtectionStatus, 'protection_status')
    trip = ProtectionEvent(limit_id='discharge_overtemperature', level=ProtectionEvent.LEVEL_TRIP,
                           active=True, latched=True)
    status = ProtectionStatus(max_level=ProtectionEvent.LEVEL_TRIP, trip_latched=True,
                              active=[trip])
    ros_env.wait_for_subscribers(status_pub, timeout_s=10.0)
    status_pub.publish(status)
    battery.wait_for(lambda m: m.power_supply_health ==
                     BatteryState.POWER_SUPPLY_HEALTH_OVERHEAT, timeout_s=5.0, what='OVERHEAT')
    estimate.clear()
    est = estimate.wait_for(lambda m: True, timeout_s=5.0)
    assert est.charge_current_limit_a == 0.0 and est.discharge_current_limit_a == 0.0
    probe.stop()


def test_set_soc_and_restore_after_restart(ros_env, tmp_path):
    profile = small_profile(tmp_path)
    state = tmp_path / 'state.json'
    battery = ros_env.subscribe(BatteryState, 'battery_state')
    probe = start_pack(ros_env, [0.6] * 4, current_a=0.0,
                       valid_cells=[False] * 4)   # no voltage: nothing pulls a set SoC back
    node = ros_env.start_module(MODULE, params={'profile': profile, 'state_file': str(state)})
    ros_env.wait_for_subscribers(probe.measurement_pub, timeout_s=15.0)
    # matched is not yet received: wait until the node says it has a measurement
    battery.wait_for(lambda m: m.present, timeout_s=15.0, what='a measurement at the node')

    reply = ros_env.call(SetSoc, 'set_soc', SetSoc.Request(cell_soc=[0.3, 0.4]), timeout_s=15.0)
    assert not reply.success and 'give 1 or 4' in reply.message
    reply = ros_env.call(SetSoc, 'set_soc', SetSoc.Request(from_ocv=True))
    assert not reply.success and 'not at rest' in reply.message
    reply = ros_env.call(SetSoc, 'set_soc', SetSoc.Request(from_ocv=True, force=True))
    assert not reply.success and 'no valid cell voltage' in reply.message
    probe.set(valid_cells=[True] * 4)
    battery.wait_for(lambda m: not math.isnan(m.cell_voltage[0]), timeout_s=5.0)
    reply = ros_env.call(SetSoc, 'set_soc', SetSoc.Request(from_ocv=True, force=True))
    assert reply.success and reply.cell_soc == pytest.approx([0.6] * 4, abs=0.01)

    probe.stop()
    reply = ros_env.call(SetSoc, 'set_soc', SetSoc.Request(cell_soc=[0.25, 0.3, 0.35, 0.3]))
    assert reply.success and reply.cell_soc == pytest.approx([0.25, 0.3, 0.35, 0.3], abs=1e-6)
    expected = 0.25 / (0.25 + 1 - 0.35)
    battery.wait_for(lambda m: m.percentage == pytest.approx(expected, abs=1e-4), timeout_s=5.0,
                     what='the set SoC')
    assert node.stop() == 0                      # SIGINT: saves the state at shutdown
    saved = json.loads(state.read_text())
    assert saved['cell_soc'] == pytest.approx([0.25, 0.3, 0.35, 0.3], abs=1e-6)

    battery.clear()
    ros_env.start_module(MODULE, params={'profile': profile, 'state_file': str(state)})
    msg = battery.wait_for(timeout_s=15.0, what='battery_state after the restart')
    assert msg.percentage == pytest.approx(expected, abs=1e-4)
    assert not msg.present                       # no measurement since the restart


def test_corrupt_state_file_starts_from_ocv(ros_env, tmp_path):
    profile = small_profile(tmp_path)
    state = tmp_path / 'state.json'
    state.write_text('{"format": "bms_ros.estimator_state", "version": 1, "cell_soc": [')
    battery = ros_env.subscribe(BatteryState, 'battery_state')
    probe = start_pack(ros_env, [0.7] * 4, current_a=0.0)
    node = ros_env.start_module(MODULE, params={'profile': profile, 'state_file': str(state)})
    msg = battery.wait_for(lambda m: m.present and math.isfinite(m.percentage), timeout_s=15.0,
                           what='a percentage from OCV')
    assert msg.percentage == pytest.approx(0.7, abs=0.01)
    assert 'ignoring saved state' in node.log_tail(50)
    probe.stop()


def test_bad_profile_exits_2_before_publishing(ros_env, tmp_path):
    profile = tmp_path / 'bad.yaml'
    profile.write_text(yaml.safe_dump({
        'pack': {'name': 'p', 'cells_series': 2, 'temperature_sensors': 1, 'cell': CELL},
        'estimator': {'rest_time_s': -1}}))
    node = ros_env.start_module(MODULE, params={'profile': str(profile)})
    node.popen.wait(20.0)
    assert node.popen.returncode == 2
    assert 'estimator.rest_time_s' in node.log_tail(20)
