"""Generate config/load_profiles/ece15_urban_c_rate.csv: a synthetic urban drive cycle in C-rate.

Method: the speed trace of the ECE-15 urban driving cycle (UN ECE Regulation 83, the urban
part of the NEDC: 195 s, four stops, peaks of 15, 32 and 50 km/h; breakpoints below, gear
changes held at constant speed) drives a longitudinal road-load model of a small electric
vehicle. Battery power = traction power / drivetrain efficiency when driving, x regenerative
efficiency when braking, plus an auxiliary load. The current is then normalised so the peak
discharge is exactly 1 C: a profile's `scale` is then the peak C-rate. + = charging (regen).

    .venv/bin/python bench/validation/make_drive_cycle.py
"""
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', '..', 'config', 'load_profiles', 'ece15_urban_c_rate.csv')

# (t_s, speed_km_h) breakpoints of the ECE-15 elementary urban cycle, linear in between
ECE15 = [(0, 0), (11, 0), (15, 15), (23, 15), (28, 0), (49, 0), (54, 15), (56, 15), (61, 32),
         (85, 32), (96, 0), (117, 0), (122, 15), (124, 15), (133, 35), (135, 35), (143, 50),
         (155, 50), (163, 35), (176, 35), (188, 0), (195, 0)]

MASS_KG = 1600.0              # small EV with driver
ROLLING_RESISTANCE = 0.010
DRAG_AREA_M2 = 0.65           # Cd * A
AIR_DENSITY_KG_M3 = 1.2
GRAVITY_M_S2 = 9.81
DRIVE_EFFICIENCY = 0.90       # battery to wheel
REGEN_EFFICIENCY = 0.65       # wheel to battery when braking
AUX_POWER_W = 300.0


def battery_power_w(t_s):
    """Battery power (W, + = delivered by the battery) at the sample times."""
    times = np.array([p[0] for p in ECE15], dtype=float)
    speeds = np.array([p[1] for p in ECE15], dtype=float) / 3.6
    v = np.interp(t_s, times, speeds)
    # acceleration of the segment that starts at or before each sample
    seg = np.clip(np.searchsorted(times, t_s, side='right') - 1, 0, len(times) - 2)
    a = (speeds[seg + 1] - speeds[seg]) / (times[seg + 1] - times[seg])
    force_n = MASS_KG * a + 0.5 * AIR_DENSITY_KG_M3 * DRAG_AREA_M2 * v ** 2 \
        + np.where(v > 0, MASS_KG * GRAVITY_M_S2 * ROLLING_RESISTANCE, 0.0)
    wheel_w = force_n * v
    return np.where(wheel_w > 0, wheel_w / DRIVE_EFFICIENCY, wheel_w * REGEN_EFFICIENCY) \
        + AUX_POWER_W


def main():
    t_s = np.arange(0, 196, 1.0)
    power_w = battery_power_w(t_s)
    c_rate = -power_w / power_w.max()          # + = charging; peak discharge -1 C
    distance_m = np.trapezoid(np.interp(t_s, [p[0] for p in ECE15],
                                        [p[1] / 3.6 for p in ECE15]), t_s)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w', encoding='utf-8') as stream:
        stream.write(
            '# Synthetic urban drive cycle: ECE-15 speed trace (UN ECE R83 urban cycle, 195 s, '
            f'{distance_m:.0f} m) through a road-load model of a {MASS_KG:.0f} kg EV '
            f'(Crr {ROLLING_RESISTANCE}, CdA {DRAG_AREA_M2} m2, drive eff. {DRIVE_EFFICIENCY}, '
            f'regen eff. {REGEN_EFFICIENCY}, aux {AUX_POWER_W:.0f} W).\n'
            '# Current in C-rate (multiples of the pack capacity), + = charging (regen), '
            'normalised to a peak discharge of 1 C; made by bench/validation/make_drive_cycle.py\n'
            f'# mean {c_rate.mean():+.4f} C, peak charge {c_rate.max():+.3f} C\n')
        stream.write('t_s,c_rate\n')
        for t, c in zip(t_s, c_rate):
            stream.write(f'{t:.0f},{c:.4f}\n')
    print(f'wrote {OUT}: {len(t_s)} rows, distance {distance_m:.0f} m, '
          f'mean {c_rate.mean():+.4f} C, max charge {c_rate.max():+.3f} C')


if __name__ == '__main__':
    main()
