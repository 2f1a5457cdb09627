"""Power-aware motion limits (bms_ros.core.energy.motion)."""
import pytest

from bms_ros.core.config import Section
from bms_ros.core.energy.config import MotionLimitsConfig
from bms_ros.core.energy.motion import (
    CmdFilter,
    SpeedLimiter,
    motion_limits,
    power_limits_w,
    resistive_force_n,
)
from bms_ros.core.errors import ConfigError
from bms_ros.core.profile import Profile, default_profile_path
from bms_ros.core.vehicle_load import VehicleConfig


@pytest.fixture(scope='module')
def robot():
    profile = Profile(default_profile_path())
    vehicle = VehicleConfig.from_section(profile.section('gazebo'), profile.pack)
    config = MotionLimitsConfig.from_section(profile.section('motion_limits'))
    return vehicle, config


def test_the_speed_limit_is_where_the_steady_power_meets_the_limit(robot):
    vehicle, config = robot
    limits = motion_limits(vehicle, config, 300.0, 100.0, 1.0)
    assert limits.limited and limits.reason == 'discharge'
    v = limits.max_speed_m_per_s
    wheel = (300.0 - vehicle.auxiliary_power_w) * vehicle.drivetrain_efficiency
    assert resistive_force_n(vehicle, v, config.design_grade_rad) * v == pytest.approx(wheel,
                                                                                      rel=1e-6)
    assert 0.0 < limits.max_acceleration_m_per_s2 < config.max_acceleration_m_per_s2


def test_more_power_more_speed_up_to_the_vehicle_limit(robot):
    vehicle, config = robot
    speeds = [motion_limits(vehicle, config, p, 0.0, 0.5).max_speed_m_per_s
              for p in (60.0, 150.0, 300.0, 600.0, 5000.0)]
    assert speeds == sorted(speeds)
    assert speeds[0] == 0.0                                    # the auxiliary load takes all
    assert speeds[-1] == config.max_speed_m_per_s
    assert not motion_limits(vehicle, config, 5000.0, 0.0, 0.5).limited


def test_regen_limits_braking_without_friction_brakes(robot):
    vehicle, config = robot
    motors_only = MotionLimitsConfig(**{**config.__dict__, 'friction_brakes': False})
    cold = motion_limits(vehicle, motors_only, 2000.0, 0.0, 1.5)
    warm = motion_limits(vehicle, motors_only, 2000.0, 1000.0, 1.5)
    assert cold.max_deceleration_m_per_s2 < warm.max_deceleration_m_per_s2
    assert motion_limits(vehicle, config, 2000.0, 0.0, 1.5).max_deceleration_m_per_s2 == \
        config.max_deceleration_m_per_s2


def test_power_limits_at_the_loaded_voltage():
    p_dis, p_chg = power_limits_w(100.0, 20.0, 50.0, 0.0, 0.05)
    assert p_dis == pytest.approx(100.0 * (50.0 - 5.0))
    assert p_chg == pytest.approx(20.0 * (50.0 + 1.0))
    assert power_limits_w(100.0, 20.0, float('nan'), 0.0, 0.05) == (0.0, 0.0)


def test_speed_limiter_is_rate_limited_and_floored():
    limiter = SpeedLimiter(0.2, 0.2, 2.0)
    assert limiter.update(0.0, 2.0) == 2.0
    assert limiter.update(1.0, 0.0) == pytest.approx(1.8)     # falls 0.2 m/s per s
    for t in range(2, 20):
        value = limiter.update(float(t), 0.0)
    assert value == pytest.approx(0.2)                         # never below the floor


def test_cmd_filter_ramps_within_the_limit(robot):
    vehicle, config = robot
    limits = motion_limits(vehicle, config, 300.0, 100.0, 0.0)
    f = CmdFilter(config)
    out = [f.filter(0.1 * k, 2.0, 1.0, limits) for k in range(100)]
    speeds = [v for v, _ in out]
    steps = [b - a for a, b in zip(speeds, speeds[1:])]
    assert max(speeds) <= limits.max_speed_m_per_s + 1e-9
    assert speeds[-1] == pytest.approx(limits.max_speed_m_per_s)
    assert max(steps) <= limits.max_acceleration_m_per_s2 * 0.1 + 1e-9
    assert out[-1][1] == pytest.approx(limits.max_speed_m_per_s / config.max_speed_m_per_s)
    # a stale command stream starts again from rest
    assert f.filter(20.0, 2.0, 0.0, limits)[0] == 0.0


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match='min_speed_m_per_s'):
        MotionLimitsConfig.from_section(Section({'min_speed_m_per_s': 3.0,
                                                 'max_speed_m_per_s': 2.0}, 'p.yaml', 'ml'))
    with pytest.raises(ConfigError, match='limit_horizon'):
        MotionLimitsConfig.from_section(Section({'limit_horizon': 'medium'}, 'p.yaml', 'ml'))
