"""The balancing node in its own process, driven by measurement, estimate and protection."""
import os

import numpy as np
import pytest
import yaml

from bms_interfaces.msg import (
    BalancingCommand,
    BalancingStatus,
)
from bms_interfaces.srv import SetBalancingMode
from bms_ros.core.profile import config_dir
from test.support.fake_pack import FakePack

pytestmark = pytest.mark.ros


def small_profile(tmp_path, **balancing):
    """A 4-cell LFP profile whose balancing answers at once (no rest wait, no duty cycle)."""
    with open(os.path.join(config_dir(), 'profiles', 'lfp_16s.yaml')) as stream:
        base = yaml.safe_load(stream)
    section = dict(base['balancing'], mode='voltage', period_s=0.2, rest_time_s=0.0,
                   duty_off_s=0.0, soc_filter_time_s=0.0, max_bleeding_cells=3,
                   min_cell_voltage_v=3.2)
    section.update(balancing)
    profile = {
        'pack': dict(base['pack'], cells_series=4, temperature_sensors=2,
                     cell=os.path.join(config_dir(), 'cells', 'lfp_a123_anr26650.yaml')),
        'balancing': section,
    }
    path = tmp_path / 'balancing_4s.yaml'
    path.write_text(yaml.safe_dump(profile))
    return str(path)


def scenario_pack(env):
    """The fake pack (test/support/fake_pack) as the scenario: measurement, estimate (cell SoC
    and capacity) and protection status, all at 10 Hz; 4 cells at 3.30 V, 2 sensors.
    """
    pack = FakePack(env, cells=4, sensors=2, estimate_every=1, protection=True)
    pack.set(cells_v=[3.30] * 4, cell_soc=[0.5] * 4, cell_capacity_ah=[23.0] * 4)
    return pack


def bleeding(msg):
    return [i for i, b in enumerate(msg.cell_bleed) if b]


def test_balancing_node_commands_reports_and_obeys_protection(ros_env, tmp_path):
    commands = ros_env.subscribe(BalancingCommand, 'balancing_command')
    status = ros_env.subscribe(BalancingStatus, 'balancing_status')
    feeder = scenario_pack(ros_env)
    feeder.set(cells_v=[3.400, 3.420, 3.403, 3.410])
    feeder.start()
    ros_env.start_module('bms_ros.nodes.balancing', params={'profile': small_profile(tmp_path)})

    # voltage mode: cells 1 and 3 are more than 5 mV above cell 0; cell 2 is not; 0 is lowest
    s = status.wait_for(lambda m: m.active, timeout_s=20.0, what='bleeding in voltage mode')
    assert bleeding(s) == [1, 3]
    assert s.mode == BalancingStatus.MODE_VOLTAGE and s.inhibit_reason == ''
    assert s.cell_voltage_spread_v == pytest.approx(0.020, abs=1e-6)
    c = commands.wait_for(lambda m: any(m.cell_bleed), what='a bleed command')
    assert bleeding(c) == [1, 3] and len(c.cell_bleed) == 4

    # charge removed: only cells 1 and 3, V/R each over the same on-time, so the ratio is
    # V3 / V1 = 0.99708 (a 0.29 % effect); the tolerance is float32 rounding of the message
    # (~1e-7 relative), 300 times smaller than the effect. Energy = V x charge at constant V.
    s = status.wait_for(lambda m: m.charge_removed_ah[1] > 2e-6, timeout_s=10.0,
                        what='charge removed growing')
    q = np.array(s.charge_removed_ah, dtype=float)
    v1, v3 = float(np.float32(3.420)), float(np.float32(3.410))   # as the measurement carried
    assert q[0] == 0.0 and q[2] == 0.0
    assert q[3] / q[1] == pytest.approx(v3 / v1, rel=1e-5)
    assert q[3] / q[1] != pytest.approx(1.0, rel=1e-3)                # equal charge would fail
    assert s.energy_bled_wh == pytest.approx(v1 * q[1] + v3 * q[3], rel=1e-5)

    # a latched trip switches every bleed resistor off
    feeder.set(trip_latched=True)
    status.clear()
    s = status.wait_for(lambda m: m.inhibit_reason == 'protection trip latched', timeout_s=10.0,
                        what='inhibit on a latched trip')
    assert not s.active and not any(s.cell_bleed)
    commands.clear()
    later = commands.wait_count(3, timeout_s=5.0)
    assert not any(any(m.cell_bleed) for m in later)

    # service: SoC mode with a 2 % threshold; refusals explain themselves and change nothing
    reply = ros_env.call(SetBalancingMode, 'set_balancing_mode', SetBalancingMode.Request(
        mode=SetBalancingMode.Request.MODE_VOLTAGE, threshold_v=0.004, hysteresis_v=0.005))
    assert not reply.success
    assert reply.message == 'hysteresis_v (0.005 V) must be below threshold_v (0.004 V)'
    reply = ros_env.call(SetBalancingMode, 'set_balancing_mode', SetBalancingMode.Request(mode=9))
    assert not reply.success and reply.message.startswith('unknown mode 9')
    reply = ros_env.call(SetBalancingMode, 'set_balancing_mode', SetBalancingMode.Request(
        mode=SetBalancingMode.Request.MODE_SOC, soc_threshold=0.02))
    assert reply.success, reply.message
    assert 'mode soc' in reply.message and 'soc_threshold 0.02' in reply.message
    # on the LFP plateau: equal voltages, but cell 2 is 6 % above the lowest, cell 3 only 1 %
    feeder.set(cells_v=[3.300, 3.300, 3.301, 3.300], cell_soc=[0.50, 0.52, 0.56, 0.51])
    status.clear()
    s = status.wait_for(lambda m: m.mode == BalancingStatus.MODE_SOC, timeout_s=5.0)
    assert s.inhibit_reason == 'protection trip latched' and not s.active   # still tripped
    feeder.set(trip_latched=False)
    status.clear()
    s = status.wait_for(lambda m: m.active, timeout_s=10.0, what='bleeding in SoC mode')
    assert bleeding(s) == [2]
    assert s.cell_soc_spread == pytest.approx(0.06, abs=1e-6)

    # bad input: a measurement with 3 cells is rejected and holds balancing off
    feeder.set(cells_v=[3.300, 3.300, 3.301], valid_cells=[True] * 3)
    s = status.wait_for(lambda m: m.inhibit_reason == 'rejected measurement', timeout_s=10.0,
                        what='inhibit on a rejected measurement')
    assert not any(s.cell_bleed)
    # good again, then no measurement at all: stale after measurement_timeout_s (2 s)
    feeder.set(cells_v=[3.300, 3.300, 3.301, 3.300], valid_cells=[True] * 4)
    status.clear()
    status.wait_for(lambda m: m.active, timeout_s=10.0, what='bleeding again')
    feeder.set(measurements=False)
    s = status.wait_for(lambda m: m.inhibit_reason == 'stale measurement', timeout_s=10.0,
                        what='inhibit on a stale measurement')
    assert not any(s.cell_bleed)
    assert ros_env.processes[0].alive()


def test_bad_configuration_exits_2_naming_file_and_field(ros_env, tmp_path):
    path = small_profile(tmp_path, threshold_v=0.002, hysteresis_v=0.003)
    process = ros_env.start_module('bms_ros.nodes.balancing', params={'profile': path})
    assert process.popen.wait(30.0) == 2
    assert (f'{path}: balancing.hysteresis_v: must be below threshold_v (0.002), got 0.003'
            in process.log_tail())
