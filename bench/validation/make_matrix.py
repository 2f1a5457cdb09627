"""Generate the estimator validation matrix (test/fixtures/pybamm/matrix/, matrix.json).

Runs in the validation venv (PyBaMM pinned in bench/validation/requirements.txt; not a runtime
dependency of bms_ros):

    .venv-validation/bin/python bench/validation/make_matrix.py cells      # cell files
    .venv-validation/bin/python bench/validation/make_matrix.py simulate [--only SIM ...]
    .venv-validation/bin/python bench/validation/make_matrix.py manifest

(``make validate`` does all three, then scores with bench/estimation_matrix.py.)

* Parameter sets (SETS): Chen2020 (LG M50, NMC811/graphite-SiOx), Prada2013 (A123 ANR26650,
  LFP/graphite), Mohtat2020 (5 Ah pouch, NMC532/graphite), NCA_Kim2011 (NCA/graphite pouch).
  The last two get cell files config/cells/<name>.yaml and OCV tables config/ocv/<name>.csv
  (``cells``): OCV = U_p(y) - U_n(x) over the electrode SoH solver's stoichiometry windows
  (make_ocv_tables.py), ECM guesses from a datasheet-level 1 C, 30 s pulse at 50 % SoC and
  25 degC (R0 = the 2 s step resistance, R1 from the 30 s one with tau1 = 20 s).
* Ambient (isothermal) temperatures 10, 25, 45 degC.
* Simulations (SIMS, DFN with the IDAKLU solver; SPMe only where the DFN fails, the manifest
  says which per case), loads on knots every 4 s (the recording is sampled on those knots, so
  counting charge from the samples has no aliasing error), rests and CC-CV at 30 s:
  - ``drive``: from 100 % at rest, US06/highway/UDDS-like drive schedules (drive_cycles.py,
    seeds of their own, mean 0.5 C, clipped at 3 C / 1 C regeneration or the cell's limits)
    to the lower cut-off, 20 min rest, CC 0.5 C to the upper cut-off, CV to C/20, 20 min rest;
  - ``faded``: the same on the cell with electrode width x 0.85 (15 % less capacity, 1/0.85 x
    the resistance), the estimator not told;
  - ``mission``: from 85 % at rest, 3 h of robot mission (robot_mission.py: long idle at
    0.02-0.06 C, travel at 0.15-0.45 C, peaks of 1-2 C for 4-12 s), 2 min rest, docking CC-CV
    0.5 C to C/20, 10 min rest;
  - ``partial``: the faded cell (so the cell file's capacity is 14-18 % high), from 80 % at
    rest, two cycles of [drive load discharging exactly 30 % of the true capacity, 2 min
    rest, CC 0.5 C charge of 30 %, 2 min rest] (no rest long enough to anchor: the capacity
    goal of issue 14 item 4, within 3 % after two partial cycles of 30 % depth);
  - ``temp_sweep`` (issue 14 item 5, the learnt temperature law): a DFN with a lumped thermal
    model under an ambient that moves (PyBaMM's ambient as a function of time; SWEEP_PROFILES,
    linear between knots in hours: ``warming`` 5 -> 40 (2 h) -> 15 (4 h) -> 25 degC (6 h),
    ``cooling`` 40 -> 5 -> 30 -> 20 degC), from 100 % at rest: 8 x [drive load discharging
    exactly 10 % of the true capacity, 15 min rest], CC-CV 0.5 C to C/20, 20 min rest. The
    recorded temperature is the cell's (volume-averaged; it lags the ambient by up to 9 K).
    Prada2013 has no thermal parameters: Chen2020's layer materials and h = 10 W/m^2/K with
    a 26650 can. Truth of the law, per set: the 2 s step resistance of 1 C, 30 s pulses at
    50 % SoC (isothermal DFN, as ``cells``) at 5, 25 and 45 degC; R0(25 degC) and Ea/R from
    the least-squares line of ln R0 against 1/T (``r0_truth_*`` in the manifest).
* Truth: SoC from the mean negative-particle stoichiometry over the 25 degC windows of the OCV
  table, SoC = (x - x0) / (x100 - x0) (equal to 1 - discharged / Q, Q the capacity between the
  windows); the relaxed OCV ('Bulk open-circuit voltage [V]', no hysteresis in these models).
* Sensor model (as validate_estimator.py): voltage + N(0, 2 mV) quantised to 1 mV, current +
  N(0, 0.2 % C) to 1 mA, temperature + N(0, 0.2 degC) to 0.1 degC.
* Cases (``manifest``, matrix.json) per parameter set: ``full_cycle`` (drive sim from its
  start, no initial SoC), ``load_mid`` (drive sim from the first loaded sample at SoC <= 55 %,
  no initial SoC: an unrelaxed start), ``wrong_mid`` (the same start, --initial-soc 0.2 off,
  + for even set index, - for odd), ``offset`` (drive sim, +1 % C on the measured current),
  ``mission``, ``partial_30`` (capacity goal: within 3 % at the end), ``faded``; the first two
  and ``mission`` at all three temperatures, the others at 25 degC and 10 degC (even set
  index) or 45 degC (odd); ``temp_sweep`` (name ``<cell>_temp_sweep_<profile>``, temperature
  null) from both profiles of every set.
* Split rule: a case is in the *test* half when (set index + temperature index + kind index)
  is odd, else in the *tuning* half (indices in the order of SETS, TEMPERATURES_DEGC, KINDS):
  a checkerboard, so each half has every parameter set with every kind, and every
  temperature. ``temp_sweep`` has no temperature index: the warming day is in the tuning half
  for an even set index and in the test half for an odd one, the cooling day the other way
  (each half: every set, both profiles, NMC and LFP).
"""
import argparse
import gzip
import io
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, HERE)

import drive_cycles  # noqa: E402
import robot_mission  # noqa: E402

# the sensor model is the earlier pipeline's, so both sets of fixtures see the same sensors
from validate_estimator import NOISE_C, NOISE_DEGC, NOISE_V, add_noise  # noqa: E402

FIXTURES = os.path.join(REPO, 'test', 'fixtures', 'pybamm')
MATRIX_DIR = os.path.join(FIXTURES, 'matrix')
MANIFEST = os.path.join(FIXTURES, 'matrix.json')
SIM_INFO = os.path.join(MATRIX_DIR, 'simulations.json')

# name -> parameter set, cell file, limits for the load generators, chemistry, description
SETS = {
    'nmc_lg_m50': {'parameter_set': 'Chen2020', 'seed': 11, 'new': False,
                   'discharge_max_a': 7.275, 'charge_max_a': 3.395},
    'lfp_a123_anr26650': {'parameter_set': 'Prada2013', 'seed': 12, 'new': False,
                          'discharge_max_a': 50.0, 'charge_max_a': 10.0},
    'nmc532_mohtat2020': {'parameter_set': 'Mohtat2020', 'seed': 13, 'new': True,
                          'chemistry': 'NMC',
                          'title': 'NMC532 / graphite pouch, 5 Ah (PyBaMM "Mohtat2020")',
                          'ref': 'Mohtat et al., J. Electrochem. Soc. 167 (2020) 110561'},
    'nca_kim2011': {'parameter_set': 'NCA_Kim2011', 'seed': 14, 'new': True,
                    'chemistry': 'NCA',
                    'title': 'NCA / graphite pouch (PyBaMM "NCA_Kim2011")',
                    'ref': 'Kim et al., J. Electrochem. Soc. 158 (2011) A955'},
}
TEMPERATURES_DEGC = (10.0, 25.0, 45.0)
KINDS = ('full_cycle', 'load_mid', 'wrong_mid', 'offset', 'mission', 'partial_30', 'faded')
KIND_SIM = {'full_cycle': 'drive', 'load_mid': 'drive', 'wrong_mid': 'drive', 'offset': 'drive',
            'mission': 'mission', 'partial_30': 'partial', 'faded': 'faded'}
ALL_TEMPERATURES = ('full_cycle', 'load_mid', 'mission')
LOAD_DT_S = 4.0
SLOW_DT_S = 30.0
MEAN_DISCHARGE_C = 0.5
MAX_DISCHARGE_C = 3.0
MAX_REGEN_C = 1.0
CHARGE_C = 0.5
FADE_WIDTH = 0.85
MISSION_S = 3 * 3600.0
MISSION_START_SOC = 0.85
PARTIAL_START_SOC = 0.80
PARTIAL_DEPTH = 0.30
MID_SOC = 0.55
WRONG_SOC = 0.2
OFFSET_C = 0.01
COUNT_AFTER_S = 120.0
COUNT_AFTER_UNRELAXED_S = 300.0
SPLIT_RULE = ('test if (set index + temperature index + kind index) is odd, else tuning; '
              'indices in the order of parameter_sets, temperatures_degc and kinds below; '
              'temp_sweep (no single temperature): the warming day in the tuning half for an '
              'even set index and in the test half for an odd one, the cooling day the other way')
# temp_sweep: a lumped-thermal DFN under an ambient that moves (hours, degC; linear between
# the knots, constant after the last); the load is SWEEP_SEGMENTS x [drive load discharging
# SWEEP_DEPTH of the true capacity, SWEEP_REST_MIN rest], then CC-CV and a 20 min rest
SWEEP_KIND = 'temp_sweep'
SWEEP_PROFILES = {'warming': ((0.0, 5.0), (2.0, 40.0), (4.0, 15.0), (6.0, 25.0)),
                  'cooling': ((0.0, 40.0), (2.0, 5.0), (4.0, 30.0), (6.0, 20.0))}
SWEEP_SEGMENTS = 8
SWEEP_DEPTH = 0.10
SWEEP_REST_MIN = 15
SWEEP_PULSE_DEGC = (5.0, 25.0, 45.0)     # the R0 truth: 2 s step resistance at these, 50 % SoC
# thermal values the lumped model needs and Prada2013 lacks: Chen2020's layer materials, h =
# 10 W/m^2/K, and the can of an ANR26650 (26 mm x 65 mm)
SWEEP_THERMAL_FROM = 'Chen2020'
CAN_26650_M = (0.013, 0.065)             # radius, height


def temperatures_of(kind, set_index):
    """The ambient temperatures a kind of case is generated at for the set_index-th set."""
    if kind in ALL_TEMPERATURES:
        return TEMPERATURES_DEGC
    return (TEMPERATURES_DEGC[1], TEMPERATURES_DEGC[0] if set_index % 2 == 0
            else TEMPERATURES_DEGC[2])


def half_of(set_index, temperature_degc, kind, profile=None):
    if kind == SWEEP_KIND:
        first = 'tuning' if set_index % 2 == 0 else 'test'
        return first if profile == 'warming' else ('test' if first == 'tuning' else 'tuning')
    parity = set_index + TEMPERATURES_DEGC.index(temperature_degc) + KINDS.index(kind)
    return 'test' if parity % 2 else 'tuning'


def sim_name(cell, sim, temperature_degc):
    return f'{cell}_{sim}_{temperature_degc:.0f}c'


def wanted_sims():
    """Every (cell, sim, temperature) the cases need, tuning-heavy ones first."""
    sims = {}
    for index, cell in enumerate(SETS):
        for kind in KINDS:
            for temp in temperatures_of(kind, index):
                key = (cell, KIND_SIM[kind], temp)
                sims.setdefault(key, 0)
                sims[key] += half_of(index, temp, kind) == 'tuning'
    return sorted(sims, key=lambda k: -sims[k])


def sweep_name(cell, profile):
    return f'{cell}_{SWEEP_KIND}_{profile}'


# ------------------------------------------------------------------ PyBaMM (validation venv)

def parameter_values(cell):
    import pybamm
    return pybamm.ParameterValues(SETS[cell]['parameter_set'])


def windows(params):
    """(x0, x100, y0, y100, Q_ah) of the electrode SoH solver (25 degC OCPs)."""
    import pybamm
    param = pybamm.LithiumIonParameters()
    esoh = pybamm.lithium_ion.ElectrodeSOHSolver(params, param)
    sol = esoh.solve({'Q_Li': params.evaluate(param.Q_Li_particles_init),
                      'Q_n': params.evaluate(param.n.Q_init),
                      'Q_p': params.evaluate(param.p.Q_init)})
    return tuple(float(sol[k]) for k in ('x_0', 'x_100', 'y_0', 'y_100', 'Q'))


def cell_file_capacity_ah(params, q_true):
    """The 'datasheet' capacity: the set's nominal if within 5 % of Q, else 0.97 Q rounded."""
    nominal = float(params['Nominal cell capacity [A.h]'])
    if abs(nominal / q_true - 1.0) <= 0.05:
        return nominal
    return float(f'{0.97 * q_true:.2g}')


def cell_limits(cell, capacity_ah):
    spec = SETS[cell]
    return (spec.get('discharge_max_a', 2.0 * capacity_ah),
            spec.get('charge_max_a', 1.0 * capacity_ah))


def run_experiment(params, steps, initial_soc, model_name='DFN', thermal=None):
    import pybamm
    options = {'thermal': thermal} if thermal else {}
    model = {'DFN': pybamm.lithium_ion.DFN, 'SPMe': pybamm.lithium_ion.SPMe}[model_name](
        options=options)
    sim = pybamm.Simulation(model, parameter_values=params,
                            experiment=pybamm.Experiment(steps),
                            solver=pybamm.IDAKLUSolver())
    return sim.solve(initial_soc=initial_soc)


def drive_current(capacity_ah, seed, discharge_max_a, charge_max_a, repeats=8):
    """US06/highway/UDDS-like schedule on LOAD_DT_S knots, mean 0.5 C, clipped (+ = charge)."""
    rng = np.random.default_rng(seed)
    power = np.concatenate([drive_cycles.battery_power_w(
        drive_cycles.speed_trace(k, rng, LOAD_DT_S), LOAD_DT_S)
        for k in ('us06', 'hwy', 'udds') * repeats])
    current = -power / power.mean() * MEAN_DISCHARGE_C * capacity_ah
    return np.clip(current, -min(MAX_DISCHARGE_C * capacity_ah, discharge_max_a),
                   min(MAX_REGEN_C * capacity_ah, charge_max_a))


def exact_discharge(current, charge_ah, low, high):
    """Scale ``current`` (clipped to low..high) so its trapezoid integral is -charge_ah."""
    out = current
    for _ in range(20):
        total = np.trapezoid(out, dx=LOAD_DT_S) / 3600.0
        out = np.clip(out * (-charge_ah / total), low, high)
    return out


def data_step(current, termination=None):
    """A PyBaMM current step from knots (PyBaMM current + = discharge)."""
    import pybamm
    t = np.arange(len(current)) * LOAD_DT_S
    kwargs = {'termination': termination} if termination else {}
    return pybamm.step.current(np.column_stack([t, -current]), period=LOAD_DT_S, **kwargs)


def cccv(capacity_ah, v_max):
    p = f'({SLOW_DT_S:.0f} second period)'
    return [f'Charge at {CHARGE_C * capacity_ah:.4f} A until {v_max} V {p}',
            f'Hold at {v_max} V until {0.05 * capacity_ah:.4f} A {p}']


def rest(minutes):
    return f'Rest for {minutes} minutes ({SLOW_DT_S:.0f} second period)'


def add_thermal_parameters(params):
    """Fill in what the lumped thermal model needs and the set lacks (Prada2013)."""
    if 'Cell volume [m3]' in params.keys():
        return False
    source = parameter_values_of(SWEEP_THERMAL_FROM)
    words = ('collector', 'density [kg', 'specific heat', 'thermal conductivity',
             'heat transfer')
    extra = {k: source[k] for k in source.keys()
             if any(w in k for w in words) and k not in params.keys()}
    radius_m, height_m = CAN_26650_M
    extra['Cell volume [m3]'] = np.pi * radius_m ** 2 * height_m
    extra['Cell cooling surface area [m2]'] = 2 * np.pi * radius_m * (height_m + radius_m)
    params.update(extra, check_already_exists=False)
    return True


def parameter_values_of(name):
    import pybamm
    return pybamm.ParameterValues(name)


def ambient_of(profile):
    """The ambient as a PyBaMM function of time (K), from SWEEP_PROFILES' knots."""
    import pybamm
    knots = SWEEP_PROFILES[profile]
    t_s = np.array([h * 3600.0 for h, _ in knots] + [48 * 3600.0])
    temp_k = np.array([c + 273.15 for _, c in knots] + [knots[-1][1] + 273.15])

    def ambient(y, z, t):
        return pybamm.Interpolant(t_s, temp_k, t, interpolator='linear')
    return ambient


def pulse_r0_ohm(cell, temperature_degc, capacity_ah):
    """The 2 s step resistance of a 1 C discharge pulse at 50 % SoC, isothermal (ohm)."""
    params = parameter_values(cell)
    params['Ambient temperature [K]'] = temperature_degc + 273.15
    params['Initial temperature [K]'] = temperature_degc + 273.15
    steps = ['Rest for 10 seconds (1 second period)',
             f'Discharge at {capacity_ah:.4f} A for 30 seconds (0.5 second period)']
    solution = run_experiment(params, steps, 0.5)
    t = solution['Time [s]'].entries
    v = solution['Voltage [V]'].entries
    return float((v[t <= 10.0][-1] - np.interp(12.0, t, v)) / capacity_ah)


def r0_truth(cell, capacity_ah):
    """(R0 at 25 degC (ohm), Ea/R (K)) of the set: pulses at SWEEP_PULSE_DEGC, ln R0 fitted
    against 1/T by least squares (the definition of the cell files' R0: a 2 s step).
    """
    r0 = {c: pulse_r0_ohm(cell, c, capacity_ah) for c in SWEEP_PULSE_DEGC}
    x = np.array([1.0 / (c + 273.15) - 1.0 / 298.15 for c in r0])
    slope, intercept = np.polyfit(x, np.log(list(r0.values())), 1)
    return r0, float(slope)


def sweep_steps(cell, q_true, capacity_ah, seed, v_min, v_max):
    """The temp_sweep load: segments of drive load, rests, CC-CV."""
    discharge_max_a, charge_max_a = cell_limits(cell, capacity_ah)
    low, high = -min(MAX_DISCHARGE_C * capacity_ah, discharge_max_a), \
        min(MAX_REGEN_C * capacity_ah, charge_max_a)
    n = int(SWEEP_DEPTH * 3600.0 / MEAN_DISCHARGE_C / LOAD_DT_S) + 1
    steps = []
    for segment in range(SWEEP_SEGMENTS):
        load = drive_current(q_true, seed + segment, discharge_max_a, charge_max_a,
                             repeats=1)[:n]
        steps += [data_step(exact_discharge(load, SWEEP_DEPTH * q_true, low, high),
                            f'< {v_min} V'), rest(SWEEP_REST_MIN)]
    return steps + [*cccv(capacity_ah, v_max), rest(20)]


def simulate(cell, sim, temperature_degc):
    """One simulation; returns the noise-free recording and its facts (``sim`` temp_sweep:
    ``temperature_degc`` is the profile's name).
    """
    params = parameter_values(cell)
    x0, x100, _, _, q_true = windows(params)
    capacity_ah = cell_file_capacity_ah(params, q_true)
    discharge_max_a, charge_max_a = cell_limits(cell, capacity_ah)
    v_min = float(params['Lower voltage cut-off [V]'])
    v_max = float(params['Upper voltage cut-off [V]'])
    sweep = sim == SWEEP_KIND
    if sweep:
        profile = temperature_degc
        seed = SETS[cell]['seed'] * 100 + 50 + 20 * list(SWEEP_PROFILES).index(profile)
        temperature_degc = SWEEP_PROFILES[profile][0][1]
    else:
        seed = SETS[cell]['seed'] * 100 + TEMPERATURES_DEGC.index(temperature_degc) * 10 \
            + ('drive', 'faded', 'mission', 'partial').index(sim)
    if sim in ('faded', 'partial'):
        params['Electrode width [m]'] = params['Electrode width [m]'] * FADE_WIDTH
        q_true *= FADE_WIDTH
    params['Ambient temperature [K]'] = temperature_degc + 273.15
    params['Initial temperature [K]'] = temperature_degc + 273.15
    params['Upper voltage cut-off [V]'] = v_max + 0.3   # regeneration near full: do not stop
    params['Lower voltage cut-off [V]'] = v_min - 0.3   # the steps' own terminations stop
    low, high = -min(MAX_DISCHARGE_C * capacity_ah, discharge_max_a), \
        min(MAX_REGEN_C * capacity_ah, charge_max_a)
    stop = f'< {v_min} V'
    if sim in ('drive', 'faded'):
        initial = 1.0
        steps = [data_step(drive_current(capacity_ah, seed, discharge_max_a, charge_max_a), stop),
                 rest(20), *cccv(capacity_ah, v_max), rest(20)]
    elif sim == 'mission':
        initial = MISSION_START_SOC
        load = robot_mission.current_profile(capacity_ah, seed, MISSION_S, LOAD_DT_S,
                                             discharge_max_a, charge_max_a)
        steps = [data_step(load, stop), rest(2), *cccv(capacity_ah, v_max), rest(10)]
    elif sim == 'partial':
        initial = PARTIAL_START_SOC
        duration_s = PARTIAL_DEPTH * 3600.0 / MEAN_DISCHARGE_C
        n = int(duration_s / LOAD_DT_S) + 1
        steps = []
        for cycle in range(2):
            load = drive_current(q_true, seed + cycle, discharge_max_a, charge_max_a,
                                 repeats=1)[:n]
            load = exact_discharge(load, PARTIAL_DEPTH * q_true, low, high)
            steps += [data_step(load, stop), rest(2),
                      f'Charge at {MEAN_DISCHARGE_C * q_true:.5f} A for {duration_s:.0f} '
                      f'seconds ({SLOW_DT_S:.0f} second period)', rest(2)]
    elif sweep:
        initial = 1.0
        thermal_added = add_thermal_parameters(params)
        params['Ambient temperature [K]'] = ambient_of(profile)
        steps = sweep_steps(cell, q_true, capacity_ah, seed, v_min, v_max)
    else:
        raise ValueError(sim)
    start = time.monotonic()
    model_name = 'DFN'
    thermal = 'lumped' if sweep else None
    try:
        solution = run_experiment(params, steps, initial, 'DFN', thermal)
    except Exception as error:  # noqa: BLE001 -- the DFN failing is a reason for SPMe
        print(f'{cell}/{sim}/{temperature_degc}: DFN failed ({error!r:.120}); SPMe',
              flush=True)
        model_name = 'SPMe'
        solution = run_experiment(params, steps, initial, 'SPMe', thermal)
    elapsed = time.monotonic() - start
    t_s, keep = recorded_times(solution)
    x = solution['Average negative particle stoichiometry'].entries[keep]
    data = {'t_s': t_s[keep], 'current_a': -solution['Current [A]'].entries[keep],
            'voltage_v': solution['Voltage [V]'].entries[keep],
            'temperature_c': (solution['Volume-averaged cell temperature [C]'].entries[keep]
                              if sweep else np.full(int(keep.sum()), temperature_degc)),
            'soc_true': (x - x0) / (x100 - x0),
            'ocv_true_v': solution['Bulk open-circuit voltage [V]'].entries[keep]}
    counted = data['soc_true'][0] + np.concatenate([[0.0], np.cumsum(
        np.diff(data['t_s']) * 0.5 * (data['current_a'][1:] + data['current_a'][:-1]))]) \
        / 3600.0 / q_true
    load_end_s = float(solution.cycles[0]['Time [s]'].entries[-1])
    info = {'model': model_name, 'cpu_s': round(elapsed, 1), 'capacity_true_ah': q_true,
            'capacity_file_ah': capacity_ah, 'first_load_end_s': load_end_s,
            'soc_start': float(data['soc_true'][0]), 'soc_end': float(data['soc_true'][-1]),
            'soc_min': float(data['soc_true'].min()),
            'truth_vs_count_max': float(np.max(np.abs(counted - data['soc_true']))),
            'simulated_s': float(data['t_s'][-1]), 'samples': int(keep.sum()), 'seed': seed}
    if sweep:
        info['model'] = f'{model_name}, lumped thermal'
        pulses, activation_k = r0_truth(cell, capacity_ah)
        cell_c = data['temperature_c']
        ambient_c = solution['Volume-averaged ambient temperature [C]'].entries[keep]
        info.update({
            'ambient_degc': [list(k) for k in SWEEP_PROFILES[profile]],
            'thermal_parameters': (f'added from {SWEEP_THERMAL_FROM}, 26650 can'
                                   if thermal_added else 'the set\'s own'),
            'cell_temperature_min_degc': float(cell_c.min()),
            'cell_temperature_max_degc': float(cell_c.max()),
            'cell_temperature_std_degc': float(cell_c.std()),
            'cell_minus_ambient_max_k': float(np.max(np.abs(cell_c - ambient_c))),
            'r0_truth_pulses_ohm': {f'{c:g}': r for c, r in pulses.items()},
            'r0_truth_25c_ohm': pulses[25.0], 'r0_truth_activation_k': activation_k})
    label = profile if sweep else f'{temperature_degc:.0f}'
    print(f'{cell}/{sim}/{label}: {model_name} {elapsed:.1f} s cpu, '
          + ', '.join(f'{k} {v:.4g}' if isinstance(v, float) else f'{k} {v}'
                      for k, v in info.items()), flush=True)
    return data, info


def recorded_times(solution):
    """(times s, mask of the samples kept) of a solution's recording.

    A step boundary repeats its time: the first point has the old current, the second the new
    one (the ohmic jump at once); moved 0.1 s later both are kept, so counting charge from the
    samples does not smear a current step over the next (30 s) interval.
    """
    t_s = solution['Time [s]'].entries.copy()
    repeat = np.concatenate([[False], np.diff(t_s) < 1e-6])
    t_s[repeat] += 0.1
    return t_s, np.concatenate([[True], np.diff(t_s) > 0.05])


COLUMNS = ('t_s', 'current_a', 'voltage_v', 'temperature_c', 'soc_true', 'ocv_true_v')
FORMATS = {'t_s': '{:.1f}', 'current_a': '{:.3f}', 'voltage_v': '{:.3f}',
           'temperature_c': '{:.1f}', 'soc_true': '{:.5f}', 'ocv_true_v': '{:.4f}'}


def write_csv_gz(path, data):
    """gzip CSV without a time stamp, so unchanged fixtures stay byte-identical."""
    with io.TextIOWrapper(gzip.GzipFile(path, 'wb', compresslevel=9, mtime=0),
                          encoding='utf-8') as stream:
        stream.write(','.join(COLUMNS) + '\n')
        for row in zip(*(data[c] for c in COLUMNS)):
            stream.write(','.join(FORMATS[c].format(v) for c, v in zip(COLUMNS, row)) + '\n')


def read_csv_gz(path):
    with gzip.open(path, 'rt') as stream:
        data = np.genfromtxt(stream, delimiter=',', names=True)
    return {k: np.asarray(data[k], dtype=float) for k in data.dtype.names}


def load_infos():
    if os.path.exists(SIM_INFO):
        with open(SIM_INFO) as stream:
            return json.load(stream)
    return {}


def cmd_simulate(only):
    os.makedirs(MATRIX_DIR, exist_ok=True)
    sweeps = [(cell, SWEEP_KIND, profile) for cell in SETS for profile in SWEEP_PROFILES]
    for cell, sim, temp in wanted_sims() + sweeps:
        name = sweep_name(cell, temp) if sim == SWEEP_KIND else sim_name(cell, sim, temp)
        if only and name not in only and cell not in only and sim not in only:
            continue
        path = os.path.join(MATRIX_DIR, name + '.csv.gz')
        if os.path.exists(path) and not only:
            continue
        try:
            data, info = simulate(cell, sim, temp)
        except Exception as error:  # noqa: BLE001 -- report and go on with the others
            print(f'{name}: FAILED {error!r}', flush=True)
            continue
        noisy = add_noise(data, info['capacity_file_ah'], info['seed'] + 7)
        write_csv_gz(path, noisy)
        infos = load_infos()
        infos[name] = info
        with open(SIM_INFO, 'w') as stream:
            json.dump(infos, stream, indent=1, sort_keys=True)


# ------------------------------------------------------------------ manifest (numpy only)

def cmd_manifest():
    """matrix.json from the simulations present (cases of missing ones are left out)."""
    infos = load_infos()
    cases = []
    for index, cell in enumerate(SETS):
        for kind in KINDS:
            for temp in temperatures_of(kind, index):
                sim = KIND_SIM[kind]
                name = sim_name(cell, sim, temp)
                if name not in infos:
                    continue
                info = infos[name]
                file = f'matrix/{name}.csv.gz'
                case = {'name': f'{cell}_{kind}_{temp:.0f}c', 'half': half_of(index, temp, kind),
                        'kind': kind, 'cell': cell,
                        'parameter_set': SETS[cell]['parameter_set'],
                        'temperature_degc': temp, 'model': info['model'], 'file': file,
                        'cell_yaml': f'config/cells/{cell}.yaml', 'args': [],
                        'first_row': 0, 'current_offset_a': 0.0,
                        'capacity_true_ah': info['capacity_true_ah'],
                        'count_after_s': COUNT_AFTER_S, 'capacity_goal': kind == 'partial_30'}
                if kind in ('load_mid', 'wrong_mid'):
                    data = read_csv_gz(os.path.join(FIXTURES, file))
                    first = int(np.argmax((data['soc_true'] <= MID_SOC)
                                          & (data['current_a'] < -0.2 * info['capacity_file_ah'])))
                    case['first_row'] = first
                    case['count_after_s'] = COUNT_AFTER_UNRELAXED_S
                    case['soc_true_start'] = round(float(data['soc_true'][first]), 4)
                    if kind == 'wrong_mid':
                        sign = 1.0 if index % 2 == 0 else -1.0
                        case['args'] = ['--initial-soc',
                                        f'{data["soc_true"][first] + sign * WRONG_SOC:.3f}']
                if kind == 'offset':
                    case['current_offset_a'] = round(OFFSET_C * info['capacity_file_ah'], 4)
                cases.append(case)
        for profile in SWEEP_PROFILES:
            name = sweep_name(cell, profile)
            if name not in infos:
                continue
            info = infos[name]
            cases.append({
                'name': name, 'half': half_of(index, None, SWEEP_KIND, profile),
                'kind': SWEEP_KIND, 'cell': cell, 'parameter_set': SETS[cell]['parameter_set'],
                'temperature_degc': None, 'ambient_degc': info['ambient_degc'],
                'model': info['model'], 'file': f'matrix/{name}.csv.gz',
                'cell_yaml': f'config/cells/{cell}.yaml', 'args': [], 'first_row': 0,
                'current_offset_a': 0.0, 'capacity_true_ah': info['capacity_true_ah'],
                'count_after_s': COUNT_AFTER_S, 'capacity_goal': False,
                'r0_truth_25c_ohm': info['r0_truth_25c_ohm'],
                'r0_truth_activation_k': info['r0_truth_activation_k']})
    manifest = {
        'source': 'bench/validation/make_matrix.py (PyBaMM pinned in '
                  'bench/validation/requirements.txt)',
        'split_rule': SPLIT_RULE, 'parameter_sets': list(SETS),
        'temperatures_degc': list(TEMPERATURES_DEGC),
        'kinds': list(KINDS) + [SWEEP_KIND], 'sweep_profiles_h_degc': {
            k: [list(p) for p in v] for k, v in SWEEP_PROFILES.items()},
        'sampling': f'loads on {LOAD_DT_S:g} s knots, rests and CC-CV every {SLOW_DT_S:g} s',
        'sensor_model': f'voltage + N(0, {NOISE_V * 1e3:g} mV) to 1 mV, current + N(0, '
                        f'{NOISE_C * 100:g} % C) to 1 mA, temperature + N(0, {NOISE_DEGC}) '
                        'degC to 0.1 degC',
        'columns': list(COLUMNS),
        'case_fields': 'file (relative to test/fixtures/pybamm), cell_yaml (relative to the '
                       'repo), args (estimate_csv), first_row (rows before it are dropped), '
                       'current_offset_a (added to the measured current), count_after_s '
                       '(errors count from the first row + this), capacity_goal (|capacity '
                       'error| <= 3 % at the last sample); temp_sweep cases: temperature_degc '
                       'null, ambient_degc (hours, degC knots), r0_truth_25c_ohm and '
                       'r0_truth_activation_k (2 s step resistance of 1 C pulses at 50 % SoC '
                       'at 5/25/45 degC, isothermal DFN; Ea/R fitted to ln R0 against 1/T)',
        'simulations': infos, 'cases': cases}
    with open(MANIFEST, 'w') as stream:
        json.dump(manifest, stream, indent=1)
    tuning = sum(c['half'] == 'tuning' for c in cases)
    print(f'{MANIFEST}: {len(cases)} cases ({tuning} tuning, {len(cases) - tuning} test)')


# ------------------------------------------------------------------ cell files (PyBaMM)

def pulse_ecm(cell):
    """(R0, R1, tau1) from a 1 C, 30 s DFN discharge pulse at 50 % SoC and 25 degC."""
    params = parameter_values(cell)
    q_true = windows(params)[4]
    capacity_ah = cell_file_capacity_ah(params, q_true)
    steps = ['Rest for 10 seconds (1 second period)',
             f'Discharge at {capacity_ah:.4f} A for 30 seconds (1 second period)']
    solution = run_experiment(params, steps, 0.5)
    t = solution['Time [s]'].entries
    v = solution['Voltage [V]'].entries
    v_rest = v[t <= 10.0][-1]
    v2 = np.interp(12.0, t, v)
    v30 = np.interp(40.0, t, v)
    tau1 = 20.0
    r0 = (v_rest - v2) / capacity_ah
    r1 = (v2 - v30) / capacity_ah / (1.0 - np.exp(-28.0 / tau1))
    return float(r0), float(r1), tau1, capacity_ah


def cmd_cells():
    import make_ocv_tables
    for cell, spec in SETS.items():
        if not spec['new']:
            continue
        params = parameter_values(cell)
        soc, ocv, dt, stoich = make_ocv_tables.ocv_table(spec['parameter_set'])
        make_ocv_tables.write_table(os.path.join(REPO, 'config', 'ocv', f'{cell}.csv'),
                                    spec['parameter_set'], spec['title'], spec['ref'],
                                    soc, ocv, dt, stoich)
        r0, r1, tau1, capacity_ah = pulse_ecm(cell)
        discharge_max_a, charge_max_a = cell_limits(cell, capacity_ah)
        q_true = windows(params)[4]
        text = f"""# {spec['title']}, one cell: the estimator's cell file for the validation matrix.
# Written by bench/validation/make_matrix.py cells (PyBaMM parameter set "{spec['parameter_set']}",
# {spec['ref']}). Capacity: the set's nominal {float(params['Nominal cell capacity [A.h]']):.4g} Ah
# if within 5 % of the {q_true:.4g} Ah between the OCV windows, else 0.97 x that, rounded (a
# datasheet states a little less than the cell has). ECM: datasheet-level guesses from a 1 C,
# 30 s pulse at 50 % SoC, 25 degC (R0 = 2 s step resistance; R1 from the 30 s one, tau1 fixed).
# Limits: the set's voltage cut-offs; 2 C discharge, 1 C charge; usual temperature windows.
# Thermal values: a pouch of this capacity, rough (the estimator does not use them).
name: {spec['parameter_set']} cell
chemistry: {spec['chemistry']}
capacity_ah: {capacity_ah:.4g}
ocv_table: ../ocv/{cell}.csv
ecm:
  r0_ohm: {r0:.4g}
  r1_ohm: {r1:.4g}
  tau1_s: {tau1:g}
  r0_arrhenius_k: 3000.0       # Ea/R of R0, the generic guess (not fitted)
thermal:
  mass_kg: {0.02 * capacity_ah:.3g}
  heat_capacity_j_per_kg_k: 1000.0
  cooling_w_per_k: 0.05
limits:
  voltage_min_v: {float(params['Lower voltage cut-off [V]']):g}
  voltage_max_v: {float(params['Upper voltage cut-off [V]']):g}
  charge_current_max_a: {charge_max_a:.4g}
  discharge_current_max_a: {discharge_max_a:.4g}
  charge_temperature_min_degc: 0.0
  charge_temperature_max_degc: 45.0
  discharge_temperature_min_degc: -20.0
  discharge_temperature_max_degc: 60.0
"""
        with open(os.path.join(REPO, 'config', 'cells', f'{cell}.yaml'), 'w') as stream:
            stream.write(text)
        print(cell, f'capacity {capacity_ah:.4g} Ah (Q {q_true:.4g}), R0 {r0 * 1e3:.2f} mOhm, '
              f'R1 {r1 * 1e3:.2f} mOhm, OCV {ocv[0]:.3f}..{ocv[-1]:.3f} V')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('command', choices=('cells', 'simulate', 'manifest', 'list'))
    parser.add_argument('--only', nargs='*', default=[],
                        help='simulation names, cells or sim kinds (re-simulates them)')
    args = parser.parse_args(argv)
    if args.command == 'cells':
        cmd_cells()
    elif args.command == 'simulate':
        cmd_simulate(args.only)
    elif args.command == 'list':
        for key in wanted_sims():
            print(sim_name(*key))
        for cell in SETS:
            for profile in SWEEP_PROFILES:
                print(sweep_name(cell, profile))
    else:
        cmd_manifest()


if __name__ == '__main__':
    main()
