"""The motion_limits node: a low discharge limit slows the filtered cmd_vel down smoothly."""
import threading
import time

import pytest
import yaml
from geometry_msgs.msg import Twist, TwistStamped
from sensor_msgs.msg import BatteryState

from bms_interfaces.msg import BatteryEstimate, MotionLimits
from bms_ros.core.profile import Profile, default_profile_path

pytestmark = pytest.mark.ros

MODULE = 'bms_ros.nodes.motion_limits'


def profile_file(tmp_path, stamped):
    data = yaml.safe_load(open(default_profile_path()))
    base = Profile(default_profile_path())
    data['pack']['cell'] = base.pack.cell_single.path
    data['motion_limits'].update({'filter_cmd_vel': True, 'stamped': stamped,
                                  'speed_limit_rate_m_per_s2': 1.0,
                                  # arrival gaps on a loaded machine must not read as a
                                  # stopped command stream (which restarts from rest)
                                  'cmd_timeout_s': 2.0})
    for key in ('can', 'simulator'):          # paths relative to the shipped profile
        data.pop(key, None)
    path = tmp_path / 'robot.yaml'
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize('stamped', [False, True])
def test_low_discharge_limit_slows_the_command(ros_env, tmp_path, stamped):
    kind = TwistStamped if stamped else Twist
    limits = ros_env.subscribe(MotionLimits, 'motion_limits')
    out = ros_env.subscribe(kind, 'cmd_vel')
    est_pub = ros_env.publisher(BatteryEstimate, 'estimate')
    bat_pub = ros_env.publisher(BatteryState, 'battery_state')
    cmd_pub = ros_env.publisher(kind, 'cmd_vel_in')
    ros_env.start_module(MODULE, params={'profile': profile_file(tmp_path, stamped)})
    ros_env.wait_for_subscribers(cmd_pub, timeout_s=15.0)
    limit_a = [100.0]
    stop = threading.Event()

    def feed():                                # the estimator at 5 Hz, the planner at 20 Hz
        k = 0
        while not stop.is_set():
            if k % 4 == 0:
                est = BatteryEstimate(cell_r0_ohm=[0.001] * 16)
                est.discharge_current_limit_long_a = est.discharge_current_limit_a = limit_a[0]
                est.charge_current_limit_long_a = est.charge_current_limit_a = 20.0
                est_pub.publish(est)
                bat_pub.publish(BatteryState(voltage=52.0, current=0.0, temperature=25.0))
            cmd = kind()
            twist = cmd.twist if stamped else cmd
            twist.linear.x, twist.angular.z = 2.0, 0.5
            cmd_pub.publish(cmd)
            k += 1
            time.sleep(0.05)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        free = limits.wait_for(lambda m: m.reason == 'none' and not m.limited, timeout_s=15.0,
                               what='unlimited with a 100 A limit')
        assert free.max_speed_m_per_s == pytest.approx(2.0, abs=1e-3) and not free.limited
        fast = out.wait_for(lambda m: (m.twist if stamped else m).linear.x > 1.9,
                            timeout_s=10.0, what='the command passed at full speed')
        assert (fast.twist if stamped else fast).angular.z == pytest.approx(0.5)
        # a cold pack: 6 A (about 300 W) -> a lower speed limit, reached smoothly
        limit_a[0] = 6.0
        slow = limits.wait_for(lambda m: m.limited and m.reason == 'discharge' and
                               m.max_speed_m_per_s < 1.7, timeout_s=10.0)
        assert slow.discharge_power_limit_w == pytest.approx(6.0 * (52.0 - 6.0 * 0.016),
                                                            rel=0.01)
        out.clear()
        msgs = out.wait_count(30, timeout_s=10.0)
        speeds = [(m.twist if stamped else m).linear.x for m in msgs]
        assert all(b <= a + 1e-6 for a, b in zip(speeds, speeds[1:]))    # only slowing down
        # the step bound per command is the core test's (test_energy_motion): here, arrival
        # times on a loaded machine are no clock
        limits.clear()
        final = limits.wait_for(lambda m: m.max_speed_m_per_s < 1.65, timeout_s=10.0)
        out.clear()
        settled = out.wait_for(lambda m: (m.twist if stamped else m).linear.x <=
                               final.max_speed_m_per_s + 0.05, timeout_s=10.0)
        assert (settled.twist if stamped else settled).linear.x > 0.5
    finally:
        stop.set()
        thread.join(2.0)
