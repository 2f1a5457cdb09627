"""Synthetic drive-cycle current profiles for the estimator validation (numpy only).

The published US06 and UDDS schedules are not redistributed here; instead a seeded generator
builds speed traces with their character out of "micro-trips" (accelerate, cruise, brake, idle):

* ``udds``: urban, 25-90 km/h peaks, 0.6-1.4 m/s^2, idle 5-40 s, ~1370 s long;
* ``us06``: aggressive, 60-130 km/h peaks, 1.5-3.0 m/s^2, short idles, ~600 s long;
* ``hwy``: highway, 80-110 km/h with slow speed changes, ~765 s long.

Road-load power of a mid-size car (1800 kg, CdA 0.65 m^2, Crr 0.010, drivetrain efficiency
0.90, regeneration efficiency 0.65 capped at 40 % of the peak traction power) is converted to a
cell current proportional to battery power, scaled so the peak discharge of the whole schedule is
``peak_discharge_c`` times the cell capacity. Current sign: + = charging (regeneration).
"""
import numpy as np

MASS_KG = 1800.0
CDA_M2 = 0.65
CRR = 0.010
RHO_KG_M3 = 1.2
G_M_S2 = 9.81
ETA_DRIVE = 0.90
ETA_REGEN = 0.65
REGEN_CAP = 0.40

KINDS = {
    #        peak km/h     accel m/s2   cruise s     decel m/s2   idle s     length s
    'udds': ((25, 90), (0.6, 1.4), (10, 120), (0.8, 1.5), (5, 40), 1370),
    'us06': ((60, 130), (1.5, 3.0), (30, 200), (1.5, 3.0), (0, 15), 600),
    'hwy': ((80, 110), (0.3, 0.8), (150, 400), (0.3, 0.8), (0, 5), 765),
}


def speed_trace(kind, rng, dt_s=1.0):
    """Speed in m/s sampled every ``dt_s`` for one schedule of ``kind``."""
    peak, accel, cruise, decel, idle, length_s = KINDS[kind]
    speeds = []
    while len(speeds) * dt_s < length_s:
        v_top = rng.uniform(*peak) / 3.6
        a_up = rng.uniform(*accel)
        a_down = rng.uniform(*decel)
        n_up = max(1, int(v_top / a_up / dt_s))
        n_cruise = int(rng.uniform(*cruise) / dt_s)
        n_down = max(1, int(v_top / a_down / dt_s))
        n_idle = int(rng.uniform(*idle) / dt_s)
        # cruise is not flat: a slow random wobble of +-8 % of the speed
        wobble = 1.0 + 0.08 * np.sin(np.linspace(0, rng.uniform(1, 4) * np.pi, max(n_cruise, 1)))
        speeds.extend(np.linspace(0, v_top, n_up, endpoint=False))
        speeds.extend(v_top * wobble[:n_cruise])
        speeds.extend(np.linspace(v_top, 0, n_down, endpoint=False))
        speeds.extend([0.0] * n_idle)
    return np.asarray(speeds[:int(length_s / dt_s)])


def battery_power_w(speed_m_s, dt_s):
    """Battery power in W (+ = discharging) for a speed trace."""
    accel = np.gradient(speed_m_s, dt_s)
    force = MASS_KG * accel + 0.5 * RHO_KG_M3 * CDA_M2 * speed_m_s ** 2 \
        + CRR * MASS_KG * G_M_S2 * (speed_m_s > 0.1)
    wheel = force * speed_m_s
    battery = np.where(wheel > 0, wheel / ETA_DRIVE, wheel * ETA_REGEN)
    return battery


def current_profile(pattern, capacity_ah, peak_discharge_c, seed=0, dt_s=2.0):
    """Cell current in A (+ = charging) every ``dt_s`` for the schedules named in ``pattern``."""
    rng = np.random.default_rng(seed)
    power = np.concatenate([battery_power_w(speed_trace(kind, rng, dt_s), dt_s)
                            for kind in pattern])
    peak = power.max()
    power = np.maximum(power, -REGEN_CAP * peak)
    return -power / peak * peak_discharge_c * capacity_ah
