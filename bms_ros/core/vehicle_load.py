"""Pack current demand from a vehicle's motion (a Gazebo world, or a real robot's odometry).

Longitudinal dynamics of a wheeled vehicle along its forward (body x) axis, per sample:

    F_wheel = k m a + m g sin(grade) + c_rr m g cos(pitch) cos(roll) sign(v) + rho c_d A v |v| / 2
    P_wheel = F_wheel v                       (W, + = propelling, - = braking/coasting downhill)

grade = -pitch (ROS REP 103: x forward, z up, pitch > 0 is nose down), pitch and roll from the
IMU orientation with transforms3d. When wheel joint efforts are available, the measured wheel
power sum(effort_i * velocity_i) replaces the model's P_wheel. On the electrical side:

    propelling: P_pack = -min(P_wheel / eta_drive, traction_power_max_w) - P_aux
    braking:    P_pack = +min(-P_wheel * eta_regen, regen_power_max_w) - P_aux
    I_pack     = P_pack / V_pack               (A, + = charging: regeneration is positive)

Pure numpy + transforms3d; the gazebo_load node wires it to ROS.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from transforms3d.euler import quat2euler

if TYPE_CHECKING:
    from .config import Section
    from .profile import PackSpec

log = logging.getLogger(__name__)

SOURCES = ('auto', 'motion', 'wheel_efforts')
GAZEBO_FIELDS = (
    'mass_kg', 'inertia_factor', 'rolling_resistance', 'drag_coefficient', 'frontal_area_m2',
    'air_density_kg_per_m3', 'gravity_m_per_s2', 'drivetrain_efficiency', 'regen_efficiency',
    'regen_power_max_w', 'traction_power_max_w', 'auxiliary_power_w', 'acceleration_filter_s',
    'source', 'wheel_joints', 'publish_rate_hz', 'input_timeout_s', 'voltage_timeout_s',
    'nominal_voltage_v')


@dataclass(frozen=True)
class VehicleConfig:
    """The `gazebo:` section of a profile: the vehicle and its drivetrain."""

    mass_kg: float = 100.0
    inertia_factor: float = 1.0            # equivalent mass of rotating parts / mass (>= 1)
    rolling_resistance: float = 0.015      # c_rr, dimensionless
    drag_coefficient: float = 0.8          # c_d, dimensionless
    frontal_area_m2: float = 0.5
    air_density_kg_per_m3: float = 1.2
    gravity_m_per_s2: float = 9.81
    drivetrain_efficiency: float = 0.85    # battery -> wheel, propelling
    regen_efficiency: float = 0.6          # wheel -> battery, braking
    regen_power_max_w: float = 0.0         # 0 = no regeneration (friction brakes only)
    traction_power_max_w: float = 0.0      # 0 = unlimited (the vehicle's motion is a given)
    auxiliary_power_w: float = 0.0         # computers, sensors, lights: always drawn
    acceleration_filter_s: float = 0.2     # low-pass time constant of dv/dt
    source: str = 'auto'                   # auto | motion | wheel_efforts
    wheel_joints: tuple[str, ...] = ()     # joint names whose effort x velocity is wheel power
    publish_rate_hz: float = 10.0
    input_timeout_s: float = 0.5           # odometry / joint_states older than this: stale
    voltage_timeout_s: float = 2.0         # battery_state older: nominal voltage used
    nominal_voltage_v: float = 0.0         # 0 = the pack's nominal voltage (profile)

    @classmethod
    def from_section(cls, section: Section, pack: PackSpec | None = None) -> VehicleConfig:
        """Validate a `gazebo:` Section; ConfigError names the file and field."""
        section.reject_unknown(GAZEBO_FIELDS)
        d = cls()
        num = section.number
        joints = section.data.get('wheel_joints', [])
        if not isinstance(joints, list) or not all(isinstance(j, str) and j for j in joints):
            raise section.error('wheel_joints', f'expected a list of joint names, got {joints!r}')
        nominal = num('nominal_voltage_v', d.nominal_voltage_v, minimum=0.0)
        if nominal == 0.0 and pack is not None:
            nominal = float(pack.nominal_voltage_v)
        config = cls(
            mass_kg=num('mass_kg', d.mass_kg, exclusive_minimum=0.0),
            inertia_factor=num('inertia_factor', d.inertia_factor, minimum=1.0, maximum=2.0),
            rolling_resistance=num('rolling_resistance', d.rolling_resistance, minimum=0.0,
                                   maximum=1.0),
            drag_coefficient=num('drag_coefficient', d.drag_coefficient, minimum=0.0,
                                 maximum=5.0),
            frontal_area_m2=num('frontal_area_m2', d.frontal_area_m2, minimum=0.0,
                                maximum=100.0),
            air_density_kg_per_m3=num('air_density_kg_per_m3', d.air_density_kg_per_m3,
                                      minimum=0.0, maximum=2.0),
            gravity_m_per_s2=num('gravity_m_per_s2', d.gravity_m_per_s2, minimum=0.0,
                                 maximum=30.0),
            drivetrain_efficiency=num('drivetrain_efficiency', d.drivetrain_efficiency,
                                      exclusive_minimum=0.0, maximum=1.0),
            regen_efficiency=num('regen_efficiency', d.regen_efficiency, minimum=0.0,
                                 maximum=1.0),
            regen_power_max_w=num('regen_power_max_w', d.regen_power_max_w, minimum=0.0),
            traction_power_max_w=num('traction_power_max_w', d.traction_power_max_w,
                                     minimum=0.0),
            auxiliary_power_w=num('auxiliary_power_w', d.auxiliary_power_w, minimum=0.0),
            acceleration_filter_s=num('acceleration_filter_s', d.acceleration_filter_s,
                                      minimum=0.0, maximum=10.0),
            source=section.string('source', d.source, choices=SOURCES),
            wheel_joints=tuple(joints),
            publish_rate_hz=num('publish_rate_hz', d.publish_rate_hz, exclusive_minimum=0.0,
                                maximum=1000.0),
            input_timeout_s=num('input_timeout_s', d.input_timeout_s, exclusive_minimum=0.0),
            voltage_timeout_s=num('voltage_timeout_s', d.voltage_timeout_s,
                                  exclusive_minimum=0.0),
            nominal_voltage_v=nominal)
        if config.source == 'wheel_efforts' and not config.wheel_joints:
            raise section.error('wheel_joints', 'source wheel_efforts needs wheel joint names')
        if config.nominal_voltage_v <= 0.0:
            raise section.error('nominal_voltage_v', 'expected a number > 0 (no pack given)')
        return config


# ------------------------------------------------------------------------- pure physics

def attitude_from_quaternion(x: float, y: float, z: float, w: float) -> tuple[float, float]:
    """(roll, pitch) in rad of an orientation quaternion (ROS order x, y, z, w).

    Raises ValueError for a non-finite or zero-norm quaternion.
    """
    q = np.array([w, x, y, z], dtype=float)
    norm = float(np.linalg.norm(q))
    if not np.all(np.isfinite(q)) or norm < 1e-6:
        raise ValueError(f'invalid orientation quaternion {(x, y, z, w)}')
    roll, pitch, _ = quat2euler(q / norm, 'sxyz')
    return float(roll), float(pitch)


def grade_rad(pitch_rad: float) -> float:
    """Road grade (rad, + = uphill driving forward) from the ROS pitch (rad, + = nose down)."""
    return -float(pitch_rad)


def tractive_force_n(config: VehicleConfig, speed_m_per_s: float, acceleration_m_per_s2: float,
                     pitch_rad: float = 0.0, roll_rad: float = 0.0) -> float:
    """Force the wheels must apply along the body x axis (N, + = forward)."""
    c = config
    m = c.mass_kg
    g = c.gravity_m_per_s2
    v = float(speed_m_per_s)
    inertia = c.inertia_factor * m * float(acceleration_m_per_s2)
    climb = m * g * math.sin(grade_rad(pitch_rad))
    rolling = c.rolling_resistance * m * g * math.cos(pitch_rad) * math.cos(roll_rad) \
        * float(np.sign(v))
    drag = 0.5 * c.air_density_kg_per_m3 * c.drag_coefficient * c.frontal_area_m2 * v * abs(v)
    return inertia + climb + rolling + drag


def pack_power_w(config: VehicleConfig, wheel_power_w: float) -> float:
    """Electrical power into the pack (W, + = charging) for a wheel power (W, + = propelling)."""
    c = config
    p = float(wheel_power_w)
    if p >= 0.0:
        drawn = p / c.drivetrain_efficiency
        if c.traction_power_max_w > 0.0:
            drawn = min(drawn, c.traction_power_max_w)
        return -drawn - c.auxiliary_power_w
    recovered = min(-p * c.regen_efficiency, c.regen_power_max_w)
    return recovered - c.auxiliary_power_w


def pack_current_a(power_w: float, pack_voltage_v: float) -> float:
    """Pack current (A, + = charging) for a pack power (W, + = charging) at a voltage (V)."""
    if not pack_voltage_v > 0.0:
        raise ValueError(f'pack voltage must be > 0, got {pack_voltage_v}')
    return float(power_w) / float(pack_voltage_v)


# ------------------------------------------------------------------------- stateful estimator

@dataclass
class Demand:
    """One demand sample: the published current and how it was obtained."""

    pack_current_a: float        # + = charging
    pack_power_w: float          # + = charging
    wheel_power_w: float         # + = propelling
    speed_m_per_s: float
    acceleration_m_per_s2: float
    grade_rad: float
    pack_voltage_v: float        # the voltage used for the conversion
    source: str                  # 'motion', 'wheel_efforts' or 'stale' (auxiliary load only)
    voltage_measured: bool       # False: nominal voltage used


class VehicleLoad:
    """Tracks odometry, IMU, wheel joints and pack voltage; gives the demand at any time."""

    def __init__(self, config: VehicleConfig) -> None:
        self.config = config
        self.speed_m_per_s = 0.0
        self.acceleration_m_per_s2 = 0.0
        self.roll_rad = 0.0
        self.pitch_rad = 0.0
        self.odom_t_s: float | None = None
        self._odom_stamp_s: float | None = None
        self.imu_t_s: float | None = None
        self.wheel_t_s: float | None = None
        self.wheel_power_w = 0.0
        self.voltage_v: float | None = None
        self.voltage_t_s: float | None = None
        self.rejected = 0

    def update_odometry(self, t_s: float, speed_m_per_s: float,
                        stamp_s: float | None = None) -> bool:
        """Forward speed (m/s, body x) received at ``t_s``, measured at ``stamp_s`` (default t_s).

        Acceleration is the low-passed derivative over the measurement stamps (arrival times
        jitter); freshness is judged on ``t_s``, the clock demand() is asked on.
        """
        v = float(speed_m_per_s)
        stamp = t_s if stamp_s is None else stamp_s
        if not (math.isfinite(v) and math.isfinite(t_s) and math.isfinite(stamp)):
            return self._reject(f'non-finite odometry speed {v} at {stamp}')
        if self._odom_stamp_s is not None:
            dt = stamp - self._odom_stamp_s
            if dt <= 0.0:
                return self._reject(f'odometry stamp did not advance ({dt:.3f} s)')
            if dt > self.config.input_timeout_s:
                # after a gap the difference is no acceleration
                self.acceleration_m_per_s2 = 0.0
            else:
                raw = (v - self.speed_m_per_s) / dt
                tau = self.config.acceleration_filter_s
                alpha = dt / (tau + dt) if tau > 0.0 else 1.0
                self.acceleration_m_per_s2 += alpha * (raw - self.acceleration_m_per_s2)
        self.speed_m_per_s = v
        self.odom_t_s = t_s
        self._odom_stamp_s = stamp
        return True

    def update_imu(self, t_s: float, x: float, y: float, z: float, w: float) -> bool:
        """IMU orientation quaternion (x, y, z, w) at ``t_s``."""
        try:
            self.roll_rad, self.pitch_rad = attitude_from_quaternion(x, y, z, w)
        except ValueError as error:
            return self._reject(str(error))
        self.imu_t_s = t_s
        return True

    def update_joints(self, t_s: float, names: Sequence[str], velocities: Sequence[float],
                      efforts: Sequence[float]) -> bool:
        """sensor_msgs/JointState arrays; wheel power from the configured wheel joints."""
        wanted = self.config.wheel_joints
        if not wanted:
            return False
        if len(velocities) != len(names) or len(efforts) != len(names):
            return self._reject('joint_states without velocity and effort for every joint')
        index = {name: k for k, name in enumerate(names)}
        missing = [j for j in wanted if j not in index]
        if missing:
            return self._reject(f'joint_states lacks wheel joint {missing[0]!r}')
        k = [index[j] for j in wanted]
        power = np.asarray(efforts, dtype=float)[k] * np.asarray(velocities, dtype=float)[k]
        if not np.all(np.isfinite(power)):
            return self._reject('non-finite wheel effort or velocity')
        self.wheel_power_w = float(power.sum())
        self.wheel_t_s = t_s
        return True

    def update_voltage(self, t_s: float, voltage_v: float) -> bool:
        """Measured pack voltage (V) from battery_state; non-positive or NaN is ignored."""
        if not (math.isfinite(voltage_v) and voltage_v > 0.0):
            return self._reject(f'pack voltage {voltage_v} unusable')
        self.voltage_v = float(voltage_v)
        self.voltage_t_s = t_s
        return True

    def _reject(self, why: str) -> bool:
        self.rejected += 1
        log.debug('input rejected: %s', why)
        return False

    def _fresh(self, t_input: float | None, now_s: float, timeout_s: float) -> bool:
        return t_input is not None and now_s - t_input <= timeout_s

    def demand(self, now_s: float) -> Demand:
        """The demand at ``now_s`` (same clock as the updates)."""
        c = self.config
        wheels_fresh = self._fresh(self.wheel_t_s, now_s, c.input_timeout_s)
        motion_fresh = self._fresh(self.odom_t_s, now_s, c.input_timeout_s)
        if c.source != 'motion' and wheels_fresh:
            source, wheel_w = 'wheel_efforts', self.wheel_power_w
        elif c.source != 'wheel_efforts' and motion_fresh:
            force = tractive_force_n(c, self.speed_m_per_s, self.acceleration_m_per_s2,
                                     self.pitch_rad, self.roll_rad)
            source, wheel_w = 'motion', force * self.speed_m_per_s
        else:
            source, wheel_w = 'stale', 0.0   # motion unknown: auxiliary load only
        power = pack_power_w(c, wheel_w)
        measured = self._fresh(self.voltage_t_s, now_s, c.voltage_timeout_s)
        # (voltage_v is set with voltage_t_s: measured means it is a number)
        voltage = self.voltage_v if measured and self.voltage_v is not None \
            else c.nominal_voltage_v
        return Demand(pack_current_a=pack_current_a(power, voltage), pack_power_w=power,
                      wheel_power_w=wheel_w, speed_m_per_s=self.speed_m_per_s,
                      acceleration_m_per_s2=self.acceleration_m_per_s2,
                      grade_rad=grade_rad(self.pitch_rad), pack_voltage_v=voltage,
                      source=source, voltage_measured=measured)
