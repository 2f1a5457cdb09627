"""Vehicle load: demand current from synthetic odometry and IMU, checked against hand physics."""
import math

import pytest

from bms_ros.core.config import Section
from bms_ros.core.errors import ConfigError
from bms_ros.core.profile import Profile, config_dir
from bms_ros.core.vehicle_load import (
    VehicleConfig,
    VehicleLoad,
    attitude_from_quaternion,
    grade_rad,
    pack_current_a,
    pack_power_w,
    tractive_force_n,
)

# m 100 kg, c_rr 0.02, c_d A = 0.5 m2, rho 1.2, eta 0.8 / 0.6, regen <= 300 W, aux 50 W
CONFIG = VehicleConfig(mass_kg=100.0, inertia_factor=1.0, rolling_resistance=0.02,
                       drag_coefficient=1.0, frontal_area_m2=0.5, air_density_kg_per_m3=1.2,
                       gravity_m_per_s2=9.81, drivetrain_efficiency=0.8, regen_efficiency=0.6,
                       regen_power_max_w=300.0, traction_power_max_w=0.0,
                       auxiliary_power_w=50.0, acceleration_filter_s=0.0,
                       input_timeout_s=0.5, voltage_timeout_s=2.0, nominal_voltage_v=48.0)


def pitch_quaternion(pitch_rad):
    """(x, y, z, w) of a rotation by ``pitch_rad`` about the body y axis."""
    return (0.0, math.sin(pitch_rad / 2), 0.0, math.cos(pitch_rad / 2))


def drive(load, speeds, dt=0.1, t0=0.0):
    """Feed odometry samples every ``dt``; returns the time of the last one."""
    t = t0
    for v in speeds:
        load.update_odometry(t, v)
        t += dt
    return t - dt


def test_flat_constant_speed_matches_hand_computation():
    load = VehicleLoad(CONFIG)
    load.update_imu(0.0, 0.0, 0.0, 0.0, 1.0)
    load.update_voltage(0.0, 50.0)
    t = drive(load, [2.0] * 5)
    d = load.demand(t)
    # F = c_rr m g + rho c_d A v^2 / 2 = 19.62 + 1.2 = 20.82 N; P_wheel = 41.64 W
    assert d.wheel_power_w == pytest.approx(41.64, abs=1e-6)
    # battery: 41.64 / 0.8 + 50 = 102.05 W out; I = -102.05 / 50 V
    assert d.pack_power_w == pytest.approx(-102.05, abs=1e-6)
    assert d.pack_current_a == pytest.approx(-2.041, abs=1e-6)
    assert d.source == 'motion' and d.voltage_measured


def test_uphill_from_pitched_imu_quaternion():
    grade = math.atan(0.10)                     # 10 % grade
    q = pitch_quaternion(-grade)                # ROS: nose up is negative pitch
    roll, pitch = attitude_from_quaternion(*q)
    assert pitch == pytest.approx(-grade, abs=1e-12) and roll == pytest.approx(0.0, abs=1e-12)
    assert grade_rad(pitch) == pytest.approx(grade, abs=1e-12)
    load = VehicleLoad(CONFIG)
    load.update_imu(0.0, *q)
    load.update_voltage(0.0, 50.0)
    t = drive(load, [2.0] * 5)
    d = load.demand(t)
    # F = m g sin(a) + c_rr m g cos(a) + drag = 97.6135 + 19.5224 + 1.2 = 118.3359 N
    force = 100 * 9.81 * math.sin(grade) + 0.02 * 100 * 9.81 * math.cos(grade) + 1.2
    assert force == pytest.approx(118.3359, abs=1e-3)
    assert d.wheel_power_w == pytest.approx(2.0 * force, abs=1e-6)
    assert d.pack_current_a == pytest.approx(-(2.0 * force / 0.8 + 50.0) / 50.0, abs=1e-6)
    assert d.grade_rad == pytest.approx(grade, abs=1e-12)
    # downhill at the same grade: gravity drives, the wheels brake -> regeneration
    load.update_imu(t, *pitch_quaternion(+grade))
    d = load.demand(t)
    wheel = 2.0 * (-100 * 9.81 * math.sin(grade) + 0.02 * 100 * 9.81 * math.cos(grade) + 1.2)
    assert d.wheel_power_w == pytest.approx(wheel, abs=1e-6)          # -154.2 W
    assert d.pack_power_w == pytest.approx(-wheel * 0.6 - 50.0, abs=1e-6)
    assert d.pack_current_a > 0.0                                      # net charging


def test_braking_regenerates_up_to_the_limit():
    load = VehicleLoad(CONFIG)
    load.update_voltage(0.0, 50.0)
    # 6.0 -> 5.0 m/s in 0.5 s: a = -2 m/s2 (no filter), at v = 5 m/s
    t = drive(load, [6.0, 5.0], dt=0.5)
    d = load.demand(t)
    assert d.acceleration_m_per_s2 == pytest.approx(-2.0, abs=1e-9)
    # F = -200 + 19.62 + 0.5 * 1.2 * 0.5 * 25 = -172.88 N; P_wheel = -864.4 W
    assert d.wheel_power_w == pytest.approx(-864.4, abs=1e-6)
    # recovered 864.4 * 0.6 = 518.6 W, limited to 300 W; minus 50 W aux -> +250 W, +5 A
    assert d.pack_power_w == pytest.approx(250.0, abs=1e-9)
    assert d.pack_current_a == pytest.approx(5.0, abs=1e-9)


def test_no_regeneration_configured_gives_only_auxiliary_load_when_braking():
    config = VehicleConfig(**{**CONFIG.__dict__, 'regen_power_max_w': 0.0})
    assert pack_power_w(config, -864.4) == pytest.approx(-50.0)
    assert pack_current_a(-50.0, 50.0) == pytest.approx(-1.0)


def test_traction_power_limit_and_reverse_driving():
    config = VehicleConfig(**{**CONFIG.__dict__, 'traction_power_max_w': 1000.0})
    assert pack_power_w(config, 2000.0) == pytest.approx(-1050.0)
    # reversing at -2 m/s on the flat: rolling and drag oppose motion, power is still drawn
    force = tractive_force_n(CONFIG, -2.0, 0.0)
    assert force == pytest.approx(-20.82, abs=1e-9)
    assert force * -2.0 == pytest.approx(41.64, abs=1e-9)


def test_acceleration_low_pass_and_standstill():
    config = VehicleConfig(**{**CONFIG.__dict__, 'acceleration_filter_s': 0.3})
    load = VehicleLoad(config)
    load.update_odometry(0.0, 0.0)
    load.update_odometry(0.1, 0.1)       # raw 1 m/s2, alpha = 0.1 / 0.4 = 0.25
    assert load.acceleration_m_per_s2 == pytest.approx(0.25, abs=1e-12)
    load.update_odometry(0.2, 0.2)       # 0.25 + 0.25 * (1 - 0.25)
    assert load.acceleration_m_per_s2 == pytest.approx(0.4375, abs=1e-12)
    still = VehicleLoad(CONFIG)
    drive(still, [0.0] * 3)
    d = still.demand(0.2)
    assert d.wheel_power_w == 0.0 and d.pack_power_w == pytest.approx(-50.0)


def test_wheel_efforts_replace_the_model_when_fresh():
    config = VehicleConfig(**{**CONFIG.__dict__, 'wheel_joints': ('left', 'right')})
    load = VehicleLoad(config)
    load.update_voltage(0.0, 50.0)
    drive(load, [2.0] * 3)
    # 2 x 10 N m at 8 rad/s = 160 W; the caster joint is ignored
    assert load.update_joints(0.2, ['left', 'caster', 'right'], [8.0, 100.0, 8.0],
                              [10.0, 5.0, 10.0])
    d = load.demand(0.2)
    assert d.source == 'wheel_efforts' and d.wheel_power_w == pytest.approx(160.0)
    assert d.pack_current_a == pytest.approx(-(160.0 / 0.8 + 50.0) / 50.0)
    # joint_states stale (> 0.5 s) while odometry goes on: back to the motion model
    drive(load, [2.0] * 10, t0=0.3)
    d = load.demand(1.2)
    assert d.source == 'motion' and d.wheel_power_w == pytest.approx(41.64, abs=1e-6)


def test_stale_inputs_and_voltage_fallback():
    load = VehicleLoad(CONFIG)
    d = load.demand(0.0)
    # nothing received: auxiliary load only, at the nominal voltage
    assert d.source == 'stale' and not d.voltage_measured
    assert d.pack_current_a == pytest.approx(-50.0 / 48.0)
    load.update_voltage(0.0, 50.0)
    drive(load, [2.0] * 3)
    assert load.demand(0.2 + 0.4).source == 'motion'
    assert load.demand(0.2 + 0.6).source == 'stale'
    assert not load.demand(2.5).voltage_measured


def test_bad_inputs_are_rejected_and_counted():
    load = VehicleLoad(CONFIG)
    assert not load.update_imu(0.0, 0.0, 0.0, 0.0, 0.0)           # zero-norm quaternion
    assert not load.update_imu(0.0, math.nan, 0.0, 0.0, 1.0)
    assert not load.update_odometry(0.0, math.inf)
    assert load.update_odometry(1.0, 1.0)
    assert not load.update_odometry(1.0, 2.0)                      # stamp did not advance
    assert not load.update_voltage(1.0, math.nan)
    assert not load.update_voltage(1.0, 0.0)
    config = VehicleConfig(**{**CONFIG.__dict__, 'wheel_joints': ('left',)})
    wheels = VehicleLoad(config)
    assert not wheels.update_joints(0.0, ['left'], [], [])        # no velocity/effort
    assert not wheels.update_joints(0.0, ['right'], [1.0], [1.0])
    assert load.rejected == 6 and wheels.rejected == 2
    # state unchanged by the rejected samples
    assert load.speed_m_per_s == 1.0 and load.voltage_v is None


def test_profiles_gazebo_sections_validate():
    for name in ('lfp_16s.yaml', 'nmc_96s.yaml'):
        profile = Profile(f'{config_dir()}/profiles/{name}')
        config = VehicleConfig.from_section(profile.section('gazebo'), profile.pack)
        assert config.nominal_voltage_v == pytest.approx(profile.pack.nominal_voltage_v)


@pytest.mark.parametrize('field,value,message', [
    ('mass_kg', -1.0, 'gazebo.mass_kg'),
    ('drivetrain_efficiency', 1.5, 'gazebo.drivetrain_efficiency'),
    ('source', 'magic', 'gazebo.source'),
    ('wheel_joints', 'left', 'gazebo.wheel_joints'),
    ('unknown_field', 1, 'gazebo.unknown_field'),
])
def test_bad_configuration_names_file_and_field(field, value, message):
    section = Section({'gazebo': {field: value}}, 'vehicle.yaml').section('gazebo')
    with pytest.raises(ConfigError) as error:
        VehicleConfig.from_section(section, None)
    assert 'vehicle.yaml' in str(error.value) and message in str(error.value)


def test_wheel_efforts_source_needs_joint_names():
    section = Section({'gazebo': {'source': 'wheel_efforts', 'nominal_voltage_v': 48.0}},
                      'v.yaml').section('gazebo')
    with pytest.raises(ConfigError, match='gazebo.wheel_joints'):
        VehicleConfig.from_section(section)


def test_bridge_yaml_bridges_what_the_node_subscribes():
    import yaml
    with open(f'{config_dir()}/gazebo/ros_gz_bridge.yaml', encoding='utf-8') as stream:
        entries = yaml.safe_load(stream)
    bridged = {e['ros_topic_name']: (e['ros_type_name'], e['gz_type_name'], e['direction'])
               for e in entries}
    assert bridged == {
        '/clock': ('rosgraph_msgs/msg/Clock', 'gz.msgs.Clock', 'GZ_TO_ROS'),
        'odom': ('nav_msgs/msg/Odometry', 'gz.msgs.Odometry', 'GZ_TO_ROS'),
        'imu': ('sensor_msgs/msg/Imu', 'gz.msgs.IMU', 'GZ_TO_ROS'),
        'joint_states': ('sensor_msgs/msg/JointState', 'gz.msgs.Model', 'GZ_TO_ROS'),
    }
    assert all(e['gz_topic_name'].startswith('/') for e in entries)
    # the node's subscriptions (type, contract name) as declared in its source (read, not
    # imported: no rclpy in core tests), and the contract's name and type of each
    import os

    import bms_ros
    from bms_ros.core import contract
    node_file = os.path.join(os.path.dirname(bms_ros.__file__), 'nodes', 'gazebo_load.py')
    with open(node_file, encoding='utf-8') as stream:
        source = stream.read()
    names = {contract.ODOM: 'ODOM', contract.IMU: 'IMU', contract.JOINT_STATES: 'JOINT_STATES'}
    for topic, (ros_type, _, _) in bridged.items():
        if topic != '/clock':
            assert contract.EXTERNAL_TOPICS[topic].msgtype == ros_type
            assert f"{ros_type.rsplit('/', 1)[-1]}, contract.{names[topic]}" in source
