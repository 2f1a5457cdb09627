"""The validated ``energy:`` and ``motion_limits:`` sections of a profile."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import Section

ENERGY_FIELDS = (
    'soc_floor', 'soc_ceiling', 'cutoff_voltage_v', 'cv_voltage_v', 'charger_current_a',
    'termination_current_c', 'idle_current_a', 'load_filter_s', 'profile_window_s',
    'profile_block_s', 'band_sigma', 'soc_std', 'capacity_std_rel', 'reserve_fraction',
    'charger_present_timeout_s', 'docking_current_a', 'integration_steps')

MOTION_FIELDS = (
    'max_speed_m_per_s', 'max_acceleration_m_per_s2', 'max_deceleration_m_per_s2',
    'design_grade_rad', 'friction_brakes', 'limit_deceleration', 'limit_horizon', 'rate_hz',
    'speed_limit_rate_m_per_s2', 'estimate_timeout_s', 'filter_cmd_vel', 'stamped',
    'cmd_timeout_s', 'min_speed_m_per_s')


@dataclass(frozen=True)
class EnergyConfig:
    """State of energy, run-time prediction, missions and the charger input (energy: section)."""

    # 0..1: empty (weakest cell) for the energy and time to empty
    soc_floor: float = 0.0
    soc_ceiling: float = 1.0                # 0..1: full (strongest cell) for time to full
    # cell V under load that ends a discharge; 0 = cell voltage_min_v
    cutoff_voltage_v: float = 0.0
    cv_voltage_v: float = 0.0               # cell V where CC turns to CV; 0 = cell voltage_max_v
    # charger's CC current (A); 0 = the measured charge current, else the charge limit
    charger_current_a: float = 0.0
    termination_current_c: float = 0.05     # CV ends below this (fraction of 1 C)
    idle_current_a: float = 0.5             # |I| below: neither discharging nor charging
    load_filter_s: float = 30.0             # low-pass of the pack power (the "present load")
    profile_window_s: float = 1800.0        # learnt load profile: the last this many s
    profile_block_s: float = 60.0           # ... in blocks of this length
    band_sigma: float = 2.0                 # band half-width in standard deviations
    soc_std: float = 0.02                   # SoC doubt when the estimator gives none
    capacity_std_rel: float = 0.02          # capacity doubt, relative
    reserve_fraction: float = 0.10          # missions keep this fraction of energy_full_wh back
    charger_present_timeout_s: float = 5.0  # a charger_present message older than this: unknown
    # > 0: also publish dock_battery_state (docs/robot_energy.md)
    docking_current_a: float = 0.0
    # resolution of a discharge's end (coarse x refined charge steps)
    integration_steps: int = 200

    @classmethod
    def from_section(cls, section: Section) -> EnergyConfig:
        """Validate an ``energy:`` Section; ConfigError names the file and field."""
        section.reject_unknown(ENERGY_FIELDS)
        d = cls()
        num = section.number
        c = cls(
            soc_floor=num('soc_floor', d.soc_floor, minimum=0.0, maximum=0.5),
            soc_ceiling=num('soc_ceiling', d.soc_ceiling, minimum=0.5, maximum=1.0),
            cutoff_voltage_v=num('cutoff_voltage_v', d.cutoff_voltage_v, minimum=0.0, maximum=10.0),
            cv_voltage_v=num('cv_voltage_v', d.cv_voltage_v, minimum=0.0, maximum=10.0),
            charger_current_a=num('charger_current_a', d.charger_current_a, minimum=0.0),
            termination_current_c=num('termination_current_c', d.termination_current_c,
                                      exclusive_minimum=0.0, maximum=1.0),
            idle_current_a=num('idle_current_a', d.idle_current_a, minimum=0.0),
            load_filter_s=num('load_filter_s', d.load_filter_s, minimum=0.0, maximum=3600.0),
            profile_window_s=num('profile_window_s', d.profile_window_s, minimum=60.0,
                                 maximum=86400.0),
            profile_block_s=num('profile_block_s', d.profile_block_s, minimum=1.0,
                                maximum=3600.0),
            band_sigma=num('band_sigma', d.band_sigma, minimum=0.0, maximum=5.0),
            soc_std=num('soc_std', d.soc_std, minimum=0.0, maximum=0.5),
            capacity_std_rel=num('capacity_std_rel', d.capacity_std_rel, minimum=0.0, maximum=0.5),
            reserve_fraction=num('reserve_fraction', d.reserve_fraction, minimum=0.0, maximum=0.9),
            charger_present_timeout_s=num('charger_present_timeout_s',
                                          d.charger_present_timeout_s, exclusive_minimum=0.0),
            docking_current_a=num('docking_current_a', d.docking_current_a, minimum=0.0,
                                  maximum=100.0),
            integration_steps=section.integer('integration_steps', d.integration_steps,
                                              minimum=20, maximum=5000))
        if c.soc_floor >= c.soc_ceiling:
            raise section.error('soc_floor', f'must be below soc_ceiling ({c.soc_ceiling})')
        if c.profile_block_s * 2 > c.profile_window_s:
            raise section.error('profile_block_s', 'expected at most half of profile_window_s')
        return c


@dataclass(frozen=True)
class MotionLimitsConfig:
    """The motion_limits node (motion_limits: section): vehicle limits and the cmd_vel filter."""

    max_speed_m_per_s: float = 1.5          # the vehicle's own limits (never exceeded)
    max_acceleration_m_per_s2: float = 1.0
    max_deceleration_m_per_s2: float = 2.0
    design_grade_rad: float = 0.0           # the speed limit holds on this slope
    friction_brakes: bool = True            # True: braking does not depend on regeneration
    limit_deceleration: bool = False        # True: the filter also limits braking to regen limit
    limit_horizon: str = 'long'             # 'short' | 'long': which current limits of the estimate
    rate_hz: float = 10.0                   # motion_limits publishing rate
    speed_limit_rate_m_per_s2: float = 0.2  # the published speed limit falls at most this fast
    estimate_timeout_s: float = 3.0         # older estimate: no estimate (min_speed only)
    filter_cmd_vel: bool = False            # subscribe cmd_vel_in, publish cmd_vel_out
    stamped: bool = False                   # geometry_msgs TwistStamped instead of Twist
    cmd_timeout_s: float = 0.5              # no command this long: the filter's state resets to 0
    min_speed_m_per_s: float = 0.2          # never limit below this (to reach the dock); 0 = stop

    @classmethod
    def from_section(cls, section: Section) -> MotionLimitsConfig:
        """Validate a ``motion_limits:`` Section; ConfigError names the file and field."""
        section.reject_unknown(MOTION_FIELDS)
        d = cls()
        num = section.number
        c = cls(
            max_speed_m_per_s=num('max_speed_m_per_s', d.max_speed_m_per_s, exclusive_minimum=0.0,
                                  maximum=100.0),
            max_acceleration_m_per_s2=num('max_acceleration_m_per_s2',
                                          d.max_acceleration_m_per_s2, exclusive_minimum=0.0,
                                          maximum=50.0),
            max_deceleration_m_per_s2=num('max_deceleration_m_per_s2',
                                          d.max_deceleration_m_per_s2, exclusive_minimum=0.0,
                                          maximum=50.0),
            design_grade_rad=num('design_grade_rad', d.design_grade_rad, minimum=0.0,
                                 maximum=0.6),
            friction_brakes=section.boolean('friction_brakes', d.friction_brakes),
            limit_deceleration=section.boolean('limit_deceleration', d.limit_deceleration),
            limit_horizon=section.string('limit_horizon', d.limit_horizon,
                                         choices=('short', 'long')),
            rate_hz=num('rate_hz', d.rate_hz, exclusive_minimum=0.0, maximum=200.0),
            speed_limit_rate_m_per_s2=num('speed_limit_rate_m_per_s2',
                                          d.speed_limit_rate_m_per_s2, exclusive_minimum=0.0),
            estimate_timeout_s=num('estimate_timeout_s', d.estimate_timeout_s,
                                   exclusive_minimum=0.0),
            filter_cmd_vel=section.boolean('filter_cmd_vel', d.filter_cmd_vel),
            stamped=section.boolean('stamped', d.stamped),
            cmd_timeout_s=num('cmd_timeout_s', d.cmd_timeout_s, exclusive_minimum=0.0),
            min_speed_m_per_s=num('min_speed_m_per_s', d.min_speed_m_per_s, minimum=0.0))
        if c.min_speed_m_per_s > c.max_speed_m_per_s:
            raise section.error('min_speed_m_per_s',
                                f'must not exceed max_speed_m_per_s ({c.max_speed_m_per_s})')
        return c
