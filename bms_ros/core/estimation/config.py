"""The validated ``estimator:`` section of a profile (its defaults are estimate_csv's tuning)."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..config import Section
from ..plausibility import PlausibilityConfig

if TYPE_CHECKING:
    from ..profile import Profile


@dataclass(frozen=True)
class Derating:
    """Current-limit factors (0..1) against cell temperature, linear in between, held outside."""

    temperature_degc: tuple[float, ...] = ()
    charge_factor: tuple[float, ...] = ()
    discharge_factor: tuple[float, ...] = ()

    def factors(self, temperature_degc: ArrayLike
                ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(charge, discharge) factors for an array of temperatures (degC); 1 without a table."""
        t = np.asarray(temperature_degc, dtype=float)
        if not self.temperature_degc:
            return np.ones_like(t), np.ones_like(t)
        return (np.interp(t, self.temperature_degc, self.charge_factor),
                np.interp(t, self.temperature_degc, self.discharge_factor))


@dataclass(frozen=True)
class EstimatorConfig:
    """Filter tuning, rest detection, state of power, publishing and persistence settings.

    Noise values are standard deviations. ``_c`` is a fraction of one cell's 1 C current (A per
    Ah of nominal capacity), so one tuning fits any cell size. The defaults are the single tuning
    validated against PyBaMM (docs/estimation.md); profiles change only what is pack-specific.
    """

    # --- SoC filter: EKF on the cell's 1-RC model plus a learnt slow (diffusion) RC
    voltage_noise_v: float = 0.010             # voltage noise at rest: sensor + OCV table
    voltage_noise_per_c_v: float = 0.150       # + ECM error per 1 C of present |I| (correlated: it
                                               # persists over the slow RC, so it is large)
    diffusion_time_s: float = 300.0            # time constant of the slow RC
    held_load_correlated: bool = True          # under a current held beyond diffusion_time_s the
                                               # per-C error counts once per diffusion_time_s
    cv_surface_held: bool = True               # in a constant-voltage taper the slow pair holds
                                               # 15/pi^2 of its voltage (a held surface's gap)
    diffusion_resistance_ratio: float = 1.0    # its initial resistance / the cell's r1_ohm
    initial_diffusion_resistance_std: float = 1.0      # relative to that initial value
    diffusion_resistance_noise_per_sqrt_s: float = 1.0e-4   # random walk, relative to r1_ohm
    diffusion_noise_per_c_v: float = 0.020    # model error left, per 1 C of recent |I|
    slow_error_in_noise: bool = True           # that error is part of every voltage's doubt
                                               # (at a stop too, where the per-C term is 0)
    surface_soc_doubt: float = 1.0             # the OCV's bend between bulk and surface SoC under
                                               # load is doubted, surface SoC this x a sphere's
                                               # (measurement_noise.surface_doubt_v; 0: off, 1:
                                               # the sphere's; see docs, "The empty knee")
    sop_residual: bool = True                  # the limits hold the voltage the model leaves
                                               # unexplained now (low-passed over tau1), on
                                               # the side that takes margin
    current_noise_c: float = 0.002             # current sensor noise per sample
    soc_noise_per_sqrt_s: float = 2.0e-5       # random walk of SoC (coulomb counting error)
    rc_voltage_noise_v_per_sqrt_s: float = 2.0e-4
    initial_soc_std: float = 0.25              # doubt of a given SoC (estimate_csv --initial-soc)
    restored_soc_std: float = 0.05             # doubt of a persisted SoC after a restart
    restored_soc_std_per_day: float = 0.002    # + this per day since it was saved
    initial_load_c: float = 1.0                # RC voltages at start: what this load may leave
    startup_polarisation_max: float = 0.0      # > startup_polarisation: the share may be anywhere
                                               # up to this; the start's SoC covers that range
    startup_polarisation: float = 0.0          # a start under load: this share of the settled
                                               # RC polarisation is assumed (0: only R0 i)
    update_iterations: int = 2                 # iterated EKF: relinearisations of the OCV
    # unmodelled polarisation (diffusion) as a correlated voltage doubt where the count is sure
    # (measurement_noise.CorrelatedDoubt.noise2); 0 = off by default (NMC/NCA unchanged); the
    # LFP cell file's estimator: section turns it on (docs/estimation.md, "Never worse than
    # counting")
    polarisation_noise_per_c_v: float = 0.0    # its size per 1 C of the low-passed |I|
    polarisation_time_s: float = 600.0         # that low-pass; the error's correlation time
    polarisation_count_std: float = 0.15       # count SoC doubt at which the doubt is gone
    polarisation_anchor_doubt_v: float = 0.02  # an OCV start/anchor is this sure (hysteresis)
    polarisation_load_time_s: float = 0.0      # low-pass of |I| for its size (0: the one above)
    model_error_v: float = 0.0                 # + this floor (V) at any current (OCV table, bias)
    polarisation_knee_slope_v: float = 0.0     # OCV slope (V per unit SoC) from which the doubt
                                               # holds however unsure the count and a loaded
                                               # voltage beyond the model in the current's
                                               # direction is not read (0: never)
    # --- current-sensor offset: a consider-state of the filter, measured at zero current
    initial_current_offset_std_c: float = 0.005
    zero_current_calibration: bool = True      # node: contactors open -> current is the offset
    zero_current_time_s: float = 30.0          # low-pass of that offset measurement
    rest_current_calibration: bool = True      # a rest's mean current is the offset
    # --- the cell file's OCV hysteresis (estimation.hysteresis), when it has one
    hysteresis_doubt: float = 0.5              # its half gap known to this share of its value
    hysteresis_rate_factor: float = 4.0        # ... its rate within this factor (1: exactly)
    # --- capacity from OCV anchors and the charge counted between them
    estimate_capacity: bool = True
    initial_capacity_std: float = 0.10         # relative, when starting from the datasheet
    capacity_fade_std: float = 0.20            # ... its doubt below the datasheet, for a cell
                                               # of unknown age (soh.CapacityEstimator._prior_var)
    capacity_noise_per_sqrt_s: float = 2.0e-6  # ageing random walk, relative
    capacity_min_delta_soc: float = 0.3        # anchors closer than this give no capacity
    capacity_min_ratio: float = 0.5            # plausible window: 0.5..1.2 x nominal
    capacity_max_ratio: float = 1.2
    # --- capacity from SoC pairs of the filter (no rest needed): points where the filter's SoC
    # is this sure and the OCV this steep (V per unit SoC, never LFP's plateau), this far apart
    capacity_from_pairs: bool = True
    capacity_pair_soc_std: float = 0.02
    capacity_pair_min_slope_v: float = 0.4
    capacity_pair_min_delta_soc: float = 0.2
    capacity_pair_max_current_c: float = 0.5   # |I| above: the ECM error is in the SoC
    capacity_pair_soc_min: float = 0.15        # outside this window (the knees, where LFP is
    capacity_pair_soc_max: float = 0.95        # steep) the model's SoC under load misleads
    # --- capacity from the voltage during a discharge (joint EKF, Plett 2004): the filter's
    # voltage updates may move capacity_inverse where the pairs' gates hold (slope, current,
    # SoC window); the model error's correlation time thins the information (soc_filter)
    capacity_joint: bool = True
    capacity_joint_correlation_s: float = 10.0   # voltage model error correlated this long
    # --- ohmic resistance (recursive least squares on dV/dI at current steps)
    r0_forgetting: float = 0.995               # per informative sample
    r0_min_step_c: float = 0.1                 # |dI| below this carries no R0 information
    r0_surface_doubt: float = 1.0              # a step's dV/dI also holds OCV slope x the surface
                                               # SoC's short-time jump (a sphere's, 1; 0: off):
                                               # doubted, so the knees do not teach R0
    r0_min_ratio: float = 0.3                  # plausible window: 0.3..5 x datasheet R0
    r0_max_ratio: float = 5.0
    # --- temperature law of the resistances (resistance.TemperatureLaw): ln R0 against 1/T
    r0_law_learn: bool = True                  # off: the cell file's r0_arrhenius_k only
    r0_law_forgetting: float = 0.9995          # per R0 sample (~2000 samples of memory)
    r0_law_min_span_degc: float = 5.0          # std of the sample temperatures before the fit
                                               # replaces the datasheet slope
    r0_law_noise: float = 0.1                  # ln-noise of one 1 C sample (relative R0 error)
    r0_law_activation_std_k: float = 2000.0    # prior doubt of the datasheet Ea/R (K)
    r0_law_activation_min_k: float = 0.0       # bounds of the fitted Ea/R (K)
    r0_law_activation_max_k: float = 12000.0
    r1_follows_r0: bool = True                 # R1 scaled by learnt R0 / datasheet R0
    tau1_follows_temperature: bool = True      # tau1 scaled like R1 by the temperature law (the
                                               # pair's capacitance held): see docs
    # --- rest detection and re-anchoring from OCV
    rest_current_c: float = 0.02               # |I| (offset-corrected) below this is rest
    rest_time_s: float = 300.0                 # rest this long before re-anchoring from OCV
    rest_ocv_noise_v: float = 0.003            # OCV noise at rest (relaxation left, hysteresis)
    rest_anchor_reads_pairs: bool = True       # a rest anchor (no relaxation_time_s) reads
                                               # v - v_rc - v_diff, the way the rest relaxes
    anchor_soc_std_min: float = 0.05           # at an anchor the filter's SoC is doubted at least
                                               # this much, so OCV wins where its slope allows
    startup_anchor: bool = True                # a start at rest current reads SoC from OCV
    relaxation_time_s: float = 0.0             # rest anchor: relaxation left = drift x this
                                               # (0: the voltage at rest_time_s is OCV)
    relaxation_doubt_time_s: float = 0.0       # at rest the voltage's doubt = drift x this
                                               # (0 or less: relaxation_time_s)
    capacity_rest_s: float = 900.0             # a rest's capacity anchor waits for its end, at
                                               # most this long at rest (s; 0 or up to
                                               # rest_time_s: at its SoC anchor); docs, "A
                                               # rest's capacity reading waits"
    # --- end of charge: at the cut-off voltage with the CV current tapered to this, SoC is 1
    stop_band_v: float = 0.0                   # a stop: OCV within this of the voltage (0: off)
    stop_time_s: float = 20.0                  # ... after this long at rest current
    stop_band_max_slope_v: float = 1.0         # ... where the OCV is no steeper (the knee's tail)
    stop_band_reads_relaxation: bool = True    # ... widened the way it relaxes by the drift's
                                               # relaxation still to come
    full_charge_anchor: bool = False           # off until checked on the matrix test half
    full_charge_current_c: float = 0.05        # C/20, where a CC-CV charge ends
    full_charge_voltage_margin_v: float = 0.015   # within this of limits.voltage_max_v
    full_charge_soc_std: float = 0.01          # doubt of "full" (a charger's taper, sampling)
    # --- state of power (Plett 2004), magnitudes >= 0
    horizon_short_s: float = 2.0
    horizon_long_s: float = 10.0
    soc_limit_min: float = 0.0                 # no discharge below, no charge above
    soc_limit_max: float = 1.0
    derating: Derating = field(default_factory=Derating)
    # --- node
    publish_rate_hz: float = 1.0               # battery_state and estimate
    measurement_timeout_s: float = 2.0         # measurements older than this are stale
    max_step_s: float = 30.0                   # longer gap: SoC doubt grows, anchor dropped
    persist_period_s: float = 60.0
    status_current_threshold_a: float = 0.5    # |I| below: not charging / full (pack A)
    full_soc: float = 0.98                     # pack SoC at or above, idle: FULL
    bleed_resistance_ohm: float = 33.0         # per cell; must equal balancing.bleed_resistance_ohm
    # --- measurement plausibility (bms_ros.core.plausibility): implausible cells are counted
    plausibility: PlausibilityConfig = field(default_factory=PlausibilityConfig)

    @classmethod
    def for_profile(cls, profile: Profile) -> EstimatorConfig:
        """A pack's settings, as the node, the offline bag replay and the fleet replay take
        them: the cell file's own ``estimator:`` section (the chemistry's tuning,
        docs/estimation.md) with the profile's ``estimator:`` fields on top, field by field.
        Each file is validated alone first, so an error names the file the value is in.
        """
        return cls.for_cell(profile.section('estimator'), profile.pack.cell_single.path)

    @classmethod
    def for_cell(cls, mine: Section, cell_path: str) -> EstimatorConfig:
        """The ``estimator:`` Section ``mine`` (a profile's) on top of the cell file's own."""
        cell = cell_estimator_section(cell_path) if cell_path else None
        if cell is None:
            return cls.from_section(mine)
        cls.from_section(cell)
        cls.from_section(mine)
        return cls.from_section(Section({**cell.data, **mine.data}, mine.path, mine.prefix))

    @classmethod
    def from_section(cls, section: Section) -> EstimatorConfig:
        """Validate a profile ``config.Section`` (unknown fields, types, bounds); raises
        ConfigError naming file and field.
        """
        section.reject_unknown([f.name for f in fields(cls)])
        d = cls()
        kw: dict[str, Any] = {}

        def num(name: str, **bounds: Any) -> None:
            kw[name] = section.number(name, getattr(d, name), **bounds)

        def flag(name: str) -> None:
            kw[name] = section.boolean(name, getattr(d, name))

        for name in ('voltage_noise_v', 'rest_ocv_noise_v', 'initial_soc_std', 'restored_soc_std',
                     'anchor_soc_std_min',
                     'initial_current_offset_std_c', 'initial_capacity_std',
                     'capacity_fade_std', 'capacity_pair_soc_std'):
            num(name, exclusive_minimum=0.0, maximum=1.0)
        for name in ('voltage_noise_per_c_v', 'diffusion_noise_per_c_v', 'current_noise_c',
                     'soc_noise_per_sqrt_s', 'rc_voltage_noise_v_per_sqrt_s',
                     'diffusion_resistance_noise_per_sqrt_s', 'capacity_noise_per_sqrt_s',
                     'rest_current_c'):
            num(name, minimum=0.0, maximum=1.0)
        for name in ('diffusion_time_s', 'zero_current_time_s', 'rest_time_s',
                     'measurement_timeout_s', 'persist_period_s'):
            num(name, exclusive_minimum=0.0, maximum=1e6)
        num('diffusion_resistance_ratio', minimum=0.0, maximum=100.0)
        num('initial_diffusion_resistance_std', minimum=0.0, maximum=10.0)
        num('initial_load_c', minimum=0.0, maximum=10.0)
        num('surface_soc_doubt', minimum=0.0, maximum=10.0)
        num('hysteresis_doubt', minimum=0.0, maximum=10.0)
        num('hysteresis_rate_factor', minimum=1.0, maximum=100.0)
        num('startup_polarisation', minimum=0.0, maximum=1.0)
        num('startup_polarisation_max', minimum=0.0, maximum=100.0)
        num('restored_soc_std_per_day', minimum=0.0, maximum=1.0)
        num('relaxation_time_s', minimum=0.0, maximum=1e5)
        num('relaxation_doubt_time_s', minimum=0.0, maximum=1e6)
        num('capacity_rest_s', minimum=0.0, maximum=1e6)
        num('polarisation_noise_per_c_v', minimum=0.0, maximum=10.0)
        num('polarisation_time_s', exclusive_minimum=0.0, maximum=1e5)
        num('polarisation_count_std', exclusive_minimum=0.0, maximum=1.0)
        num('polarisation_anchor_doubt_v', minimum=0.0, maximum=1.0)
        num('polarisation_load_time_s', minimum=0.0, maximum=1e5)
        num('model_error_v', minimum=0.0, maximum=1.0)
        num('polarisation_knee_slope_v', minimum=0.0, maximum=1000.0)
        num('stop_band_v', minimum=0.0, maximum=1.0)
        num('stop_time_s', exclusive_minimum=0.0, maximum=1e5)
        num('stop_band_max_slope_v', exclusive_minimum=0.0, maximum=1000.0)
        num('full_charge_current_c', exclusive_minimum=0.0, maximum=1.0)
        num('full_charge_voltage_margin_v', minimum=0.0, maximum=0.5)
        num('full_charge_soc_std', exclusive_minimum=0.0, maximum=0.5)
        kw['update_iterations'] = section.integer('update_iterations', d.update_iterations,
                                                  minimum=1, maximum=10)
        for name in ('zero_current_calibration', 'rest_current_calibration',
                     'estimate_capacity', 'startup_anchor',
                     'full_charge_anchor', 'capacity_from_pairs', 'capacity_joint'):
            flag(name)
        num('capacity_min_delta_soc', exclusive_minimum=0.0, maximum=1.0)
        num('capacity_min_ratio', exclusive_minimum=0.0, maximum=1.0)
        num('capacity_pair_min_slope_v', minimum=0.0, maximum=100.0)
        num('capacity_pair_min_delta_soc', exclusive_minimum=0.0, maximum=1.0)
        num('capacity_pair_max_current_c', minimum=0.0, maximum=100.0)
        num('capacity_pair_soc_min', minimum=0.0, maximum=0.5)
        num('capacity_pair_soc_max', minimum=0.5, maximum=1.0)
        num('capacity_joint_correlation_s', minimum=0.0, maximum=1e5)
        num('capacity_max_ratio', minimum=1.0, maximum=10.0)
        num('r0_forgetting', exclusive_minimum=0.5, maximum=1.0)
        num('r0_min_step_c', exclusive_minimum=0.0, maximum=10.0)
        num('r0_surface_doubt', minimum=0.0, maximum=10.0)
        num('r0_min_ratio', exclusive_minimum=0.0, maximum=1.0)
        num('r0_max_ratio', minimum=1.0, maximum=100.0)
        flag('r0_law_learn')
        flag('r1_follows_r0')
        flag('cv_surface_held')
        flag('held_load_correlated')
        flag('slow_error_in_noise')
        flag('stop_band_reads_relaxation')
        flag('rest_anchor_reads_pairs')
        flag('sop_residual')
        flag('tau1_follows_temperature')
        num('r0_law_forgetting', exclusive_minimum=0.9, maximum=1.0)
        num('r0_law_min_span_degc', exclusive_minimum=0.0, maximum=100.0)
        num('r0_law_noise', exclusive_minimum=0.0, maximum=10.0)
        num('r0_law_activation_std_k', exclusive_minimum=0.0, maximum=1e5)
        num('r0_law_activation_min_k', minimum=0.0, maximum=1e5)
        num('r0_law_activation_max_k', exclusive_minimum=0.0, maximum=1e5)
        if kw['r0_law_activation_max_k'] <= kw['r0_law_activation_min_k']:
            raise section.error('r0_law_activation_max_k', 'must be above '
                                f'r0_law_activation_min_k ({kw["r0_law_activation_min_k"]})')
        num('horizon_short_s', exclusive_minimum=0.0, maximum=3600.0)
        num('horizon_long_s', exclusive_minimum=0.0, maximum=3600.0)
        num('soc_limit_min', minimum=0.0, maximum=0.5)
        num('soc_limit_max', minimum=0.5, maximum=1.0)
        num('publish_rate_hz', exclusive_minimum=0.0, maximum=1000.0)
        num('max_step_s', exclusive_minimum=0.0, maximum=3600.0)
        num('status_current_threshold_a', minimum=0.0)
        num('full_soc', exclusive_minimum=0.0, maximum=1.0)
        num('bleed_resistance_ohm', exclusive_minimum=0.0)
        if kw['horizon_long_s'] < kw['horizon_short_s']:
            raise section.error('horizon_long_s',
                                f'must be >= horizon_short_s ({kw["horizon_short_s"]})')
        kw['derating'] = _derating(section)
        kw['plausibility'] = PlausibilityConfig.from_section(section.section('plausibility', {}))
        return cls(**kw)


def _derating(section: Section) -> Derating:
    """The optional ``derating:`` table: three equal-length lists, temperatures increasing."""
    if not section.has('derating'):
        return Derating()
    table = section.section('derating')
    table.reject_unknown(('temperature_degc', 'charge_factor', 'discharge_factor'))
    temperature = table.numbers('temperature_degc', minimum=-100.0, maximum=200.0,
                                increasing=True)
    n = len(temperature)
    charge = table.numbers('charge_factor', length=n, minimum=0.0, maximum=1.0)
    discharge = table.numbers('discharge_factor', length=n, minimum=0.0, maximum=1.0)
    return Derating(tuple(temperature), tuple(charge), tuple(discharge))


def cell_estimator_section(cell_path: str) -> Section | None:
    """The ``estimator:`` Section of a cell file, None if it has none."""
    top = Section.from_file(cell_path)
    return top.section('estimator') if top.has('estimator') else None


def settings_source(profile_path: str, cell_path: str) -> str:
    """Where ``for_cell`` takes a pack's settings from, in words."""
    if cell_path and cell_estimator_section(cell_path) is not None:
        return (f'profile {profile_path} over the cell file {os.path.normpath(cell_path)}'
                "'s estimator: section")
    return f'profile {profile_path}'


# the settings printed at start (estimate_csv, the node, the replays): the ones that matter
# offline and the chemistry's tuning a cell file's section carries
SHOWN_SETTINGS = ('rest_time_s', 'rest_current_c', 'rest_ocv_noise_v', 'voltage_noise_v',
                  'voltage_noise_per_c_v', 'diffusion_time_s', 'initial_soc_std',
                  'initial_capacity_std', 'estimate_capacity', 'startup_anchor',
                  'relaxation_time_s', 'relaxation_doubt_time_s', 'model_error_v',
                  'polarisation_noise_per_c_v', 'polarisation_load_time_s',
                  'startup_polarisation_max', 'stop_band_v', 'polarisation_knee_slope_v',
                  'full_charge_anchor')


def settings_text(config: EstimatorConfig, source: str) -> str:
    """One line: the settings of SHOWN_SETTINGS and where they came from."""
    return f'estimator settings from {source}: ' + ', '.join(
        f'{name}={getattr(config, name)!r}' for name in SHOWN_SETTINGS)


_LOGGED: set[str] = set()


def log_settings_once(config: EstimatorConfig, source: str, log: Any = None) -> None:
    """Log ``settings_text`` at info level, once per process for each text (the replays
    build an estimator per bag).
    """
    text = settings_text(config, source)
    if text in _LOGGED:
        return
    _LOGGED.add(text)
    (log or logging.getLogger(__name__)).info(text)
