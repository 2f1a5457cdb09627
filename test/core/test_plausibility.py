"""Plausibility checks (bms_ros.core.plausibility): each check flags what it should, healthy packs
are never flagged, and a stuck cell reading no longer corrupts the pack SoC.

The simulated packs are bms_ros.core.pack_model.PackModel with the profile's `simulator:`
section (spreads, noise, bleed resistor), stepped at the 10 Hz measurement rate (the model's
discretisation is exact for its RC pair and thermal model), the readings quantised as the DBC
sends them (1 mV cells, 10 mV pack, 0.1 degC). Every sample goes through
interface.step_from_measurement, the state_estimator node's path.

Run ``python -m test.core.test_plausibility`` to print the false-flag figures.
"""
import os
import sys
import time
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from bms_ros.core.config import Section
from bms_ros.core.errors import ConfigError
from bms_ros.core.estimation import interface
from bms_ros.core.estimation.config import EstimatorConfig
from bms_ros.core.estimation.estimator import PackEstimator, pack_soc
from bms_ros.core.load_profile import ConstantLoad
from bms_ros.core.pack_model import PackModel, SimulatorConfig
from bms_ros.core.plausibility import Plausibility, PlausibilityConfig
from bms_ros.core.profile import Profile, config_dir

STEP_S = 0.1          # the measurement period


def profile(name):
    return Profile(os.path.join(config_dir(), 'profiles', name))


def make_model(prof, **changes):
    """The profile's simulated pack, contactors closed, stepping at the measurement rate."""
    sim = replace(SimulatorConfig.from_section(prof.section('simulator'), prof.pack),
                  step_s=STEP_S, faults=(), **changes)
    model = PackModel(prof.pack, sim)
    model.set_contactors(True, False, True)
    model.advance(0.5)
    return model


def message(model):
    """The model's measurement as a PackMeasurement-shaped object, quantised like the DBC."""
    m = model.measured()
    cells = np.round(m['cell_voltages_v'], 3)
    temps = np.round(m['temperatures_degc'], 1)
    return SimpleNamespace(
        cell_voltages_v=cells, cell_voltage_valid=np.isfinite(cells),
        temperatures_degc=temps, temperature_valid=np.isfinite(temps),
        pack_current_a=float(np.round(m['pack_current_a'], 2)),
        pack_voltage_v=float(np.round(m['pack_voltage_v'], 2)),
        cell_voltages_stale=False, temperatures_stale=False, current_stale=False,
        contactors_stale=False, cell_balancing=m['cell_balancing'],
        negative_contactor_closed=m['negative_contactor_closed'],
        positive_contactor_closed=m['positive_contactor_closed'])


class ChecksOnly:
    """A stand-in estimator that only runs the plausibility checks (fast false-flag runs)."""

    def __init__(self, prof, config=None):
        cfg = config or EstimatorConfig.from_section(prof.section('estimator')).plausibility
        self.plausibility = Plausibility(prof.pack.cell, prof.pack.cells_series, cfg)

    def step(self, *args):
        return True

    def zero_current(self, *args):
        pass


def feed(runner, model, t_s, last_t_s, prof):
    return interface.step_from_measurement(runner, message(model), t_s, last_t_s,
                                           prof.pack.sensor_of_cell(), 33.0)


LFP = profile('lfp_16s.yaml')
LFP_CELL = LFP.pack.cell              # one series group: 23 Ah, R0 1 mOhm, OCV 2.0..3.6 V
N = 16
PLATEAU_V = 3.270                     # LFP at ~60 % SoC, at rest


class Sampler:
    """Feeds Plausibility at 10 Hz with the given cell voltages (V), current (A), pack V."""

    def __init__(self, config=None, n=N):
        self.checks = Plausibility(LFP_CELL, n, config or PlausibilityConfig())
        self.t_s = 0.0
        self.n = n

    def __call__(self, v, current_a=0.0, pack_v=None, valid=None):
        self.t_s = round(self.t_s + STEP_S, 6)
        v = np.broadcast_to(np.asarray(v, dtype=float), (self.n,)).copy()
        valid = np.ones(self.n, dtype=bool) if valid is None else np.asarray(valid)
        pack = float(np.sum(v)) if pack_v is None else pack_v
        return self.checks.check(self.t_s, current_a, v, valid, np.full(self.n, 25.0), pack)

    def flagged(self, name):
        return self.checks.summary()['checks'][name]['flagged']

    def count(self, name):
        return self.checks.summary()['checks'][name]['count']


def pack_at(voltage_v, spread_v=0.002, seed=1):
    """Healthy cells around ``voltage_v`` (fixed spread, seeded)."""
    return voltage_v + spread_v * np.random.default_rng(seed).uniform(-1.0, 1.0, N)


def test_stuck_lfp_cell_at_3v80_is_flagged_at_once_and_rejoins_after_rejoin_s():
    """A 3.80 V LFP reading at 60 % SoC (true 3.27 V), pack voltage measured right."""
    s = Sampler()
    base = pack_at(PLATEAU_V)
    for _ in range(20):
        assert s(base).all()
    v = base.copy()
    v[5] = 3.80
    true_pack = float(np.sum(base))
    usable = s(v, pack_v=true_pack)
    assert not usable[5] and usable.sum() == N - 1          # excluded from the first sample
    assert s.flagged('cell_jump') == [5]                    # jump 0.53 V, others still
    assert s.flagged('cell_range') == []                    # 3.80 > 3.6 + 0.1: debounce 0.2 s
    s(v, pack_v=true_pack)
    s(v, pack_v=true_pack)
    assert s.flagged('cell_range') == [5]                   # flagged at 0.2 s
    assert s.flagged('pack_voltage') == []                  # mismatch +0.53 V, debounce 1 s
    for _ in range(8):
        assert not s(v, pack_v=true_pack)[5]
    assert s.flagged('pack_voltage') == [5]
    assert s.checks.summary()['cells_held'] == [5]
    assert abs(s.checks.pack_voltage_mismatch_v - (3.80 - base[5])) < 1e-9
    # cleared: plausible at once, used again 60 s (rejoin_s) after its last flagged sample
    for k in range(599):
        usable = s(base)
        assert s.checks.summary()['checks']['cell_range']['flagged'] == []
        assert not usable[5], k
    assert s(base)[5]
    assert s.count('cell_range') == 1 and s.count('cell_jump') == 1


def test_cell_range_limits_follow_current_and_temperature():
    s = Sampler()
    full = np.full(N, 3.60)
    # 1 C charge of full cells: 3.6 V + R0 I + R1 I = 3.637 V, inside 3.6 + 0.1 + 3 x 37 mV
    for _ in range(5):
        assert s(full + 0.037, current_a=23.0).all()
    # at rest 3.72 V is beyond 3.6 + 0.1 V
    s2 = Sampler()
    v = full.copy()
    v[2] = 3.72
    for _ in range(3):
        s2(v)
    assert s2.flagged('cell_range') == [2]
    # empty cell under 3 C discharge: 2.0 - 0.07 - 0.04 V is what the cell can do
    s3 = Sampler()
    for _ in range(5):
        assert s3(np.full(N, 1.89), current_a=-69.0).all()
    assert s3.count('cell_range') == 0


def test_common_3c_step_with_resistance_spread_is_not_a_jump():
    s = Sampler()
    base = pack_at(PLATEAU_V)
    r0 = LFP_CELL.r0_ohm * np.linspace(0.85, 1.15, N)      # 3 sigma of the profile's spread
    r0[3] *= 0.35                                           # a hot cell (60 degC)
    for _ in range(10):
        s(base)
    for current in (-69.0, 23.0, -69.0, 0.0) * 5:          # 3 C steps, both ways
        for _ in range(5):
            assert s(base + r0 * current + 0.6 * LFP_CELL.r1_ohm * current,
                     current_a=current).all()
    assert s.checks.summary()['flags'] == 0


def test_jump_holds_the_cell_until_it_comes_back():
    s = Sampler()
    base = pack_at(PLATEAU_V)
    for _ in range(10):
        s(base)
    v = base.copy()
    v[7] += 0.08                    # 80 mV in 0.1 s, nothing else moved: inside 2.0..3.7 V
    for _ in range(50):
        assert not s(v)[7]
    assert s.flagged('cell_jump') == [7] and s.flagged('cell_range') == []
    # a common step of 20 mV does not release it (offset unchanged)
    for _ in range(10):
        assert not s(v - 0.020, current_a=-20.0)[7]
    # back within jump_v of where it was: plausible, used again after rejoin_s
    s(base)
    assert s.flagged('cell_jump') == []
    assert s.count('cell_jump') == 1


def test_reading_stuck_while_others_follow_a_current_step_is_flagged():
    s = Sampler()
    rng = np.random.default_rng(3)
    base = pack_at(PLATEAU_V)
    for _ in range(10):
        s(np.round(base + 0.001 * rng.standard_normal(N), 3))
    stuck_v = round(float(base[9]), 3)
    for _ in range(3):              # the reading freezes at its present value ...
        v = np.round(base + 0.001 * rng.standard_normal(N), 3)
        v[9] = stuck_v
        s(v)
    # ... then a -12 A step: every live cell drops ~12 mV + RC, cell 9's reading does not
    for k in range(20):
        v = np.round(base - 0.012 - 0.0004 * k + 0.001 * rng.standard_normal(N), 3)
        v[9] = stuck_v
        s(v, current_a=-12.0, pack_v=float(np.sum(base - 0.012 - 0.0004 * k)))
    assert s.flagged('cell_stuck') == [9]
    assert s.flagged('cell_jump') == [] and s.flagged('cell_range') == []
    assert s.count('cell_stuck') == 1                       # one flag, however long
    # its reading moves again: stuck no longer suspected (rejoin after rejoin_s)
    v = np.round(base - 0.02, 3)
    s(v, current_a=-12.0)
    assert s.flagged('cell_stuck') == []


def test_quiet_cells_at_rest_are_not_stuck():
    """Hardware at rest: every reading holds its code (no noise); the median moves 1 mV."""
    s = Sampler()
    base = np.round(pack_at(PLATEAU_V), 3)
    for k in range(3000):
        v = base.copy()
        v[k % N] += 0.001 * (k // N % 2)       # one cell flickers by one code now and then
        s(v)
    assert s.checks.summary()['flags'] == 0


def test_pack_voltage_mismatch_names_the_cell_that_explains_it():
    s = Sampler()
    base = pack_at(PLATEAU_V)
    # 0.5 V too much in the sum, no cell deviates: the pack is flagged, no cell excluded
    for _ in range(12):
        assert s(base, pack_v=float(np.sum(base)) - 0.5).all()
    summary = s.checks.summary()['checks']['pack_voltage']
    assert summary['pack_flagged'] and summary['flagged'] == []
    # within the 0.3 V tolerance: nothing
    s2 = Sampler()
    for _ in range(12):
        assert s2(base, pack_v=float(np.sum(base)) - 0.25).all()
    assert s2.checks.summary()['flags'] == 0
    # an invalid cell counts as the median; the tolerance widens by the spread
    s3 = Sampler()
    valid = np.ones(N, dtype=bool)
    valid[0] = False
    for _ in range(12):
        s3(base, pack_v=float(np.sum(base)), valid=valid)
    assert s3.checks.summary()['flags'] == 0


def test_temperature_jump_is_flagged_and_a_fast_real_rise_is_not():
    cfg = PlausibilityConfig()
    checks = Plausibility(LFP_CELL, N, cfg)
    temps = np.full(8, 25.0)
    ok = np.ones(8, dtype=bool)
    t = 0.0
    for _ in range(10):
        t += STEP_S
        assert checks.check_temperatures(t, temps, ok).all()
    # sensor 2 jumps to 60 degC in 0.1 s (allowed 3 + 2 x 0.1 degC), sensor 4 rises 1 degC/s
    for _ in range(50):
        t += STEP_S
        temps[4] += 1.0 * STEP_S
        reading = temps.copy()
        reading[2] = 60.0
        usable = checks.check_temperatures(t, reading, ok)
        assert not usable[2] and usable[4]
    assert checks.summary()['checks']['temperature_jump']['flagged'] == [2]
    # dropout: 60 s without a reading, then 30 degC more is within 3 + 2 x 60 degC
    ok2 = ok.copy()
    ok2[6] = False
    for _ in range(600):
        t += STEP_S
        checks.check_temperatures(t, temps, ok2)
    temps[6] += 30.0
    t += STEP_S
    assert checks.check_temperatures(t, temps, ok)[6]
    assert checks.summary()['checks']['temperature_jump']['counts'] == {2: 1}


def test_disabled_checks_pass_every_valid_cell():
    s = Sampler(PlausibilityConfig(enabled=False))
    v = pack_at(PLATEAU_V)
    v[5] = 3.80
    for _ in range(20):
        assert s(v, pack_v=float(np.sum(v)) - 0.5).all()
    assert s.checks.summary()['flags'] == 0


@pytest.mark.parametrize('field,value,problem', [
    ('jump_v', -0.1, '> 0.0'), ('stuck_steps', 3, 'unknown field'),
    ('enabled', 'yes', 'true or false'), ('rejoin_s', float('nan'), 'finite'),
    ('stuck_resolution_v', 0.02, 'must be < stuck_step_v'),
    ('range_resistance_factor', 0.5, '>= 1.0')])
def test_config_errors_name_file_and_field(field, value, problem):
    section = Section({'plausibility': {field: value}}, 'profiles/p.yaml', 'estimator')
    with pytest.raises(ConfigError) as error:
        EstimatorConfig.from_section(section)
    text = str(error.value)
    assert 'profiles/p.yaml' in text and f'estimator.plausibility.{field}' in text
    assert problem in text


def test_shipped_profiles_validate():
    for name, tolerance in (('lfp_16s.yaml', 0.3), ('nmc_96s.yaml', 1.0)):
        cfg = EstimatorConfig.from_section(profile(name).section('estimator')).plausibility
        assert cfg.enabled and cfg.pack_voltage_tolerance_v == tolerance


# ---------------------------------------------------------------------------------------------
# the estimator on a simulated LFP 16s pack with a stuck cell reading


STUCK_CELL = 5


def stuck_cell_run(enabled, fault_s=600.0, after_s=200.0, pre_s=30.0):
    """ECE-15 drive from 60 % SoC; cell 5 reads 3.80 V for ``fault_s``, then cleared.

    The estimator starts from the model's truth (as from a good state file), so what is
    measured is what the fault does. Returns rows (t_s, pack SoC, truth pack SoC, cell 5 SoC,
    truth cell 5 SoC) once per second, and the estimator.
    """
    prof = LFP
    cfg = EstimatorConfig.from_section(prof.section('estimator'))
    cfg = replace(cfg, plausibility=replace(cfg.plausibility, enabled=enabled))
    model = make_model(prof, initial_soc=0.6)
    est = PackEstimator(prof.pack.cell, prof.pack.cells_series, cfg)
    truth = model.truth()
    est.restore(truth['cell_soc'], truth['cell_capacity_ah'],
                0.02 * truth['cell_capacity_ah'], truth['cell_r0_ohm'])
    t, last = 0.0, None
    rows = []
    k = 0
    while t < pre_s + fault_s + after_s - 1e-6:
        if k == round(pre_s / STEP_S):
            model.inject_fault('stuck_cell_voltage', STUCK_CELL, 3.80)
        if k == round((pre_s + fault_s) / STEP_S):
            model.clear_fault('stuck_cell_voltage', STUCK_CELL)
        model.advance(STEP_S)
        k += 1
        t = k * STEP_S
        feed(est, model, t, last, prof)
        last = t
        if k % 10 == 0:
            e = est.estimate()
            truth = model.truth()
            z, _, _ = pack_soc(truth['cell_soc'], truth['cell_capacity_ah'])
            rows.append((t - pre_s, e.pack_soc, z, e.cell_soc[STUCK_CELL],
                         truth['cell_soc'][STUCK_CELL]))
    return np.array(rows), est


@pytest.fixture(scope='module')
def stuck_runs():
    return {enabled: stuck_cell_run(enabled) for enabled in (True, False)}


def test_stuck_cell_keeps_pack_soc_within_2_points_of_truth(stuck_runs):
    from bms_ros.core.estimation import stored_state
    rows, est = stuck_runs[True]
    error = rows[:, 1] - rows[:, 2]
    during = (rows[:, 0] > 0) & (rows[:, 0] <= 600.0)
    after = rows[:, 0] > 600.0
    assert np.max(np.abs(error[during])) < 0.02
    assert np.max(np.abs(error[after])) < 0.02
    # the stuck cell was counted: its SoC never left its truth by more than 1 point, and it
    # rejoined without a jump (at most 1 point per second after the clear)
    assert np.max(np.abs(rows[:, 3] - rows[:, 4])) < 0.01
    assert np.max(np.abs(np.diff(rows[after, 3]))) < 0.01
    # what would be persisted is the counted SoC
    doc = stored_state.document(est, 'test')
    assert abs(doc['cell_soc'][STUCK_CELL] - rows[-1, 4]) < 0.01
    summary = est.plausibility.summary()
    assert summary['checks']['cell_range']['counts'] == {STUCK_CELL: 1}
    assert summary['cells_held'] == []                   # rejoined after rejoin_s


def test_without_plausibility_the_stuck_cell_corrupts_pack_soc(stuck_runs):
    """The defect the checks fix: the pack follows the 3.80 V reading to ~100 %."""
    rows, _ = stuck_runs[False]
    error = rows[:, 1] - rows[:, 2]
    during = (rows[:, 0] > 0) & (rows[:, 0] <= 600.0)
    after = rows[:, 0] > 600.0
    assert np.max(error[during]) > 0.10
    assert np.max(error[after]) > 0.10


# ---------------------------------------------------------------------------------------------
# false flags on healthy simulated packs


def healthy_run(profile_name, scenario, duration_s):
    """Run a healthy pack through ``scenario``; (samples, flags, samples with a cell held)."""
    prof = profile(profile_name)
    n = prof.pack.cells_series
    c_a = prof.pack.capacity_ah
    changes = {}
    if scenario == 'drive':
        changes = dict(initial_soc=0.95)          # the profile's ECE-15 cycle, looped
    elif scenario == 'drive_low':
        changes = dict(initial_soc=0.2)           # ... into the low knee, weakest cell to 3 %
    elif scenario == 'charge_top':
        changes = dict(load=ConstantLoad(0.0), initial_soc=0.85)   # 0.5 C into the top knee
    elif scenario in ('steps', 'bleed', 'thermal', 'rest'):
        changes = dict(load=ConstantLoad(0.0), initial_soc=0.6)
    model = make_model(prof, **changes)
    runner = ChecksOnly(prof)
    rng = np.random.default_rng(5)
    t, last = 0.0, None
    held_samples = 0
    samples = 0
    while t < duration_s:
        if scenario == 'steps':
            # 3 C discharge / 1 C charge / rest, a step every 5 s
            phase = int(t // 5.0) % 4
            model.set_demand((-3.0, 0.0, 1.0, 0.0)[phase] * c_a)
        elif scenario == 'bleed':
            if int(t * 10) % 100 == 0:
                model.set_bleed(rng.random(n) < 0.5)
            model.set_demand((-1.0 if int(t // 60) % 2 else 0.0) * c_a)
        elif scenario == 'thermal':
            if t == 0.0:
                # ~0.6 degC/s in the middle cell: its R0 falls to a third as it heats
                model.inject_fault('thermal_event', n // 2, 500.0)
            model.set_demand(-1.0 * c_a)
        elif scenario in ('drive', 'drive_low') and float(np.min(model.soc)) < 0.03:
            break
        elif scenario == 'charge_top':
            if float(np.max(model.soc)) >= 1.0:
                break
            model.set_demand(0.5 * c_a)
        model.advance(STEP_S)
        t += STEP_S
        feed(runner, model, t, last, prof)
        last = t
        samples += 1
        held_samples += bool(runner.plausibility.summary()['cells_held']) if \
            samples % 10 == 0 else 0
    s = runner.plausibility.summary()
    return samples, s['flags'], held_samples, model


HEALTHY = [('lfp_16s.yaml', 'drive', 6 * 3600.0), ('nmc_96s.yaml', 'drive', 6 * 3600.0),
           ('lfp_16s.yaml', 'drive_low', 4 * 3600.0), ('nmc_96s.yaml', 'drive_low', 4 * 3600.0),
           ('lfp_16s.yaml', 'charge_top', 3600.0), ('nmc_96s.yaml', 'charge_top', 3600.0),
           ('lfp_16s.yaml', 'steps', 300.0), ('nmc_96s.yaml', 'steps', 300.0),
           ('lfp_16s.yaml', 'bleed', 300.0), ('nmc_96s.yaml', 'bleed', 300.0),
           ('lfp_16s.yaml', 'thermal', 120.0), ('nmc_96s.yaml', 'thermal', 120.0),
           ('lfp_16s.yaml', 'rest', 300.0)]


@pytest.mark.parametrize('profile_name,scenario,duration_s',
                         [h for h in HEALTHY if 'drive' not in h[1] and h[1] != 'charge_top'])
def test_healthy_pack_is_never_flagged(profile_name, scenario, duration_s):
    samples, flags, held, _ = healthy_run(profile_name, scenario, duration_s)
    assert samples >= duration_s / STEP_S - 1
    assert flags == 0 and held == 0


def main(scenarios=()):
    """Print the false-flag figures of every healthy scenario (or those named)."""
    print('| profile | scenario | simulated h | samples | flags | samples with a cell held |')
    print('|---|---|---|---|---|---|')
    for profile_name, scenario, duration_s in HEALTHY:
        if scenarios and scenario not in scenarios:
            continue
        started = time.perf_counter()
        samples, flags, held, model = healthy_run(profile_name, scenario, duration_s)
        print(f'| {profile_name} | {scenario} | {samples * STEP_S / 3600:.2f} | {samples} | '
              f'{flags} | {held} (of {samples // 10} looked at) | '
              f'min cell SoC {np.min(model.soc):.3f}, {time.perf_counter() - started:.0f} s wall')
        sys.stdout.flush()


if __name__ == '__main__':
    main(sys.argv[1:])


@pytest.mark.parametrize('profile_name,cell', [('lfp_16s.yaml', 3), ('nmc_96s.yaml', 40)])
def test_reading_frozen_at_its_present_value_is_flagged_stuck_in_a_drive(profile_name, cell):
    """The stuck fault with value 0 (the reading at injection): inside every range, no jump;
    the drive cycle moves the other cells and this reading does not.
    """
    prof = profile(profile_name)
    model = make_model(prof, initial_soc=0.6)
    runner = ChecksOnly(prof)
    t, last = 0.0, None
    flagged_at = None
    while t < 300.0:
        if abs(t - 20.0) < 1e-6:
            model.inject_fault('stuck_cell_voltage', cell, 0.0)
        model.advance(STEP_S)
        t = round(t + STEP_S, 6)
        usable, _ = feed(runner, model, t, last, prof)
        last = t
        stuck = runner.plausibility.summary()['checks']['cell_stuck']['flagged']
        if stuck and flagged_at is None:
            flagged_at = t
            assert not usable[cell]
        if flagged_at is not None and t > flagged_at + 10.0:
            break
    assert flagged_at is not None and flagged_at - 20.0 < 120.0, flagged_at
    summary = runner.plausibility.summary()
    assert summary['checks']['cell_stuck']['counts'] == {cell: 1}
    assert summary['cells_held'] == [cell]
    assert sum(c['count'] for name, c in summary['checks'].items() if name != 'cell_stuck') == 0
