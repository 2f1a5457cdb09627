"""What each ROS consumer of battery_state decides, fed by the real state_estimator node.

Each consumer's decision is reproduced from its published logic (docs/robot_energy.md cites
the source files); the node runs in its own process with the charger_present input, the
dock_battery_state copy (energy.docking_current_a) and battery_state remapped to nav2's
default /battery_status.
"""
import math
import os

import pytest
import yaml
from sensor_msgs.msg import BatteryState

from bms_interfaces.msg import PackState
from bms_interfaces.srv import SetSoc
from bms_ros.core.cell import CellSpec
from bms_ros.core.estimation.synthetic import EcmCells
from bms_ros.core.profile import config_dir
from bms_ros.nodes import qos
from test.support.fake_pack import FakePack

pytestmark = pytest.mark.ros

CELL = os.path.join(config_dir(), 'cells', 'nmc_lg_m50.yaml')
MODULE = 'bms_ros.nodes.state_estimator'
LATCHED = qos.LATEST


# --- the consumers' decisions, as their sources state them (docs/robot_energy.md) ----------

def nav2_is_battery_low(msg, min_battery=0.2, is_voltage=False):
    """nav2_behavior_tree IsBatteryLowCondition::batteryCallback."""
    return msg.voltage <= min_battery if is_voltage else msg.percentage <= min_battery


def nav2_is_battery_charging(msg):
    """nav2_behavior_tree IsBatteryChargingCondition: only POWER_SUPPLY_STATUS_CHARGING."""
    return msg.power_supply_status == BatteryState.POWER_SUPPLY_STATUS_CHARGING


def docking_is_charging(msg, charging_threshold=0.5):
    """opennav_docking SimpleChargingDock::batteryCallback: current > charging_threshold."""
    return msg.current > charging_threshold


def rmf_battery_soc(msg, previous):
    """rmf_fleet_adapter RobotUpdateHandle::update_battery_soc ignores values outside 0..1
    (a NaN passes that test: it would be stored).
    """
    soc = msg.percentage
    return previous if (soc < 0.0 or soc > 1.0) else soc


def broadcaster_percentage(voltage_v, minimum_voltage_v, maximum_voltage_v):
    """ros2_control battery_state_broadcaster's fallback: linear in voltage, clamped."""
    span = maximum_voltage_v - minimum_voltage_v
    return min(max((voltage_v - minimum_voltage_v) / span, 0.0), 1.0)


# --- the pack the node sees ---------------------------------------------------------------

def profile_file(tmp_path):
    profile = {
        'pack': {'name': 'test_nmc_4s', 'serial_number': 'SN-CONSUMERS', 'location': 'dock',
                 'cells_series': 4, 'cells_parallel': 1, 'temperature_sensors': 2,
                 'cell': CELL},
        'estimator': {'publish_rate_hz': 5.0, 'persist_period_s': 60.0,
                      'status_current_threshold_a': 0.2, 'rest_time_s': 3600.0},
        # the charger input's timeout is not under test here: 10 s, so a node held up under
        # load does not read the 2 Hz input as stale (a loaded run once did, at step 4)
        'energy': {'docking_current_a': 1.0, 'charger_present_timeout_s': 10.0,
                   'idle_current_a': 0.2},
    }
    path = tmp_path / 'consumers.yaml'
    path.write_text(yaml.safe_dump(profile))
    return str(path)


def test_consumer_matrix_from_the_real_node(ros_env, tmp_path):
    battery = ros_env.subscribe(BatteryState, '/battery_status')     # nav2's default topic
    dock = ros_env.subscribe(BatteryState, 'dock_battery_state')
    pack_state = ros_env.publisher(PackState, 'pack_state', LATCHED)
    # the fake pack (test/support/fake_pack) on a 1-RC truth, contactors closed, 2 sensors; no
    # usable voltage yet: no estimate
    pack = FakePack(ros_env, cells=4, sensors=2,
                    truth=EcmCells(CellSpec.from_file(CELL), [0.6] * 4), closed=(True, False, True),
                    charger=True)
    pack.set(current_a=-5.0, estimates=False, valid_cells=[False] * 4)
    pack.start()
    ros_env.start_module(MODULE, params={'profile': profile_file(tmp_path),
                                         'state_file': str(tmp_path / 'state.json')},
                         remaps={'battery_state': '/battery_status'})
    ros_env.wait_for_subscribers(pack.measurement_pub, timeout_s=15.0)

    # 1. no estimate: percentage never NaN, reads 0 -> nav2 sees "low"; status not CHARGING
    unknown = battery.wait_for(timeout_s=15.0, what='battery_state on /battery_status')
    assert not math.isnan(unknown.percentage) and unknown.percentage == 0.0
    assert nav2_is_battery_low(unknown) and not nav2_is_battery_charging(unknown)
    assert rmf_battery_soc(unknown, previous=0.5) == 0.0

    # 2. driving: discharging, not low, not charging for any consumer
    pack.set(valid_cells=[True] * 4)
    drive = battery.wait_for(lambda m: m.present and m.percentage > 0.3, timeout_s=15.0,
                             what='an estimate while driving')
    assert drive.power_supply_status == BatteryState.POWER_SUPPLY_STATUS_DISCHARGING
    assert not nav2_is_battery_low(drive) and not nav2_is_battery_charging(drive)
    assert not docking_is_charging(drive) and drive.current == pytest.approx(-5.0)
    assert rmf_battery_soc(drive, previous=None) == pytest.approx(0.6, abs=0.03)
    drive_line = broadcaster_percentage(drive.voltage, 4 * 3.0, 4 * 4.2)

    # 3. on the dock, charging at 2 A: every consumer sees charging
    ros_env.wait_for_subscribers(pack.charger_pub, timeout_s=10.0)
    pack.set(charger_present=True, current_a=2.0)   # the dock's contact sensor, at 2 Hz
    charging = battery.wait_for(lambda m: m.current > 1.5, timeout_s=10.0, what='charging')
    assert nav2_is_battery_charging(charging) and docking_is_charging(charging)
    # the broadcaster's voltage line (3.0..4.2 V per cell) jumps with the current (I R), the
    # estimate does not: from -5 A to +2 A the same charge reads >= 10 % higher on the line
    charge_line = broadcaster_percentage(charging.voltage, 4 * 3.0, 4 * 4.2)
    assert charge_line - drive_line > 0.10
    assert abs(charging.percentage - drive.percentage) < 0.03

    # 4. FULL on the dock (no current): nav2 still sees charging (the charger input)
    with pack.lock:
        pack.truth.soc[:] = 0.99
    reply = ros_env.call(SetSoc, 'set_soc', SetSoc.Request(cell_soc=[0.99]), timeout_s=15.0)
    assert reply.success
    pack.set(current_a=0.0)
    # at 0 A only the charger input (its own 2 Hz topic, set at step 3, whose waits keyed on the
    # current alone) says charging: the first 0 A estimates may come before it reached the node
    full = battery.wait_for(lambda m: m.current == 0.0 and m.percentage > 0.97
                            and nav2_is_battery_charging(m), timeout_s=10.0,
                            what='a full pack on the dock, charging for nav2')
    assert nav2_is_battery_charging(full)
    assert not docking_is_charging(full)           # battery_state stays honest: 0 A
    full_dock = dock.wait_for(lambda m: m.percentage > 0.97 and docking_is_charging(m),
                              timeout_s=10.0,
                              what='dock_battery_state of the full pack, charging for docking')
    assert docking_is_charging(full_dock) and full_dock.serial_number == full.serial_number
    assert full_dock.percentage == pytest.approx(full.percentage, abs=0.01)

    # 5. contactors open on the dock: charging for nav2 and for the docking copy
    pack.set_contactors(False, False, False)      # the current is 0 A already
    ros_env.wait_for_subscribers(pack_state, timeout_s=10.0)
    pack_state.publish(PackState(state=PackState.STATE_STANDBY, state_name='STANDBY'))
    dock.clear()
    battery.clear()
    opened = battery.wait_for(lambda m: m.current == 0.0, timeout_s=10.0)
    assert nav2_is_battery_charging(opened) and not docking_is_charging(opened)
    assert docking_is_charging(dock.wait_for(timeout_s=10.0))

    # 6. off the charger: not charging anywhere; FULL (idle at full SoC)
    pack.set(charger_present=False)
    off = battery.wait_for(lambda m: not nav2_is_battery_charging(m), timeout_s=10.0,
                           what='not charging once the charger is gone')
    assert off.power_supply_status == BatteryState.POWER_SUPPLY_STATUS_FULL
    assert not docking_is_charging(dock.wait_for(lambda m: m.current == 0.0, timeout_s=10.0))
    pack.stop()
