"""Generate the OCV hysteresis cases (test/fixtures/pybamm/hysteresis/, hysteresis.json).

Runs in the validation venv, as make_matrix.py:

    .venv-validation/bin/python bench/validation/make_hysteresis.py

Prada2013 (A123 ANR26650, LFP/graphite) has no OCV hysteresis, and neither has any case of the
matrix. Every LFP cell has it: after a charge it rests at a higher OCV than after a discharge
at the same SoC. Here the positive electrode gets PyBaMM's hysteresis models, with its OCP
moved by +-M between a delithiation (charge) and a lithiation (discharge) branch:

* ``one-state hysteresis`` (Axen 2022): the state h follows the stoichiometry change at a
  decay rate gamma (dh/dsto = gamma (1 -+ h) / 2), in one case the same both ways, in the
  other 2.7x faster on delithiation (charge) than on lithiation and varying along the
  stoichiometry (x 0.5 at the window's middle to x 1.5 at its ends) -- shapes the estimator's
  model (Plett's, one fixed rate per unit SoC) does not have. (PyBaMM's Wycisk model, whose rate
  follows the differential capacity, fails at t = 0 on this cathode: its dQ/dU is negative.)

Half gaps M of 7-15 mV (15-30 mV between the branches, the LFP/graphite range), rates and
temperatures differ per case, and none is the cell file's (lfp_a123_anr26650_hysteresis.yaml:
12 mV, 15 per unit SoC). Profiles, each with rests of 30-60 min on the plateau after charges
and after discharges (where a BMS reads its OCV anchors):

* ``cycles``: from 100 % at rest (h = +1), drive 35 %, 60 min rest, CC 0.5 C 20 %, 60 min,
  drive 40 %, 60 min, CC 25 %, 60 min, drive 30 %, 60 min, CC-CV to C/20, 30 min;
* ``mission``: from 60 % at rest after a discharge (h = -1), 2 h robot mission, 30 min rest,
  CC 0.3 C for 1 h, 45 min, 1.5 h mission, 45 min, CC-CV 0.5 C to C/20, 20 min.

Split: three cases in the tuning half, three in the test half (never tuned on; the first test
half's asymmetric-rate case, once scored, went to the tuning half and two new ones took its
place). Truth and sensor model as make_matrix.py ('Bulk open-circuit voltage [V]' includes
the hysteresis here).
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import make_matrix as mm  # noqa: E402
import robot_mission  # noqa: E402
from validate_estimator import add_noise  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
OUT_DIR = os.path.join(REPO, 'test', 'fixtures', 'pybamm', 'hysteresis')
MANIFEST = os.path.join(REPO, 'test', 'fixtures', 'pybamm', 'hysteresis.json')
CELL = 'lfp_a123_anr26650'
CELL_YAML = 'config/cells/lfp_a123_anr26650_hysteresis.yaml'
AXEN = 'one-state hysteresis'

CASES = [
    # name, half, M (V), gamma lithiation / delithiation (per unit stoichiometry), varying
    # along the stoichiometry, degC, profile, seed
    ('lfp_hysteresis_cycles_25c', 'tuning', 0.010, (30.0, 30.0), False, 25.0, 'cycles', 1),
    ('lfp_hysteresis_mission_45c', 'tuning', 0.008, (40.0, 40.0), False, 45.0, 'mission', 2),
    ('lfp_hysteresis_cycles_10c', 'test', 0.015, (20.0, 20.0), False, 10.0, 'cycles', 3),
    # in the test half at first; scored once there (4.36 / 14.13 %), it showed a rate unlike the
    # model's, and moved to the tuning half with the two test cases below made in its place
    ('lfp_hysteresis_mission_25c', 'tuning', 0.007, (15.0, 40.0), True, 25.0, 'mission', 4),
    ('lfp_hysteresis_cycles_45c', 'test', 0.009, (50.0, 20.0), True, 45.0, 'cycles', 5),
    ('lfp_hysteresis_mission_10c', 'test', 0.013, (25.0, 25.0), True, 10.0, 'mission', 6),
]


def hysteresis_params(half_gap_v, gammas, varying, h0):
    params = mm.parameter_values(CELL)
    u = params['Positive electrode OCP [V]']
    _, _, y0, y100, _ = mm.windows(params)
    middle, half = 0.5 * (y0 + y100), 0.5 * abs(y0 - y100)

    def rate(gamma):
        if not varying:
            return lambda sto, T: gamma
        return lambda sto, T: gamma * (0.5 + abs(sto - middle) / half)

    params.update({
        'Positive electrode lithiation OCP [V]': lambda sto: u(sto) - half_gap_v,
        'Positive electrode delithiation OCP [V]': lambda sto: u(sto) + half_gap_v,
        'Positive particle lithiation hysteresis decay rate': rate(gammas[0]),
        'Positive particle delithiation hysteresis decay rate': rate(gammas[1]),
        'Positive particle hysteresis switching factor': 1.0,
        'Initial hysteresis state in positive electrode': h0,
    }, check_already_exists=False)
    return params


def profile_steps(profile, q_true, capacity_ah, seed, v_min, v_max, low, high, dmax, cmax):
    p = f'({mm.SLOW_DT_S:.0f} second period)'
    stop = f'< {v_min} V'

    def drive(depth, s):
        n = int(depth * 3600.0 / mm.MEAN_DISCHARGE_C / mm.LOAD_DT_S) + 1
        load = mm.drive_current(q_true, s, dmax, cmax, repeats=1)[:n]
        return mm.data_step(mm.exact_discharge(load, depth * q_true, low, high), stop)

    def charge(depth, c_rate):
        return f'Charge at {c_rate * q_true:.5f} A for {depth * 3600 / c_rate:.0f} seconds {p}'

    def mission(hours, s):
        load = robot_mission.current_profile(capacity_ah, s, hours * 3600.0, mm.LOAD_DT_S,
                                             dmax, cmax)
        return mm.data_step(load, stop)

    if profile == 'cycles':
        return 1.0, 1.0, [drive(0.35, seed), mm.rest(60), charge(0.20, 0.5), mm.rest(60),
                          drive(0.40, seed + 1), mm.rest(60), charge(0.25, 0.5), mm.rest(60),
                          drive(0.30, seed + 2), mm.rest(60), *mm.cccv(capacity_ah, v_max),
                          mm.rest(30)]
    return 0.6, -1.0, [mission(2.0, seed), mm.rest(30), charge(0.30, 0.3), mm.rest(45),
                       mission(1.5, seed + 1), mm.rest(45), *mm.cccv(capacity_ah, v_max),
                       mm.rest(20)]


def simulate(name, half_gap_v, gammas, varying, temperature_degc, profile, seed):
    import pybamm
    base = mm.parameter_values(CELL)
    x0, x100, _, _, q_true = mm.windows(base)
    capacity_ah = mm.cell_file_capacity_ah(base, q_true)
    dmax, cmax = mm.cell_limits(CELL, capacity_ah)
    v_min = float(base['Lower voltage cut-off [V]'])
    v_max = float(base['Upper voltage cut-off [V]'])
    low, high = -min(mm.MAX_DISCHARGE_C * capacity_ah, dmax), \
        min(mm.MAX_REGEN_C * capacity_ah, cmax)
    initial, h0, steps = profile_steps(profile, q_true, capacity_ah, 1000 + seed, v_min, v_max,
                                       low, high, dmax, cmax)
    params = hysteresis_params(half_gap_v, gammas, varying, h0)
    params['Ambient temperature [K]'] = temperature_degc + 273.15
    params['Initial temperature [K]'] = temperature_degc + 273.15
    params['Upper voltage cut-off [V]'] = v_max + 0.3
    params['Lower voltage cut-off [V]'] = v_min - 0.3
    dfn = pybamm.lithium_ion.DFN(options={'open-circuit potential': ('single', AXEN)})
    start = time.monotonic()
    solution = pybamm.Simulation(dfn, parameter_values=params,
                                 experiment=pybamm.Experiment(steps),
                                 solver=pybamm.IDAKLUSolver()).solve(initial_soc=initial)
    elapsed = time.monotonic() - start
    t_s, keep = mm.recorded_times(solution)
    x = solution['Average negative particle stoichiometry'].entries[keep]
    h = solution['X-averaged positive electrode hysteresis state'].entries[keep]
    data = {'t_s': t_s[keep], 'current_a': -solution['Current [A]'].entries[keep],
            'voltage_v': solution['Voltage [V]'].entries[keep],
            'temperature_c': np.full(int(keep.sum()), temperature_degc),
            'soc_true': (x - x0) / (x100 - x0),
            'ocv_true_v': solution['Bulk open-circuit voltage [V]'].entries[keep]}
    info = {'model': f'DFN, positive electrode: {AXEN}', 'half_gap_v': half_gap_v,
            'gamma_lithiation': gammas[0], 'gamma_delithiation': gammas[1],
            'gamma_varies_with_stoichiometry': varying,
            'initial_h': h0, 'h_min': float(h.min()), 'h_max': float(h.max()),
            'cpu_s': round(elapsed, 1), 'capacity_true_ah': q_true,
            'capacity_file_ah': capacity_ah, 'soc_start': float(data['soc_true'][0]),
            'soc_min': float(data['soc_true'].min()), 'samples': int(keep.sum()),
            'seed': seed}
    print(f'{name}: {elapsed:.1f} s, h {h.min():+.2f}..{h.max():+.2f}, '
          f'SoC {data["soc_true"].min():.3f}..{data["soc_true"].max():.3f}', flush=True)
    return data, info


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    cases = []
    for name, half, half_gap_v, gammas, varying, temperature_degc, profile, seed in CASES:
        data, info = simulate(name, half_gap_v, gammas, varying, temperature_degc, profile,
                              seed)
        file = f'hysteresis/{name}.csv.gz'
        mm.write_csv_gz(os.path.join(REPO, 'test', 'fixtures', 'pybamm', file),
                        add_noise(data, info['capacity_file_ah'], 7000 + seed))
        cases.append({'name': name, 'half': half, 'kind': f'hysteresis_{profile}',
                      'cell': CELL, 'parameter_set': 'Prada2013',
                      'temperature_degc': temperature_degc, 'file': file,
                      'cell_yaml': CELL_YAML, 'args': [], 'first_row': 0,
                      'current_offset_a': 0.0, 'capacity_true_ah': info['capacity_true_ah'],
                      'count_after_s': 120.0, 'capacity_goal': False, 'simulation': info})
    with open(MANIFEST, 'w') as stream:
        json.dump({'source': 'bench/validation/make_hysteresis.py', 'cases': cases}, stream,
                  indent=1, sort_keys=True)
        stream.write('\n')


if __name__ == '__main__':
    main()
