"""The correlated model-error doubt of the voltage (issue 14 item 1: never worse than counting).

A persistent voltage error (polarisation, OCV table, a bias) divided by a flat OCV slope is a
large SoC error; as white noise the filter would re-count it every sample. The LFP cell file's
``estimator:`` section turns on the correlated doubt (``model_error_v``,
``polarisation_noise_per_c_v`` over ``polarisation_load_time_s``), so a fixed bias on the plateau
must not drag the count, while where the OCV is steep a wrong SoC is still corrected.
"""
import dataclasses
import math

import numpy as np
import pytest

from bms_ros.core.cell import CellSpec
from bms_ros.core.config import Section
from bms_ros.core.errors import ConfigError
from bms_ros.core.estimation import EstimatorConfig, PackEstimator
from bms_ros.core.estimation.estimator import cv_gap_ratio
from bms_ros.core.estimation.soc_filter import SLOW, VRC
from bms_ros.core.estimation.synthetic import EcmCells, drive_together
from bms_ros.core.profile import config_dir

NMC = f'{config_dir()}/cells/nmc_lg_m50.yaml'


def drive(t_s):
    """A drive-like load (per 1 C, - = discharge): 20 s at 0.6 C, 40 s stopped (0.2 C mean)."""
    return -0.6 if t_s % 60.0 < 20.0 else 0.0


def run_biased(cell, config, soc_true, soc_start, soc_std, bias_v, seconds, dt_s=2.0, seed=1):
    """Truth and estimator side by side, the measured voltage off by ``bias_v``; final SoC."""
    rng = np.random.default_rng(seed)
    truth = EcmCells(cell, [soc_true])
    est = PackEstimator(cell, 1, config)
    est.start_from_soc(soc_start, soc_std)
    t = 0.0
    for _ in range(int(seconds / dt_s)):
        t += dt_s
        i = drive(t) * cell.capacity_ah
        truth.step(dt_s, i)
        v = truth.voltage_v() + bias_v + rng.normal(0.0, 0.002, 1)
        est.step(t, i, v, [True], [25.0])
    return float(truth.soc[0]), float(est.filter.soc[0])


def test_lfp_cell_file_turns_it_on(lfp_config):
    assert lfp_config.model_error_v == pytest.approx(0.005)
    assert lfp_config.polarisation_noise_per_c_v == pytest.approx(1.2)
    assert lfp_config.polarisation_load_time_s == pytest.approx(120.0)
    assert lfp_config.relaxation_doubt_time_s == pytest.approx(3000.0)
    assert EstimatorConfig().model_error_v == 0.0          # other cells: unchanged


def test_flat_ocv_fixed_bias_does_not_drag(lfp, lfp_config):
    """LFP plateau (0.65 -> 0.55), the voltage 15 mV low all along, the count started right:
    with the correlated doubt the estimate stays with the count (measured 0.02 point off); as
    white noise (the defaults) the same bias drags it (measured 0.62 point in 30 min).
    """
    truth, est = run_biased(lfp, lfp_config, 0.65, 0.65, 0.02, -0.015, 1800.0)
    assert truth == pytest.approx(0.55, abs=1e-6)
    assert abs(est - truth) < 0.002
    truth_off, est_off = run_biased(lfp, EstimatorConfig(), 0.65, 0.65, 0.02, -0.015, 1800.0)
    assert truth_off == pytest.approx(truth)
    assert est_off - truth_off < -0.004


def test_steep_ocv_still_corrects_a_wrong_count(lfp_config):
    """Where the OCV is steep (NMC at 60-40 %) the same settings still let the voltage correct a
    count that started 8 points off with a 10 % doubt (a confident count), with a 15 mV bias
    on the voltage as well: within 3 points after an hour (measured 2.1; after 30 min 2.7).
    The price of the doubt: the defaults get there faster (measured 1.2 after 30 min).
    """
    nmc = CellSpec.from_file(NMC)
    truth, est = run_biased(nmc, lfp_config, 0.6, 0.68, 0.10, -0.015, 3600.0)
    assert truth == pytest.approx(0.4, abs=1e-6)
    assert abs(est - truth) < 0.03


def test_rest_doubts_the_relaxation_still_to_come(lfp, lfp_config):
    """At rest after a load the voltage still drifts: the filter's correlated doubt holds the
    relaxation still to come (V), none under load and none once the drift has settled.
    """
    truth = EcmCells(lfp, [0.5])
    est = PackEstimator(lfp, 1, lfp_config)
    est.start_from_soc(0.5, 0.02)
    t = 0.0
    doubts = []
    for k in range(900):
        t += 1.0
        i = -lfp.capacity_ah if k < 300 else 0.0
        truth.step(1.0, i)
        est.step(t, i, truth.voltage_v(), [True], [25.0])
        doubts.append(float(est.filter.relaxation_doubt_v[0]))
        if k == 330:
            anchor_early_v = float(est.relaxation_v()[0])
    assert max(doubts[:300]) == 0.0                        # under load: none
    # from the rest's start (the low-passes still settling), not only after 120 s; the
    # anchor's correction still waits for settled low-passes
    assert doubts[300 + 30] > 0.02                        # measured 0.067 V
    assert anchor_early_v == 0.0
    # 150 s into the rest the truth's RC (30 s) is still relaxing: the drift x 3000 s
    # (relaxation_doubt_time_s) is measured 0.10 V
    assert 0.05 < doubts[300 + 150] < 0.2
    # 10 min later: settled, below the rest's OCV noise (rest_ocv_noise_v, 3 mV; measured
    # 2.2 mV: the 120 s slow low-pass, 0.4 x relaxation_time_s, still holds exp(-5) of the
    # rest's start)
    assert doubts[-1] < 0.03 * doubts[300 + 150]
    assert doubts[-1] < 0.003


def test_knee_doubt_holds_for_an_unsure_count(lfp, lfp_config):
    """In the knee (OCV slope >= polarisation_knee_slope_v, 1 V per unit: below ~20 %) the
    loaded voltage's 100 mV of polarisation the model lacks is doubted however unsure the count
    (a given SoC, 25 % doubt): 20 % -> 11 % at 0.5 C, measured 1.0 point low; without it
    (polarisation_knee_slope_v 0) the voltage drags it 3.6 points low. The start's range prior
    is off here (it would make the given SoC a confident point itself).
    """
    base = dataclasses.replace(lfp_config, startup_polarisation_max=0.0)
    assert base.polarisation_knee_slope_v == pytest.approx(1.0)
    errors = []
    for config in (base, dataclasses.replace(base, polarisation_knee_slope_v=0.0)):
        truth = EcmCells(lfp, [0.2])
        est = PackEstimator(lfp, 1, config)
        est.start_from_soc(0.2, 0.25)
        for k in range(900):
            loaded = k >= 300                       # 5 min of idle (0.05 C), then 0.5 C
            i = (-0.5 if loaded else -0.05) * lfp.capacity_ah
            truth.step(1.0, i)
            est.step(k + 1.0, i, truth.voltage_v() - (0.1 if loaded else 0.0), [True], [25.0])
        errors.append(float(est.filter.soc[0] - truth.soc[0]))
    assert abs(errors[0]) < 0.02
    assert errors[1] < -0.025


def test_knee_reads_no_voltage_beyond_the_model_in_the_currents_direction(lfp, lfp_config):
    """In the knee under discharge a voltage below the model's (the depleted surface's
    polarisation: any size) moves nothing; one above it (the SoC must be higher) still does.
    """
    from bms_ros.core.estimation.soc_filter import SocFilter
    moved = []
    for offset_v in (-0.3, +0.05):
        f = SocFilter(lfp, 1, lfp_config)
        f.initialise(0.12, 0.2, from_ocv=False)
        i = -0.5 * lfp.capacity_ah
        r0 = lfp.r0_ohm
        for _ in range(50):
            f.predict(2.0, i, 25.0)
            v = f.predicted_voltage(i, 25.0, r0) + offset_v
            f.update(v, i, 25.0, r0, [True])
        moved.append(float(f.soc[0]) - (0.12 + 50 * 2.0 * i / 3600.0 / lfp.capacity_ah))
    assert abs(moved[0]) < 1e-9
    assert moved[1] > 0.005


@pytest.mark.parametrize('field,value,problem', [
    ('model_error_v', -0.01, '>= 0.0'),
    ('model_error_v', 2.0, '<= 1.0'),
    ('polarisation_load_time_s', -1.0, '>= 0.0'),
    ('relaxation_doubt_time_s', -1.0, '>= 0.0'),
    ('polarisation_knee_slope_v', -1.0, '>= 0.0'),
    ('startup_polarisation_max', 200.0, '<= 100.0'),
    ('stop_band_v', -0.01, '>= 0.0'),
    ('stop_time_s', 0.0, '> 0.0'),
    ('stop_band_max_slope_v', 0.0, '> 0.0'),
])
def test_bad_values_are_rejected(field, value, problem):
    with pytest.raises(ConfigError) as info:
        EstimatorConfig.from_section(Section({field: value}, 'cell.yaml', 'estimator'))
    assert f'estimator.{field}' in str(info.value)
    assert problem in str(info.value)


def test_surface_doubt_follows_the_ocv_bend():
    """measurement_noise.surface_doubt_v: nothing at rest or where the OCV is straight, the OCV's
    bend over the surface-to-bulk SoC difference under load (a knee: tens to hundreds of mV),
    on the side the current moves the surface (below the bulk discharging).
    """
    from bms_ros.core.estimation.measurement_noise import SPHERE_SURFACE_RATIO, surface_doubt_v
    cell = CellSpec.from_file(f'{config_dir()}/cells/nmc532_mohtat2020.yaml')
    config = EstimatorConfig(surface_soc_doubt=1.0)
    soc = np.array([0.5, 0.5, 0.1, 0.1, 0.02])
    current = np.array([0.0, -5.0, -5.0, 5.0, -5.0]) * cell.capacity_ah / 5.0
    temp = np.full(5, 25.0)
    ocv = cell.ocv.ocv(soc, temp)
    slope = cell.ocv.secant_slope(soc, 0.01)
    doubt = surface_doubt_v(cell, config, soc, ocv, slope, current, temp)
    dz = SPHERE_SURFACE_RATIO * config.diffusion_time_s / 3600.0 * 1.0     # 1 C
    assert dz == pytest.approx(0.112, abs=0.001)
    assert doubt[0] == 0.0
    # exactly the linearisation error of the OCV over dz, beyond the table's end the OCV
    # extrapolated with the end's 2 % secant
    step = np.sign(current) * dz
    surface = soc + step
    end = (cell.ocv.ocv(0.02, 25.0) - cell.ocv.ocv(0.0, 25.0)) / 0.02
    surface_ocv = np.where(surface < 0.0, cell.ocv.ocv(0.0, 25.0) + end * surface,
                           cell.ocv.ocv(surface, temp))
    expected = np.abs(surface_ocv - ocv - slope * step)
    assert doubt == pytest.approx(expected, abs=1e-9)
    # an emptied surface: far more than the table's bend down to its end (the cut-off's drop)
    clipped = np.clip(surface, 0.0, 1.0) - soc
    inside = np.abs(cell.ocv.ocv(soc + clipped, temp) - ocv - slope * clipped)
    assert doubt[4] > 2.0 * inside[4] and doubt[4] > 0.5
    assert doubt[1] < 0.03                  # mid SoC: the OCV is nearly straight over 11 %
    assert doubt[2] > 0.1                   # discharging, the surface reaches the knee first
    assert doubt[3] < 0.5 * doubt[2]        # charging, it moves away from it
    off = surface_doubt_v(cell, EstimatorConfig(surface_soc_doubt=0.0), soc, ocv, slope, current,
                          temp)
    assert np.all(off == 0.0)               # 0: off


@pytest.mark.parametrize('doubt,moved_max,moved_min', [(None, 0.001, 0.0), (0.0, 1.0, 0.002)])
def test_knee_under_load_does_not_pull_the_soc_by_default(doubt, moved_max, moved_min):
    """The default (surface_soc_doubt 1): at the empty knee under 1 C (Mohtat2020, SoC 0.1) a
    voltage 50 mV below the model for 60 s moves the SoC by less than 0.1 point; with the doubt
    off the same voltage pulls it by more than 0.2 (measured 0.34; the DFN's knee: -4 points at
    10 degC).
    """
    cell = CellSpec.from_file(f'{config_dir()}/cells/nmc532_mohtat2020.yaml')
    config = EstimatorConfig() if doubt is None else EstimatorConfig(surface_soc_doubt=doubt)
    truth = EcmCells(cell, [0.1])
    est = PackEstimator(cell, 1, config)
    est.start_from_soc(0.1, 0.01)
    drive_together(est, truth, -cell.capacity_ah, 60, bias_v=-0.05)
    moved = abs(float(est.filter.soc[0] - truth.soc[0]))
    assert moved_min <= moved < moved_max


def _cv_step_soc(cell, held, held_s=3000.0):
    """SoC after one step of a constant-voltage taper (at the charge limit, 0.2 C falling from a
    recent 0.5 C, the limit held for held_s) with the slow pair holding 30 mV.
    """
    est = PackEstimator(cell, 1, dataclasses.replace(EstimatorConfig(), cv_surface_held=held))
    est.start_from_soc(0.93, 0.02)
    v_max = cell.limits.voltage_max_v
    est.step(0.0, 0.5 * cell.capacity_ah, [v_max], [True], [25.0])
    est.filter.x[:, SLOW] = 0.03                    # the slow pair holds 30 mV
    est.recent_current_a[:] = 0.5 * cell.capacity_ah
    est._cv_s[:] = held_s
    est.step(1.0, 0.2 * cell.capacity_ah, [v_max], [True], [25.0])
    return float(est.filter.soc[0])


def test_constant_voltage_holds_the_surface():
    """In a CV taper the held surface's gap is 15 / pi^2 of the slow pair's: the voltage is read
    with that much more polarisation, so as a lower SoC; off, as before.
    """
    cell = CellSpec.from_file(f'{config_dir()}/cells/nmc_lg_m50.yaml')
    on, off = _cv_step_soc(cell, True), _cv_step_soc(cell, False)
    assert on < off - 1e-4
    # the surface just held still has the constant flux's profile: (almost) no change yet
    assert abs(_cv_step_soc(cell, True, held_s=0.0) - off) < 0.1 * (off - on)


def test_held_surface_gap_ramps_to_the_first_mode():
    """A sphere's gap per flux after its surface is held: the constant flux's at 0, 15 / pi^2
    of it once the higher modes have decayed (R^2 / D), rising in between.
    """
    ratio = cv_gap_ratio(np.array([0.0, 0.01, 0.05, 0.2, 1.0]), 1.0)
    assert ratio[0] == pytest.approx(1.0, abs=0.02)
    assert ratio[-1] == pytest.approx(15.0 / math.pi ** 2, rel=1e-6)
    assert np.all(np.diff(ratio) > 0.0)


def _held_charge_error(cell, config, seconds=3600.0, dt_s=4.0):
    """SoC error (estimate - truth) after a 0.5 C charge held for ``seconds`` from 30 %, the
    measured voltage above the 1-RC truth by a polarisation still building beyond the model's
    pairs (0 -> 20 mV over the hour, as the DFN's under a CC charge).
    """
    truth = EcmCells(cell, [0.3])
    est = PackEstimator(cell, 1, config)
    est.start_from_soc(0.3, 0.01)
    current = 0.5 * cell.capacity_ah
    t = 0.0
    for _ in range(int(seconds / dt_s)):
        t += dt_s
        truth.step(dt_s, current)
        est.step(t, current, truth.voltage_v() + 0.02 * min(t / 3600.0, 1.0), [True], [25.0])
    return float(est.filter.soc[0] - truth.soc[0])


def test_a_held_current_counts_its_model_error_once_per_slow_time():
    """Under a current held beyond diffusion_time_s the per-C model error is one error per
    diffusion_time_s, not one per sample (where the count is sure): a CC charge's unmodelled
    polarisation still building (20 mV over an hour) is not read as SoC (before: +0.9 points;
    -0.2 with it).
    """
    cell = CellSpec.from_file(NMC)
    on = _held_charge_error(cell, EstimatorConfig())
    off = _held_charge_error(cell, dataclasses.replace(EstimatorConfig(),
                                                       held_load_correlated=False))
    assert off > 0.006
    assert abs(on) < 0.5 * off
    # the noise itself: held at 0.5 C, variance + (diffusion_time_s / dt - 1) (k I)^2 where the
    # count is sure; a current that stepped recently, one at rest current or a count unsure
    # (count_var at polarisation_count_std^2: a wrong start) keeps its noise
    est = PackEstimator(cell, 4, EstimatorConfig())
    cfg = est.config
    est._held_s[:] = cfg.diffusion_time_s + 1.0
    est._held_s[1] = 10.0
    est.filter.doubt.count_var[:] = [0.0, 0.0, 0.0, cfg.polarisation_count_std ** 2]
    current = np.array([0.5, 0.5, 0.01, 0.5]) * cell.capacity_ah
    noise = np.full(4, 0.08)
    out = est._held_load_noise_v(noise, current, 4.0)
    expected = math.sqrt(0.08 ** 2 + (cfg.diffusion_time_s / 4.0 - 1.0)
                         * (cfg.voltage_noise_per_c_v * 0.5) ** 2)
    np.testing.assert_allclose(out, [expected, 0.08, 0.08, 0.08], rtol=1e-12)


def test_rest_anchor_reads_what_the_pairs_still_hold():
    """After a discharge a rest anchor (no relaxation_time_s) reads v - v_rc - v_diff as OCV:
    a cell still relaxing as the model's pairs say is read at its OCV (before: v itself, the
    SoC 0.7 point low); the pairs' voltage only the way the rest relaxes, none without a load
    sign, with relaxation_time_s (the drift reads it there) or switched off.
    """
    cell = CellSpec.from_file(NMC)
    cfg = dataclasses.replace(EstimatorConfig(), rest_time_s=300.0)
    truth = EcmCells(cell, [0.6])
    est = PackEstimator(cell, 1, cfg)
    est.start_from_soc(0.6, 0.005)
    current = -0.5 * cell.capacity_ah
    t = 0.0
    for _ in range(300):
        t += 2.0
        truth.step(2.0, current)
        est.step(t, current, truth.voltage_v(), [True], [25.0])
    est.filter.x[:, SLOW] = -0.012        # a diffusion tail the 1-RC truth lacks
    anchors = est.anchors
    while est.anchors == anchors:
        t += 2.0
        truth.step(2.0, 0.0)
        pairs = est.filter.x[:, VRC] + est.filter.x[:, SLOW]
        est.step(t, 0.0, truth.voltage_v() - truth.v_rc_v + pairs, [True], [25.0])
    assert est.filter.soc[0] == pytest.approx(truth.soc[0], abs=0.002)
    # the sign and the switches
    est.filter.x[:, VRC] = 0.0
    est.filter.x[:, SLOW] = -0.004
    est.rest.load_sign = -1.0
    assert est._pairs_left_v()[0] == pytest.approx(0.004)
    est.rest.load_sign = 1.0               # after a charge the voltage falls: no rise to come
    assert est._pairs_left_v()[0] == 0.0
    est.rest.load_sign = 0.0
    assert est._pairs_left_v()[0] == 0.0
    for changed in ({'rest_anchor_reads_pairs': False}, {'relaxation_time_s': 300.0}):
        other = PackEstimator(cell, 1, dataclasses.replace(cfg, **changed))
        other.filter.x[:, SLOW] = -0.004
        other.rest.load_sign = -1.0
        assert other._pairs_left_v()[0] == 0.0


def _capacity_after_a_rest_the_pairs_overstate(config, rest_s=1200.0, dt_s=2.0):
    """Capacity error of a discharge 90 -> 40 % at 0.5 C between two rests on the 1-RC truth,
    the slow pair set to 15 mV at the second rest's start (a relaxation the truth lacks: a
    cold rest after a knee that relaxed at once, while the model's pair held it).
    """
    cell = CellSpec.from_file(NMC)
    truth = EcmCells(cell, [0.9])
    est = PackEstimator(cell, 1, config)
    t = 0.0
    est.step(t, 0.0, truth.voltage_v(), [True], [25.0])      # a start at rest: an anchor
    current = -0.5 * cell.capacity_ah
    while truth.soc[0] > 0.4:
        t += dt_s
        truth.step(dt_s, current)
        est.step(t, current, truth.voltage_v(), [True], [25.0])
    est.filter.x[:, SLOW] = -0.015
    for _ in range(int(rest_s / dt_s)):
        t += dt_s
        truth.step(dt_s, 0.0)
        est.step(t, 0.0, truth.voltage_v(), [True], [25.0])
    t += dt_s
    truth.step(dt_s, current)                                   # the load again: the rest ends
    est.step(t, current, truth.voltage_v(), [True], [25.0])
    return float(est.capacity.capacity_ah[0] / cell.capacity_ah - 1.0)


def test_a_rests_capacity_reading_waits_for_the_relaxation_the_pairs_overstate():
    """With capacity_rest_s the rest's capacity anchor is read at the rest's end (or at that
    time at rest), the pairs' voltage decayed as the model relaxes it since the SoC anchor:
    a pair that overstates the relaxation (15 mV the truth lacks) moves the capacity less
    (here +0.56 % -> +0.07 %, and +0.03 % read at the rest's end; Mohtat2020 faded_10c +5.6 ->
    +0.8 %). A rest that ends first reads its capacity then; without the option the SoC
    anchor reads both at rest_time_s.
    """
    base = dataclasses.replace(EstimatorConfig(), rest_time_s=300.0, capacity_rest_s=0.0)
    at_once = _capacity_after_a_rest_the_pairs_overstate(base)
    waited = _capacity_after_a_rest_the_pairs_overstate(
        dataclasses.replace(base, capacity_rest_s=900.0))
    ended = _capacity_after_a_rest_the_pairs_overstate(
        dataclasses.replace(base, capacity_rest_s=3600.0))     # the rest ends at 1200 s
    assert at_once > 0.004
    assert abs(waited) < 0.3 * at_once
    assert abs(ended) < 0.3 * at_once


def _stops_read_low_rmse(config, seconds=1800.0, dt_s=4.0, tail_v=0.03):
    """SoC RMSE (estimate - truth) over a drive of 60 s at 1 C and 60 s stops from 70 %, each
    stop's voltage below the 1-RC truth by a relaxation the model's pairs lack (30 mV decaying
    over 300 s, as the DFN's in the cold), the count started sure to 1 %.
    """
    cell = CellSpec.from_file(NMC)
    truth = EcmCells(cell, [0.7])
    est = PackEstimator(cell, 1, config)
    est.start_from_soc(0.7, 0.01)
    t, errors = 0.0, []
    while t < seconds:
        t += dt_s
        stopped_s = t % 120.0 - 60.0
        current = 0.0 if stopped_s >= 0.0 else -cell.capacity_ah
        truth.step(dt_s, current)
        tail = tail_v * math.exp(-stopped_s / 300.0) if stopped_s >= 0.0 else 0.0
        est.step(t, current, truth.voltage_v() - tail, [True], [25.0])
        errors.append(est.filter.soc[0] - truth.soc[0])
    return math.sqrt(float(np.mean(np.square(errors))))


def test_the_slow_error_is_doubted_at_a_stop():
    """The model's slow error under the recent load (diffusion_noise_per_c_v x |I| low-passed
    over diffusion_time_s) is part of every voltage's doubt, at a stop too, where the per-C term
    is gone: stops that read a relaxation beyond the pairs drag the SoC less (0.44 -> 0.32
    points RMSE here; on the matrix M50 wrong_mid_10c 1.83 / 5.55 -> 1.59 / 4.76 %).
    """
    # R1 held at the datasheet's: with r1_follows_r0 the stops' 30 mV step also teaches R0 (and
    # so R1) a larger value that explains part of the tail, which is not what this test is about
    base = dataclasses.replace(EstimatorConfig(), r1_follows_r0=False)
    on = _stops_read_low_rmse(base)
    off = _stops_read_low_rmse(dataclasses.replace(base, slow_error_in_noise=False))
    assert off > 0.003
    assert on < 0.8 * off
    # the noise itself: at rest after a load, hypot(voltage_noise_v, k x recent |I| / 1 C)
    cell = CellSpec.from_file(NMC)
    est = PackEstimator(cell, 1, EstimatorConfig())
    est.start_from_soc(0.5, 0.01)
    seen = []
    update = est.filter.update

    def spy(*args, **kwargs):
        seen.append(np.array(kwargs['noise_v'], dtype=float))
        return update(*args, **kwargs)

    est.filter.update = spy
    est.step(0.0, 0.0, cell.ocv.ocv(np.array([0.5]), 25.0), [True], [25.0])
    est.recent_current_a[:] = 0.5 * cell.capacity_ah
    est.step(4.0, 0.0, cell.ocv.ocv(np.array([0.5]), 25.0), [True], [25.0])
    cfg = est.config
    recent_c = est.recent_current_a[0] / cell.capacity_ah     # decayed over the 4 s step
    assert 0.49 < recent_c < 0.5
    assert seen[-1][0] == pytest.approx(math.hypot(cfg.voltage_noise_v,
                                                   cfg.diffusion_noise_per_c_v * recent_c),
                                        rel=1e-9)
