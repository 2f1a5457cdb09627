"""The state_estimator's energy fields and its check_mission service (real node process)."""
import math
import os
import threading

import numpy as np
import pytest
import yaml

from bms_interfaces.msg import BatteryEstimate, PackMeasurement
from bms_interfaces.srv import CheckMission
from bms_ros.core.cell import CellSpec
from bms_ros.core.energy.config import EnergyConfig
from bms_ros.core.energy.state_of_energy import CellEnergyModel
from bms_ros.core.estimation.synthetic import EcmCells
from bms_ros.core.profile import config_dir

pytestmark = pytest.mark.ros

CELL = os.path.join(config_dir(), 'cells', 'nmc_lg_m50.yaml')
MODULE = 'bms_ros.nodes.state_estimator'
PERIOD_S = 0.1


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
    truth = EcmCells(cell, [0.5] * 4)
    lock = threading.Lock()
    pub = ros_env.publisher(PackMeasurement, 'measurement')
    current = -5.0

    def publish():
        with lock:
            truth.step(PERIOD_S, current)
            volts = truth.voltage_v()
            m = PackMeasurement()
            m.header.stamp = ros_env.node.get_clock().now().to_msg()
            m.cell_voltages_v = [float(v) for v in volts]
            m.cell_voltage_valid = [True] * 4
            m.temperatures_degc = [25.0, 25.0]
            m.temperature_valid = [True, True]
            m.pack_current_a = current
            m.pack_voltage_v = float(np.sum(volts))
            m.negative_contactor_closed = m.positive_contactor_closed = True
            pub.publish(m)

    timer = ros_env.node.create_timer(PERIOD_S, publish)
    estimate = ros_env.subscribe(BatteryEstimate, 'estimate')
    ros_env.start_module(MODULE, params={'profile': profile_file(tmp_path),
                                         'state_file': str(tmp_path / 'state.json')})
    ros_env.wait_for_subscribers(pub, timeout_s=15.0)
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
    timer.cancel()
