"""Power-aware motion limits: the pack's current limits as a speed and acceleration limit.

Through the vehicle model of bms_ros.core.vehicle_load (the gazebo: section):

    P_dis = I_dis V_load,  V_load = V - (I_dis + I) R_pack     (I + = charging; W >= 0)
    wheel power available   P_w = (min(P_dis, traction max) - P_aux) eta_drive
    max speed v*:  F_res(v*) v* = P_w   (rolling + climb on the design grade + drag)
    max acceleration at v:  (P_w / v - F_res(v)) / (k m), within the vehicle's own limit
    regen: the drive may return P_rec = min(I_chg V + P_aux, regen_power_max_w) / eta_regen
    max braking by the motors alone at v: (P_rec / v + F_res(v)) / (k m)

:class:`SpeedLimiter` rate-limits the published speed limit and :class:`CmdFilter` keeps a
velocity command inside the limits with a bounded acceleration, so a cold or nearly empty pack
slows the robot down smoothly instead of tripping.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..vehicle_load import VehicleConfig, tractive_force_n
from .config import MotionLimitsConfig


@dataclass
class MotionLimits:
    """The MotionLimits message fields (m/s, m/s^2, W)."""

    max_speed_m_per_s: float
    max_acceleration_m_per_s2: float
    max_deceleration_m_per_s2: float
    discharge_power_limit_w: float
    regen_power_limit_w: float
    speed_m_per_s: float
    limited: bool
    reason: str


def resistive_force_n(vehicle: VehicleConfig, speed_m_per_s: float, grade_rad: float) -> float:
    """Force (N, >= 0 forward) against steady driving at a speed up a grade (rad)."""
    return tractive_force_n(vehicle, abs(speed_m_per_s), 0.0, pitch_rad=-grade_rad)


def power_limits_w(discharge_limit_a: float, charge_limit_a: float, voltage_v: float,
                   current_a: float, r_pack_ohm: float) -> tuple[float, float]:
    """(discharge, regen) pack power limits (W, >= 0) at the current limits."""
    if not (math.isfinite(voltage_v) and voltage_v > 0.0):
        return 0.0, 0.0
    i_now = current_a if math.isfinite(current_a) else 0.0
    r = max(r_pack_ohm, 0.0) if math.isfinite(r_pack_ohm) else 0.0
    v_dis = max(voltage_v - (discharge_limit_a + i_now) * r, 0.0)
    v_chg = voltage_v + (charge_limit_a - i_now) * r
    return max(discharge_limit_a, 0.0) * v_dis, max(charge_limit_a, 0.0) * v_chg


def motion_limits(vehicle: VehicleConfig, config: MotionLimitsConfig, discharge_power_w: float,
                  regen_power_w: float, speed_m_per_s: float) -> MotionLimits:
    """MotionLimits for pack power limits (W) at the present speed (m/s)."""
    c = vehicle
    grade = config.design_grade_rad
    drawn = discharge_power_w
    if c.traction_power_max_w > 0.0:
        drawn = min(drawn, c.traction_power_max_w)
    wheel_w = max(drawn - c.auxiliary_power_w, 0.0) * c.drivetrain_efficiency
    v_cap = config.max_speed_m_per_s
    # steady power rises with speed: bisection for F_res(v) v = P_w
    if resistive_force_n(c, v_cap, grade) * v_cap <= wheel_w:
        v_max = v_cap
    else:
        lo, hi = 0.0, v_cap
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            if resistive_force_n(c, mid, grade) * mid <= wheel_w:
                lo = mid
            else:
                hi = mid
        v_max = lo
    v = abs(speed_m_per_s) if math.isfinite(speed_m_per_s) else 0.0
    mass = c.inertia_factor * c.mass_kg
    a_cap = config.max_acceleration_m_per_s2
    v_eff = max(v, 0.05)
    a_max = (wheel_w / v_eff - resistive_force_n(c, v_eff, grade)) / mass
    a_max = min(max(a_max, 0.0), a_cap)
    d_cap = config.max_deceleration_m_per_s2
    if config.friction_brakes:
        d_max = d_cap
    else:
        recoverable = min(regen_power_w + c.auxiliary_power_w, c.regen_power_max_w)
        wheel_regen = recoverable / c.regen_efficiency if c.regen_efficiency > 0 else 0.0
        d_max = (wheel_regen / v_eff + resistive_force_n(c, v_eff, 0.0)) / mass
        d_max = min(max(d_max, 0.0), d_cap)
    limited = v_max < v_cap - 1e-6
    reason = 'discharge' if limited else ('regen' if d_max < d_cap - 1e-6 else 'none')
    return MotionLimits(v_max, a_max, d_max, discharge_power_w, regen_power_w, v, limited,
                        reason)


class SpeedLimiter:
    """The published speed limit follows the target at most ``rate`` m/s per s (both ways),
    never below ``floor`` m/s.
    """

    def __init__(self, rate_m_per_s2: float, floor_m_per_s: float,
                 initial_m_per_s: float) -> None:
        self.rate = rate_m_per_s2
        self.floor = floor_m_per_s
        self.value = initial_m_per_s
        self.t_s: float | None = None

    def update(self, t_s: float, target_m_per_s: float) -> float:
        """The speed limit (m/s) at ``t_s`` (s) for the target ``target_m_per_s``."""
        target = max(target_m_per_s, self.floor)
        if self.t_s is None:
            self.value = min(self.value, target)
        else:
            step = self.rate * max(t_s - self.t_s, 0.0)
            self.value += max(-step, min(step, target - self.value))
        self.t_s = t_s
        return self.value


class CmdFilter:
    """A velocity command (linear m/s, angular rad/s) kept inside the limits, smoothly."""

    def __init__(self, config: MotionLimitsConfig) -> None:
        self.config = config
        self.v_out = 0.0
        self.t_s: float | None = None

    def filter(self, t_s: float, linear_m_per_s: float, angular_rad_per_s: float,
               limits: MotionLimits | None) -> tuple[float, float]:
        """(linear, angular) to send; ``limits`` a MotionLimits (None: min speed, vehicle
        limits).
        """
        cfg = self.config
        if self.t_s is None or t_s - self.t_s > cfg.cmd_timeout_s or t_s < self.t_s:
            dt = 0.0
            self.v_out = 0.0 if self.t_s is None or t_s - self.t_s > cfg.cmd_timeout_s \
                else self.v_out
        else:
            dt = t_s - self.t_s
        self.t_s = t_s
        v_lim = cfg.min_speed_m_per_s if limits is None else limits.max_speed_m_per_s
        a_lim = cfg.max_acceleration_m_per_s2 if limits is None else \
            max(limits.max_acceleration_m_per_s2, 0.05)
        d_lim = cfg.max_deceleration_m_per_s2
        if cfg.limit_deceleration and limits is not None:
            d_lim = max(limits.max_deceleration_m_per_s2, 0.05)
        v_cmd = linear_m_per_s if math.isfinite(linear_m_per_s) else 0.0
        target = max(-v_lim, min(v_lim, v_cmd))
        speeding_up = abs(target) > abs(self.v_out) and target * self.v_out >= 0.0
        step = (a_lim if speeding_up else d_lim) * dt
        self.v_out += max(-step, min(step, target - self.v_out))
        # turning draws power too: scale the turn rate with the speed limit
        scale = min(1.0, v_lim / cfg.max_speed_m_per_s)
        w = angular_rad_per_s if math.isfinite(angular_rad_per_s) else 0.0
        return self.v_out, w * scale
