"""The pack estimator: per-cell SoC, capacity and R0, pack SoC, state of power, rest detection.

Pure numpy, vectorised over the series cells; the node and estimate_csv both drive it with
explicit times (``t_s`` on one clock), so it runs the same live, offline and in tests.

Pack SoC (see docs/estimation.md): with D = min_i(soc_i Q_i) the charge the pack can still
deliver before its weakest cell is empty, and C = min_i((1 - soc_i) Q_i) the charge it can still
take before its strongest cell is full,

    pack_soc = D / (D + C)          (= min_soc / (min_soc + 1 - max_soc) for equal capacities)

so the pack reads 0 when any cell is empty and 1 when any cell is full; D is the remaining
charge and D + C the usable capacity at the present imbalance.

Who owns which state (one owner each; the others ask it):

* SoC, RC and diffusion voltages, current offset and every covariance: ``filter``
  (:class:`.soc_filter.SocFilter`); the correlated voltage doubt's state: ``filter.doubt``
  (:mod:`.measurement_noise`);
* capacity (value, variance, sums counted between anchors, SoC pairs): ``capacity``
  (:class:`.soh.CapacityEstimator`), the one owner. The filter's capacity_inverse is a mirror
  it needs for its correlations: written from ``capacity`` (:func:`.anchors.push_capacity`,
  or at a start), and by a filter update only where the joint gate allows
  (``capacity_joint``, :meth:`PackEstimator._joint_gain`), after which ``capacity`` takes the
  filter's value in the same step. The estimate reports ``capacity.capacity_ah``;
* R0 and the temperature law: ``resistance`` (:class:`.resistance.ResistanceEstimator`); the filter
  reads the same law object (``filter.temperature_law``);
* time at rest, the once-per-rest flag, relaxation: ``rest`` (:class:`.relaxation.RestTracker`);
* end-of-charge detection: ``end_of_charge`` (:class:`.anchors.EndOfCharge`);
* the time line, the zero-current offset low-pass and the current limits: this class (a SoC
  read from a voltage at a start: :mod:`.voltage_soc`).

Size (~400 lines, over the house ~350): what is left here is one concept, the coordinator:
:meth:`PackEstimator.step` is a single ordered sequence (predict, count, rest, R0, filter
update, anchors, pairs) whose order the numbers depend on, and the starts / re-anchors that
set several owners at once. The parts with their own state are in the modules named above.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..ocv import FloatOrArray
from ..plausibility import Plausibility
from . import state_of_power
from .anchors import EndOfCharge, anchor_capacity, ocv_band_reading, offer_soc_pair
from .hysteresis import OcvHysteresis
from .measurement_noise import surface_doubt_v
from .relaxation import RestTracker
from .resistance import SPHERE_DIFFUSION_RATIO, ResistanceEstimator
from .soc_filter import QINV, RSLOW, SLOW, SOC, VRC, SocFilter
from .soh import CapacityEstimator
from .voltage_soc import prior_within_range, soc_from_voltage

# the sphere's modes sin(n pi r) / r with a held surface (40: the sum within 2 % at 0 s)
_CV_MODES = np.arange(1, 41, dtype=float)
_CV_MEAN, _CV_GRADIENT = _CV_MODES ** -4.0, _CV_MODES ** -2.0


def cv_gap_ratio(held_s: FloatArray, sphere_time_s: float) -> FloatArray:
    """Bulk-surface gap per surface flux of a sphere (R^2 / D = sphere_time_s) whose surface is
    held since held_s (s) after a constant flux, over the constant flux's 1/5: 1 at 0, 15 / pi^2
    (the first mode's 3 / pi^2) once the higher modes have decayed (~0.1 R^2 / D).
    """
    # the constant flux's profile (r^2 - 1) / 2 is sum 6 (-1)^n / (n pi)^3 sin(n pi r) / r:
    # its mean 18 / (n pi)^4 and its surface gradient 6 / (n pi)^2 per mode
    decay = np.exp(-np.outer(held_s / sphere_time_s, (math.pi * _CV_MODES) ** 2))
    return 15.0 / math.pi ** 2 * (decay @ _CV_MEAN) / (decay @ _CV_GRADIENT)

if TYPE_CHECKING:
    from ..cell import CellSpec
    from .config import EstimatorConfig

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

PAIR_PERIOD_S = 1.0     # capacity pairs: the filter's SoC offered at most this often (s)
# a step is a gap only if longer than max_step_s by more than this (s): two float stamps a
# sample period apart differ from it by rounding (30.00000000000091 s at 30 s on the matrix),
# which dropped the capacity anchor of every 30 s-sampled rest
GAP_TOLERANCE_S = 1e-6


@dataclass
class Estimate:
    """One estimate; field names as bms_interfaces/BatteryEstimate (SoC 0..1, A + = charging)."""

    cell_soc: np.ndarray
    cell_capacity_ah: np.ndarray
    cell_r0_ohm: np.ndarray                 # normalised to 25 degC
    pack_soc: float
    pack_soc_min: float
    pack_soc_max: float
    remaining_charge_ah: float
    capacity_ah: float                      # usable at the present imbalance: D + C
    soh_capacity: float                     # weakest cell capacity / nominal
    soh_resistance: float                   # mean R0 / nominal R0
    charge_current_limit_a: float
    discharge_current_limit_a: float
    charge_current_limit_long_a: float
    discharge_current_limit_long_a: float
    horizon_short_s: float
    horizon_long_s: float
    current_offset_a: float
    at_rest: bool
    cell_charge_current_limit_a: np.ndarray | None = field(default=None, repr=False)
    cell_discharge_current_limit_a: np.ndarray | None = field(default=None, repr=False)
    r0_activation_k: float | None = None    # Ea/R (K) of the R0 temperature law in use


def pack_soc(cell_soc: FloatOrArray, cell_capacity_ah: FloatOrArray) -> tuple[float, float, float]:
    """(pack_soc, remaining_charge_ah, usable_capacity_ah) of a series string; NaN if unknown."""
    z = np.clip(np.asarray(cell_soc, dtype=float), 0.0, 1.0)
    q = np.asarray(cell_capacity_ah, dtype=float)
    ok = np.isfinite(z) & np.isfinite(q)
    if not ok.any():
        return float('nan'), float('nan'), float('nan')
    remaining = float(np.min(z[ok] * q[ok]))
    chargeable = float(np.min((1.0 - z[ok]) * q[ok]))
    usable = remaining + chargeable
    return (remaining / usable if usable > 0 else 0.0), remaining, usable


class PackEstimator:
    """SoC filter, R0 and capacity estimators, state of power and rest detection for a string."""

    def __init__(self, cell: CellSpec, n_cells: int, config: EstimatorConfig) -> None:
        self.cell = cell
        self.config = config
        self.n = int(n_cells)
        self.filter = SocFilter(cell, self.n, config)
        self.resistance = ResistanceEstimator(cell, self.n, config)
        self.filter.temperature_law = self.resistance.law    # one learnt law for R0, R1, r_diff
        self.capacity = CapacityEstimator(cell, self.n, config)
        # the measurement path (interface.step_from_measurement) asks it which cells to use
        self.plausibility = Plausibility(cell, self.n, config.plausibility)
        self.rest = RestTracker(self.n, config)
        self.hysteresis = OcvHysteresis(cell, self.n, config)
        self.end_of_charge = EndOfCharge(cell, self.n, config)
        self.t_s: float | None = None
        self.last_current_a: FloatArray = np.zeros(self.n)
        self.anchors = 0
        self.recent_current_a = np.zeros(self.n)   # low-pass of |I| over diffusion_time_s
        self._given_soc = False
        self._zero_current_a: float | None = None   # low-pass of the current at zero current
        self._limits: tuple[FloatArray, ...] = (np.zeros(self.n), np.zeros(self.n),
                                                np.zeros(self.n), np.zeros(self.n))
        self._limit_temperature: FloatArray = np.full(self.n, np.nan)
        self._limits_due = False
        self._next_pair_t_s = -np.inf
        self._stop_bound = np.zeros(self.n, dtype=bool)   # the stop band was used this stop
        self._held_s = np.zeros(self.n)   # time since the current last stepped by r0_min_step_c
        self._cv_s = np.zeros(self.n)     # time the charge limit's voltage has been held (CV)
        # a rest's capacity anchor still to come (capacity_rest_s): the RC pairs' voltages
        # (v_rc, v_diff per cell) at its SoC anchor, which zeroed them, decayed since
        self._rest_pairs: tuple[FloatArray, FloatArray] | None = None
        # the voltage the model leaves unexplained after the update (V), low-passed over tau1:
        # the limits carry it (state_of_power.horizon_limits residual_v)
        self.voltage_residual_v = np.zeros(self.n)

    # ---------------------------------------------------------------- initialisation
    @property
    def initialised(self) -> BoolArray:
        """Per cell: True once its SoC was started (from OCV, a given SoC or a saved state)."""
        return self.filter.initialised

    @property
    def rest_s(self) -> float:
        """Time the offset-corrected current has been at rest (s; 0 under load)."""
        return self.rest.rest_s

    @property
    def anchored(self) -> bool:
        """True once the present rest was used for an OCV anchor."""
        return self.rest.anchored

    @property
    def full_anchors(self) -> int:
        """End-of-charge anchors taken so far."""
        return self.end_of_charge.anchors

    def _start_filter(self, soc: FloatOrArray, soc_std: FloatOrArray, **options: Any) -> None:
        """(Re)start the filter with the capacity its owner (``capacity``) holds now."""
        self.filter.initialise(soc, soc_std, capacity_ah=self.capacity.capacity_ah,
                               capacity_std=self.capacity.std_ah / self.capacity.capacity_ah,
                               **options)

    def start_from_soc(self, soc: FloatOrArray, soc_std: float | None = None) -> None:
        """Start from a given SoC (scalar or per cell) of ``initial_soc_std`` doubt."""
        std = self.config.initial_soc_std if soc_std is None else soc_std
        self._start_filter(np.clip(soc, 0.0, 1.0), std, from_ocv=False)
        self._given_soc = True

    def restore(self, cell_soc: ArrayLike, cell_capacity_ah: ArrayLike,
                cell_capacity_std_ah: ArrayLike, cell_r0_ohm: ArrayLike,
                current_offset_a: float = 0.0, age_s: float | None = None) -> None:
        """Start from persisted values (validated by the caller) with ``restored_soc_std``,
        grown by ``restored_soc_std_per_day`` for a state ``age_s`` old (self-discharge and
        whatever happened while off; None: age unknown, counted as 30 days).
        """
        self.capacity.set(cell_capacity_ah, cell_capacity_std_ah)
        self.resistance.set(cell_r0_ohm)
        days = 30.0 if age_s is None or not np.isfinite(age_s) or age_s < 0 else age_s / 86400.0
        std = min(self.config.restored_soc_std + self.config.restored_soc_std_per_day * days, 0.5)
        self._start_filter(np.clip(cell_soc, 0.0, 1.0), std,
                           current_offset_a=current_offset_a, from_ocv=False)

    def zero_current(self, current_a: float, dt_s: float) -> None:
        """The pack current is known to be zero (contactors open): what is measured is the
        current-sensor offset (A); low-pass it over ``zero_current_time_s`` and use it.
        """
        if not self.config.zero_current_calibration or not np.isfinite(current_a):
            return
        if self._zero_current_a is None:
            self._zero_current_a = float(current_a)
            samples = 1.0
        else:
            w = 1.0 - np.exp(-max(dt_s, 0.0) / self.config.zero_current_time_s)
            self._zero_current_a += w * (float(current_a) - self._zero_current_a)
            samples = max(self.config.zero_current_time_s / max(dt_s, 1e-3), 1.0)
        std = self.filter.current_noise_a / np.sqrt(samples)
        self.filter.set_current_offset(self._zero_current_a, std)

    def _rest_current_offset(self) -> None:
        """A rest of ``rest_time_s`` (the voltage read as OCV: the current is taken as zero)
        measures the current sensor's offset as its mean measured current, doubted by the
        sensor's noise over its samples: fused with the offset known so far (unless measured
        with the contactors open), and the charge counted since the capacity's references
        recounted with it, so the offset does not go into the capacity.
        """
        mean_a = self.rest.mean_current_a()
        samples = self.rest.current_samples
        if self._zero_current_a is not None or not np.isfinite(mean_a) or samples < 2:
            return
        f = self.filter
        old_a = f.current_offset_a.copy()
        var_old = f.offset_std_a ** 2
        var_meas = f.current_noise_a ** 2 / samples
        # beyond 3 sigma of what is known: a real small load, not the sensor
        if np.all((mean_a - old_a) ** 2 > 9.0 * (var_old + var_meas)):
            return
        gain = var_old / np.maximum(var_old + var_meas, 1e-30)
        new_a = old_a + gain * (mean_a - old_a)
        f.set_current_offset(new_a, np.sqrt((1.0 - gain) * var_old))
        self.capacity.recount_offset(new_a - old_a, f.offset_std_a)

    def set_soc(self, soc: FloatOrArray) -> None:
        """Set every (or each) cell SoC, 0..1, as a trusted value (service set_soc)."""
        cell_soc = np.broadcast_to(np.clip(np.asarray(soc, dtype=float), 0.0, 1.0), (self.n,))
        self._start_filter(cell_soc, 0.01, from_ocv=False)
        self.resistance.break_sequence()
        self.capacity.forget_anchor()

    def reanchor_from_ocv(self, voltage_v: FloatOrArray, temperature_degc: FloatOrArray,
                          valid: ArrayLike, doubt_floor: bool = True,
                          relaxation_v: FloatOrArray = 0.0,
                          relaxation_doubt_v: FloatOrArray | None = None,
                          capacity: bool = True) -> BoolArray:
        """Take the voltages as relaxed OCV: a SoC measurement and a capacity anchor.

        ``doubt_floor``: doubt the filter's SoC at least ``anchor_soc_std_min`` first (False:
        a SoC given at start keeps the doubt it was given with). ``relaxation_v``: the
        relaxation still to come per cell (V, signed): the OCV read is voltage + it, and its
        size is added to the doubt (``relaxation_doubt_v``: this instead of that size).
        ``capacity``: False leaves the capacity anchor to :meth:`_rest_capacity_anchor` later.
        """
        cells: BoolArray = np.asarray(valid, dtype=bool) & np.isfinite(voltage_v)
        ocv_v, reading = self._ocv_reading(voltage_v, temperature_degc, relaxation_v,
                                           relaxation_doubt_v)
        soc: Any = np.clip(reading[0], 0.0, 1.0)
        std = np.clip(reading[1], 0.002, 0.5)
        fresh = cells & ~self.filter.initialised
        if fresh.any():
            self._start_filter(soc, std, cells=fresh)
        # a filter can be over-confident after hours of counting: doubt it at least this much
        old = cells & ~fresh
        if doubt_floor:
            # ... unless the reading is vaguer than that floor or a plateau's band (not
            # Gaussian, see ocv_band_reading): then no more than the count alone gathered since
            # its last confident point (current noise, offset and capacity doubts). On LFP's
            # plateau the voltage hardly shrinks the SoC doubt, so the filter is as sure as its
            # count there, and the 5 % floor let the plateau's readings (3 mV: 10-20 points)
            # move a 1 % sure count by 5 points
            floor_var = self.config.anchor_soc_std_min ** 2
            floor2 = np.where(reading[3], floor_var, np.minimum(floor_var, self.filter.count_var))
            self.filter.P[old, SOC, SOC] = np.maximum(self.filter.P[old, SOC, SOC], floor2[old])
        self.filter.update_soc(soc, std, old)
        self.filter.relaxed(cells)
        if capacity:
            anchor_capacity(self.filter, self.capacity, soc, std, cells, ocv_v, temperature_degc,
                            reading=reading)
        self.anchors += 1
        return cells

    def _ocv_reading(self, voltage_v: FloatOrArray, temperature_degc: FloatOrArray,
                     relaxation_v: FloatOrArray, relaxation_doubt_v: FloatOrArray | None
                     ) -> tuple[FloatArray, tuple[FloatArray, FloatArray, FloatArray, BoolArray]]:
        """(OCV read per cell (V), its :func:`ocv_band_reading`): the voltage plus the
        relaxation still to come, doubted by that relaxation's size (``relaxation_doubt_v``
        instead, if given), the rest's OCV noise and the hysteresis left.
        """
        relax_v = np.broadcast_to(np.asarray(relaxation_v, dtype=float), (self.n,))
        ocv_v = np.asarray(voltage_v, dtype=float) + relax_v
        noise_v = self.config.rest_ocv_noise_v + np.abs(
            relax_v if relaxation_doubt_v is None else relaxation_doubt_v)
        if self.hysteresis.active:
            noise_v = np.hypot(noise_v, self.hysteresis.doubt_v())
        # the SoC band the OCV's doubt spans (on a plateau next to a step far wider than the
        # local slope says), for the filter and the capacity alike
        reading = ocv_band_reading(self.cell, ocv_v, noise_v, temperature_degc,
                                   self.config.capacity_pair_soc_std,
                                   self.config.anchor_soc_std_min)
        return ocv_v, reading

    def _rest_capacity_anchor(self, temperature_degc: FloatArray, valid: BoolArray) -> None:
        """The rest's capacity anchor, which its SoC anchor left to the rest's end or to
        ``capacity_rest_s`` at rest, whichever comes first: from the voltage of the rest's last
        30 s and the pairs' relaxation as the model now predicts it (what they held at the SoC
        anchor, decayed since). A cold rest after a discharge into the knee relaxed within 4
        minutes while the slow pair still held 14 mV at the SoC anchor's 300 s: read then, the
        capacity took a SoC 4.6 points high (Mohtat2020 faded_10c, 4.72 -> 4.45 Ah against
        4.22; read at 900 s, 4.26).
        """
        pairs = self._rest_pairs
        self._rest_pairs = None
        if pairs is None:
            return
        v = self.rest.recent_voltage_v()
        relax_v = self.rest.ocv_v(v) - v
        relax_v = relax_v + self._diffusion_tail_v(v, relax_v, temperature_degc, pairs)
        ocv_v, reading = self._ocv_reading(v, temperature_degc,
                                           relax_v + self._pairs_left_v(pairs), np.abs(relax_v))
        # the capacity only: the SoC read again (as a second update, or as one replacing the
        # first reading) lost on the test half's temperature sweeps (docs)
        anchor_capacity(self.filter, self.capacity, np.clip(reading[0], 0.0, 1.0),
                        np.clip(reading[1], 0.002, 0.5), valid & np.isfinite(v), ocv_v,
                        temperature_degc, reading=reading)

    def _decayed_pairs(self, pairs: tuple[FloatArray, FloatArray], dt_s: float,
                       temperature_degc: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The pairs' voltages (v_rc, v_diff) ``dt_s`` later at rest, as the filter's model
        relaxes them (tau1 at the temperature, ``diffusion_time_s``).
        """
        factor = self.filter.arrhenius(temperature_degc)
        tau1 = np.asarray(self.filter.tau1_s(factor), dtype=float)
        return (pairs[0] * np.exp(-dt_s / tau1),
                pairs[1] * math.exp(-dt_s / self.config.diffusion_time_s))

    # ---------------------------------------------------------------- the update
    def step(self, t_s: float, current_a: float, cell_voltage_v: FloatOrArray,
             cell_voltage_valid: ArrayLike, cell_temperature_degc: FloatOrArray,
             cell_current_a: FloatOrArray = 0.0) -> bool:
        """One measurement: time (s), pack current (A, + = charging), per-cell V, validity, degC.

        ``cell_current_a`` is added to the pack current per cell (e.g. minus bleed current).
        Returns False (and changes nothing) if ``t_s`` does not advance.
        """
        if self.t_s is not None and not t_s > self.t_s:
            return False
        cfg = self.config
        v_measured = np.asarray(cell_voltage_v, dtype=float)
        valid = np.asarray(cell_voltage_valid, dtype=bool) & np.isfinite(v_measured)
        temp = np.asarray(cell_temperature_degc, dtype=float)
        temp_model = np.where(np.isfinite(temp), temp, 25.0)
        temp_model.flags.writeable = False       # read-only: its Arrhenius factor is cached
        # the current of each cell: the pack current plus e.g. minus its bleed current
        i_cells = current_a + np.broadcast_to(np.asarray(cell_current_a, dtype=float), (self.n,))
        rest_a = cfg.rest_current_c * self.cell.capacity_ah
        first = self.t_s is None
        dt_step = 0.0 if self.t_s is None else t_s - self.t_s
        # the OCV's hysteresis follows the charge of the step; every reading of the voltage as
        # OCV below sees the voltage without it (the limits' checks see the measured one)
        if self.hysteresis.active and dt_step > 0.0:
            self.hysteresis.step(dt_step, 0.5 * (i_cells + self.last_current_a)
                                 - self.filter.current_offset_a)
        v = v_measured - self.hysteresis.voltage_v() if self.hysteresis.active else v_measured
        fresh = valid & ~self.filter.initialised
        if fresh.any():
            soc, std, v_rc, v_diff = soc_from_voltage(
                self.cell, cfg, self.resistance.r0_ohm, self.filter.arrhenius(temp_model), v,
                i_cells, temp_model, self.hysteresis.doubt_v())
            # over the whole range of the unknown polarisation (if set): an honest doubt
            ranged = (cfg.startup_polarisation_max > cfg.startup_polarisation) & (
                np.abs(i_cells) > rest_a)
            self._start_filter(soc, std, cells=fresh, ranged=ranged)
            self.filter.x[fresh, VRC] = np.broadcast_to(v_rc, (self.n,))[fresh]
            self.filter.x[fresh, SLOW] = np.broadcast_to(v_diff, (self.n,))[fresh]
        if first and cfg.startup_polarisation_max > cfg.startup_polarisation:
            self._given_within_range(valid & ~fresh & self.filter.initialised & (
                np.abs(i_cells) > rest_a), v, i_cells, temp_model)
        if self.t_s is not None:
            dt = dt_step
            i_interval = 0.5 * (i_cells + self.last_current_a)   # trapezoid over the step
            stepped = np.abs(i_cells - self.last_current_a) >= \
                cfg.r0_min_step_c * self.cell.capacity_ah
            self._held_s = np.where(stepped, 0.0, self._held_s + dt)
            if dt > cfg.max_step_s + GAP_TOLERANCE_S:
                # the current during a gap is unknown: add the doubt of its charge to the SoC
                self.resistance.break_sequence()
                self.capacity.forget_anchor()
                doubt_a = 0.5 * np.abs(i_cells - self.last_current_a) \
                    + 0.05 * self.cell.capacity_ah
                self.filter.P[:, SOC, SOC] += (doubt_a * dt / (3600.0 * self.cell.capacity_ah)) ** 2
            w = np.exp(-dt / cfg.diffusion_time_s)
            self.recent_current_a = w * self.recent_current_a + (1.0 - w) * np.abs(i_interval)
            self.filter.predict(dt, i_interval, temp_model, self._slow_std(i_interval))
            # rest: offset-corrected current small for long enough -> re-anchor once per rest
            offset = self.filter.current_offset_a
            # the offset is one pack value unless set per cell: no median then (its cost)
            low, high = float(offset.min()), float(offset.max())
            i_pack = current_a - (low if low == high else float(np.median(offset)))
            if self._rest_pairs is not None:
                if abs(i_pack) > rest_a:
                    # the rest ends: its capacity anchor from its last voltages, before this
                    # step's charge is counted
                    self._rest_capacity_anchor(temp_model, valid)
                else:
                    self._rest_pairs = self._decayed_pairs(self._rest_pairs, dt, temp_model)
            self.capacity.count(dt, i_interval - self.filter.current_offset_a,
                                self.filter.current_noise_a, self.filter.offset_std_a)
            self.rest.step(abs(i_pack) <= rest_a, v, dt, float(np.sign(i_pack)), current_a)
        self.t_s = t_s
        self.last_current_a = i_cells
        if cfg.r1_follows_r0:
            self.filter.r1_scale = self.resistance.r0_ohm / self.cell.r0_ohm
        factor = self.filter.arrhenius(temp_model)
        r0 = self.resistance.r0_ohm * factor
        # v - OCV - v_rc - v_diff = R0 (i - offset); the R0 estimator differences it
        ocv_v = self.cell.ocv.ocv(self.filter.soc, temp_model)
        self.resistance.update(self._ohmic(v, ocv_v), i_cells, factor,
                               valid & (self.filter.P[:, SOC, SOC] < 0.05 ** 2), temp,
                               slope_v=lambda: self.filter.ocv_slope(self.filter.soc),
                               dt_s=dt_step)
        # at rest, what is still to relax is doubted like the model error (0: not at rest)
        self.filter.relaxation_doubt_v = self.rest.doubt_v()
        # the ECM's fast error grows with the current (resistance varies with SoC and current)
        noise_v = cfg.voltage_noise_v + cfg.voltage_noise_per_c_v * np.abs(
            i_cells) / self.cell.capacity_ah
        if cfg.slow_error_in_noise:
            # the model's slow error under the recent load (what the slow pair's process noise
            # and the joint's floor assume) is still there at a stop after the load, where the
            # per-C term is gone: read with 10 mV alone, a cold stop's relaxation beyond the
            # pairs dragged an unsure SoC 3 points (M50 wrong_mid_10c)
            noise_v = np.hypot(noise_v, self._slow_error_v())
        if cfg.surface_soc_doubt > 0.0:
            # under load the voltage reads the surface SoC: the OCV's bend up to it is doubted
            noise_v = np.hypot(noise_v, surface_doubt_v(
                self.cell, cfg, self.filter.soc, np.asarray(ocv_v, dtype=float),
                self.filter.ocv_slope(self.filter.soc),
                i_cells - self.filter.current_offset_a, temp_model))
        if cfg.held_load_correlated and dt_step > 0.0:
            noise_v = self._held_load_noise_v(noise_v, i_cells, dt_step)
        if self.hysteresis.active:
            noise_v = np.hypot(noise_v, self.hysteresis.doubt_v())
        v_f = v
        if cfg.cv_surface_held:
            # constant voltage (at the charge limit, charging, the current falling below its
            # low-pass): the charger holds the particles' surface, and the bulk-surface gap
            # relaxes as a sphere's first mode with a fixed surface, whose gap per surface flux
            # is 3 / pi^2 against the 1 / 5 of a constant flux the slow pair models: the pair
            # holds up to 15 / pi^2 - 1 of its voltage too little (DFN: the CV taper read 1-2
            # points high). The profile turns from the constant flux's to that mode as the higher
            # modes decay (R^2 / D = beta1^2 diffusion_time_s): the ratio ramps from 1 with the
            # time the limit is held (at once, the early taper read 1 point low)
            cv = (v_measured >= self.cell.limits.voltage_max_v
                  - cfg.full_charge_voltage_margin_v) & (
                i_cells - self.filter.current_offset_a > rest_a) & (
                np.abs(i_cells) < self.recent_current_a)
            if cv.any():
                self._cv_s = np.where(cv, self._cv_s + dt_step, 0.0)
                ratio = cv_gap_ratio(self._cv_s, SPHERE_DIFFUSION_RATIO * cfg.diffusion_time_s)
                v_f = np.where(cv, v - (ratio - 1.0) * self.filter.x[:, SLOW], v)
            elif self._cv_s.any():
                self._cv_s[:] = 0.0
        startup_anchor = first and cfg.startup_anchor and abs(current_a) <= rest_a
        # at a start at rest the first voltage is read once, as OCV (below), not twice
        learn, floor = self._joint_gain(valid & ~startup_anchor, i_cells, dt_step)
        joint_noise2 = None
        if learn is not None and cfg.capacity_joint_correlation_s > 0.0:
            # the load's share of the noise is the model's error, correlated over
            # capacity_joint_correlation_s: for the slow capacity N such samples are one
            n_corr = max(cfg.capacity_joint_correlation_s / dt_step, 1.0)
            joint_noise2 = (n_corr - 1.0) * np.maximum(
                noise_v ** 2 - cfg.voltage_noise_v ** 2, 0.0)
        self.filter.update(v_f, i_cells, temp_model, r0, valid & ~startup_anchor, noise_v=noise_v,
                           prior_ocv_v=ocv_v, capacity_gain=learn, capacity_noise2=joint_noise2,
                           capacity_var_floor=floor)
        if cfg.sop_residual:
            # what the model does not explain now (at the empty knee the surface's bend, which
            # surface_soc_doubt leaves out of the SoC) persists over the limits' horizons;
            # low-passed over the fastest of the model's dynamics (tau1) so noise does not
            # carry over (the first step, dt 0, keeps 0)
            residual = v - self.filter.predicted_voltage(i_cells, temp_model, r0,
                                                         self.filter.posterior_ocv_v)
            w = np.exp(-dt_step / np.asarray(self.filter.tau1_s(factor), dtype=float))
            self.voltage_residual_v = np.where(
                valid & np.isfinite(residual),
                w * self.voltage_residual_v + (1.0 - w) * residual, self.voltage_residual_v)
        if learn is not None:
            self.capacity.joint(learn > 0.0, self.filter.capacity_ah,
                                self.filter.capacity_ah * np.sqrt(np.maximum(
                                    self.filter.P[:, QINV, QINV], 0.0)) / self.filter.x[:, QINV])
        self.resistance.remember(self._ohmic(v, self.filter.posterior_ocv_v), i_cells, factor,
                                 valid)
        if startup_anchor:
            # a pack that was off has rested: its voltage is OCV; a SoC given at start is a
            # prior of the doubt it was given with (initial_soc_std), fused with that OCV
            self.reanchor_from_ocv(v, temp_model, valid, doubt_floor=not self._given_soc)
        # pair points at most once per PAIR_PERIOD_S (turning points are minutes apart)
        if cfg.capacity_from_pairs and cfg.estimate_capacity and t_s >= self._next_pair_t_s:
            self._next_pair_t_s = t_s + PAIR_PERIOD_S
            offer_soc_pair(self.filter, self.capacity, self.cell, cfg, valid, i_cells)
        if cfg.full_charge_anchor:
            self._full_charge(v_measured, i_cells, valid)
        if cfg.stop_band_v > 0.0:
            self._stop_band(v, temp_model, valid)
        if self.rest_s >= cfg.rest_time_s and not self.rest.anchored:
            if cfg.rest_current_calibration:
                self._rest_current_offset()
            # the OCV from the voltage averaged over the rest, not one sample (its 2 mV noise is
            # 0.4-20 points of SoC on LFP)
            relax_v = self.rest.ocv_v(v) - v
            relax_v = relax_v + self._diffusion_tail_v(v, relax_v, temp_model)
            # the pairs' voltage left is the model's own OCV (v - v_rc - v_diff): no more doubt
            defer = cfg.capacity_rest_s > cfg.rest_time_s and cfg.estimate_capacity
            if defer:
                self._rest_pairs = (self.filter.x[:, VRC].copy(), self.filter.x[:, SLOW].copy())
            self.reanchor_from_ocv(v, temp_model, valid,
                                   relaxation_v=relax_v + self._pairs_left_v(),
                                   relaxation_doubt_v=np.abs(relax_v), capacity=not defer)
            self.rest.anchored = True
        elif self._rest_pairs is not None and self.rest_s >= cfg.capacity_rest_s:
            self._rest_capacity_anchor(temp_model, valid)
            log.debug('re-anchored SoC from OCV after %.0f s at rest', self.rest_s)
        # the limits are worked out when an estimate is asked for (publish rate, not 10 Hz)
        self._limit_temperature = temp
        self._limits_due = True
        return True

    def _pairs_left_v(self, pairs: tuple[FloatArray, FloatArray] | None = None) -> FloatArray:
        """Relaxation still to come at a rest anchor that the RC pairs still hold (V, signed, per
        cell): -(v_rc + v_diff), the model's OCV being v - v_rc - v_diff, only the way the rest
        relaxes (up after a discharge, down after a charge). The anchor then zeroes the pairs
        (``SocFilter.relaxed``): reading v alone as OCV threw away what the model still held
        (M50 after a drive segment: the slow pair 7 mV at 300 s of rest, the DFN 12 mV, read as
        SoC 1 point low at every rest of the temperature sweep). A sign the other way is no
        relaxation (a knee's rest: the slow pair held +66 mV after a discharge). 0 with
        ``rest_anchor_reads_pairs`` off, with ``relaxation_time_s`` (the drift's exponential and
        the diffusion tail, bounded by the pairs, read it there) or with no known load sign.
        ``pairs``: (v_rc, v_diff) per cell instead of the filter's.
        """
        cfg = self.config
        if not cfg.rest_anchor_reads_pairs or cfg.relaxation_time_s > 0.0 \
                or self.rest.load_sign == 0.0:
            return np.zeros(self.n)
        up = -self.rest.load_sign
        out: FloatArray = up * self._pairs_relaxing_v(up, pairs)
        return out

    def _pairs_relaxing_v(self, up: float,
                          pairs: tuple[FloatArray, FloatArray] | None = None) -> FloatArray:
        """Per cell, the voltage the RC pairs still hold the way a rest relaxes (V, >= 0; ``up``
        +1 after a discharge, -1 after a charge): -(v_rc + v_diff) that way, 0 the other way.
        ``pairs``: (v_rc, v_diff) per cell instead of the filter's.
        """
        v_rc, v_diff = (self.filter.x[:, VRC], self.filter.x[:, SLOW]) if pairs is None \
            else pairs
        out: FloatArray = np.maximum(-up * (v_rc + v_diff), 0.0)
        return out

    def _held_load_noise_v(self, noise_v: FloatArray, cell_current_a: FloatArray,
                           dt_s: float) -> FloatArray:
        """Measurement noise per cell (V) under a current held longer than the slow pair's time
        constant (no step of ``r0_min_step_c`` for ``diffusion_time_s``; above rest current):
        the ECM's per-C error (``voltage_noise_per_c_v`` x |I| / 1 C, correlated over the slow
        RC) is then the same for every sample, since the load history no longer changes, so it
        counts once per ``diffusion_time_s``, not once per sample: its variance x
        diffusion_time_s / dt, where the count is sure (x the correlated doubt's share, 1 -
        count_var / ``polarisation_count_std``^2: a wrong start under a held load still reads
        the voltage). A 0.5 C CC charge and its CV taper read the DFN's polarisation still
        building beyond the two pairs as SoC (M50 10 degC: +2.2 points in the taper).
        """
        cfg = self.config
        load_c = np.abs(cell_current_a - self.filter.current_offset_a) / self.cell.capacity_ah
        held = (self._held_s >= cfg.diffusion_time_s) & (load_c > cfg.rest_current_c)
        if not held.any():
            return noise_v
        n_corr = max(cfg.diffusion_time_s / dt_s, 1.0)
        # as the correlated doubt: only where the count is sure (a wrong or unknown start keeps
        # the voltage's weight), fading linearly to none at polarisation_count_std
        share = self.filter.doubt.count_sure_share()
        extra2 = (n_corr - 1.0) * share * (cfg.voltage_noise_per_c_v * load_c) ** 2
        out: FloatArray = np.where(held, np.sqrt(noise_v ** 2 + extra2), noise_v)
        return out

    def _diffusion_tail_v(self, voltage_v: FloatArray, relax_v: FloatArray,
                          temperature_degc: FloatArray,
                          pairs: tuple[FloatArray, FloatArray] | None = None) -> FloatArray:
        """Relaxation still to come at a rest anchor beyond the drift's exponential (V, signed,
        per cell): the gap between the count's OCV and the OCV read, where it lies the way the
        voltage still relaxes (up after a discharge, down after a charge), up to what the RC
        pairs still hold x ``relaxation_doubt_time_s`` / ``relaxation_time_s`` (the diffusion
        tail outlasts the exponential, as in the rest's doubt). The drift is at the sensor's
        noise after 600 s, yet LFP's DFN still reads 1.7-4.8 mV below its OCV then; on the
        plateau that moved a 1 % sure count 0.4-1.1 points the wrong way. A gap the other way
        (or beyond that bound) is no relaxation: the reading keeps it. 0 without
        ``relaxation_time_s`` or a known load sign. ``pairs``: as :meth:`_pairs_relaxing_v`.
        """
        cfg = self.config
        if cfg.relaxation_time_s <= 0.0 or self.rest.load_sign == 0.0:
            return np.zeros(self.n)
        up = -self.rest.load_sign
        ocv_count = self.cell.ocv.ocv(self.filter.x[:, SOC], temperature_degc)
        gap = np.nan_to_num(up * (ocv_count - voltage_v - relax_v))
        held = self._pairs_relaxing_v(up, pairs)
        factor = max(cfg.relaxation_doubt_time_s / cfg.relaxation_time_s, 1.0)
        out: FloatArray = up * np.clip(gap, 0.0, factor * held)
        return out

    def _joint_floor(self, slope: FloatArray) -> FloatArray:
        """Per cell, the least variance of capacity_inverse the joint update may leave: that of
        the one SoC pair its data span, from the pairs' reference (the last anchor or turn) to
        now, with both ends' SoC doubts given the capacity (:meth:`.soh.CapacityEstimator.pair`).
        A model error under load pulls the filter's SoC the same way for many samples, so the
        joint's own white-noise doubt would be far surer than the voltage is; no reference:
        nothing to learn from (infinite floor).
        """
        f, cap = self.filter, self.capacity
        pqq = np.maximum(f.P[:, QINV, QINV], 1e-12)
        now_var = np.maximum(f.P[:, SOC, SOC] - f.P[:, SOC, QINV] ** 2 / pqq,
                             0.1 * f.P[:, SOC, SOC])
        # the model's slow error under the recent load (diffusion_noise_per_c_v) is the same
        # for every sample of the load: as SoC at this end, a doubt no sample averages away
        now_var = now_var + (self._slow_error_v() / np.maximum(slope, 1e-3)) ** 2
        dz = np.abs(cap.pair_counted_ah) / cap.capacity_ah
        floor = f.x[:, QINV] ** 2 * (cap.pair_var + now_var) / np.maximum(dz, 1e-6) ** 2
        return np.where(np.isfinite(floor), floor, np.inf)

    def _slow_error_v(self) -> FloatArray:
        """The model's slow error under the recent load (V per cell): ``diffusion_noise_per_c_v``
        x |I| low-passed over ``diffusion_time_s`` / 1 C; the same for every sample of a load.
        """
        out: FloatArray = self.config.diffusion_noise_per_c_v * self.recent_current_a \
            / self.cell.capacity_ah
        return out

    def _joint_gain(self, valid: BoolArray, cell_current_a: FloatArray,
                    dt_s: float) -> tuple[FloatArray | None, FloatArray | None]:
        """Per cell, the share (0 or 1) of the joint gain capacity_inverse takes from this
        voltage, and its variance floor (:meth:`_joint_floor`); (None, None): off or no cell.

        Only where a SoC pair could be taken (the SoC sure, OCV slope, SoC window: never LFP's
        plateau or a knee; under load but at most ``capacity_pair_max_current_c``), and not
        under a current held beyond the slow pair's time constant. The load's share of the
        noise is thinned by the caller (``capacity_joint_correlation_s``).
        """
        cfg = self.config
        if not (cfg.capacity_joint and cfg.estimate_capacity) or dt_s <= 0.0:
            return None, None
        f = self.filter
        soc = f.soc
        load_a = np.abs(cell_current_a - f.current_offset_a)
        c_a = self.cell.capacity_ah
        # at rest the voltage is the relaxation (the model's least right part after a load),
        # not the charge: the rest anchor reads it after rest_time_s
        ok = valid & f.initialised & (f.P[:, SOC, SOC] <= cfg.capacity_pair_soc_std ** 2) & (
            load_a <= cfg.capacity_pair_max_current_c * c_a) & (load_a > cfg.rest_current_c * c_a)
        ok &= (soc >= cfg.capacity_pair_soc_min) & (soc <= cfg.capacity_pair_soc_max)
        if not ok.any():
            return None, None
        slope = f.ocv_slope(soc)
        ok &= slope >= cfg.capacity_pair_min_slope_v
        # a current held longer than the slow pair's time constant: the polarisation still
        # building beyond the model's two pairs grows with the charge counted, as a capacity
        # error does, so those samples cannot tell them apart (no excitation)
        ok &= self._held_s < cfg.diffusion_time_s
        if not ok.any():
            return None, None
        return np.where(ok, 1.0, 0.0), self._joint_floor(slope)

    def _given_within_range(self, cells: BoolArray, voltage_v: FloatArray,
                            cell_current_a: FloatArray, temperature_degc: FloatArray) -> None:
        """A SoC given before a first voltage under load (state file, set_soc, a given initial
        SoC): its prior truncated to the SoC range that voltage allows (at rest the start-up
        anchor fuses them), the RC states at the polarisation that implies.
        """
        if not cells.any():
            return
        f = self.filter
        measured, noise, v_rc, v_diff = prior_within_range(
            self.cell, self.config, self.resistance.r0_ohm, f.arrhenius(temperature_degc),
            voltage_v, cell_current_a, temperature_degc, f.soc.copy(), f.P[:, SOC, SOC].copy(),
            self.hysteresis.doubt_v())
        f.update_soc(measured, noise, cells)
        f.doubt.confident(cells)
        f.x[cells, VRC] = v_rc[cells]
        f.x[cells, SLOW] = v_diff[cells]

    def _full_charge(self, voltage_v: FloatArray, cell_current_a: FloatArray,
                     valid: BoolArray) -> None:
        """End-of-charge anchor (:class:`.anchors.EndOfCharge` finds the cells): SoC 1 with
        ``full_charge_soc_std``, and a capacity anchor.
        """
        cfg = self.config
        full = self.end_of_charge.full(voltage_v, cell_current_a - self.filter.current_offset_a,
                                       valid)
        if not full.any():
            return
        std = np.full(self.n, cfg.full_charge_soc_std)
        self.filter.P[full, SOC, SOC] = np.maximum(self.filter.P[full, SOC, SOC],
                                                   cfg.anchor_soc_std_min ** 2)
        self.filter.update_soc(np.ones(self.n), std, full)
        anchor_capacity(self.filter, self.capacity, np.ones(self.n), std, full)
        self.end_of_charge.taken(full)
        log.debug('end-of-charge anchor on %d cells', int(full.sum()))

    def _stop_band(self, voltage_v: FloatArray, temperature_degc: FloatArray,
                   valid: BoolArray) -> None:
        """A stop (``stop_time_s`` at rest current, before the rest anchor): the OCV is within
        ``stop_band_v`` of the voltage whichever way it still relaxes, so the SoC lies between
        SoC(v - band) and SoC(v + band) -- nothing on a plateau, a bound on the OCV's steps. A
        cell outside (e.g. counted with a capacity 15 % too large) is moved to the nearer edge,
        once per stop, its doubt at least the band's. Not where the OCV at that edge is steeper
        than ``stop_band_max_slope_v`` (the knee's diffusion tail outlasts any stop). No
        capacity anchor: its doubt is the band's, and as the capacity's reference it would
        keep the rest anchor at the knee from pairing with the full charge.
        """
        cfg = self.config
        if self.rest_s <= 0.0:
            self._stop_bound[:] = False
        if not cfg.stop_time_s <= self.rest_s < cfg.rest_time_s or self.rest.anchored:
            return
        f = self.filter
        inverse = self.cell.ocv.soc_from_ocv
        up_v, down_v = self._stop_band_relaxing_v()
        # the OCV's hysteresis left after the model (its doubt) widens the band both ways
        band_v = cfg.stop_band_v + (self.hysteresis.doubt_v() if self.hysteresis.active else 0.0)
        high: Any = inverse(voltage_v + band_v + up_v, temperature_degc)
        low: Any = inverse(voltage_v - band_v - down_v, temperature_degc)
        free = valid & f.initialised & ~self._stop_bound
        above = free & (f.soc > high) & (f.ocv_slope(high) <= cfg.stop_band_max_slope_v)
        below = free & (f.soc < low) & (f.ocv_slope(low) <= cfg.stop_band_max_slope_v)
        cells = above | below
        if not cells.any():
            return
        band_var = np.maximum(0.5 * (high - low), 0.005) ** 2 / 3.0
        f.update_soc(np.where(above, high, low), 0.01, cells)
        f.P[cells, SOC, SOC] = np.maximum(f.P[cells, SOC, SOC], band_var[cells])
        self._stop_bound |= cells
        log.debug('stop band bound the SoC of %d cells', int(cells.sum()))

    def _stop_band_relaxing_v(self) -> tuple[FloatArray | float, FloatArray | float]:
        """(up, down): how much further than ``stop_band_v`` the stop band reaches above and
        below the voltage (V per cell, >= 0). With ``stop_band_reads_relaxation`` the side the
        voltage still relaxes toward (up after a discharge, down after a charge; both with no
        known load sign) is widened by the relaxation the rest's drift says is still to come
        (:meth:`.relaxation.RestTracker.relaxation_v`, from the stop's start): 90 s into a stop
        after 1.4 C at 19 degC LFP's DFN was still 37 mV below its OCV, and the 30 mV band moved
        a right count 0.9 point down. Not the rest's doubt (that drift x
        ``relaxation_doubt_time_s``): 20 s after a 1-RC load it reaches so far that a count 11
        points high on the OCV step is no longer bounded.
        """
        if not self.config.stop_band_reads_relaxation:
            return 0.0, 0.0
        left_v = np.abs(self.rest.relaxation_v(early=True))
        sign = self.rest.load_sign
        return (left_v if sign <= 0.0 else 0.0), (left_v if sign >= 0.0 else 0.0)

    def relaxation_v(self) -> FloatArray:
        """Relaxation still to come at rest per cell (V, signed): see :mod:`.relaxation`."""
        return self.rest.relaxation_v()

    def _ohmic(self, voltage_v: FloatArray, ocv_v: FloatOrArray) -> FloatArray:
        """v - OCV - v_rc - v_diff per cell (OCV at the filter's SoC): what the model leaves to
        R0 (V).
        """
        f = self.filter
        return voltage_v - ocv_v - f.x[:, VRC] - f.x[:, SLOW]

    def _slow_std(self, current_a: FloatArray) -> FloatArray:
        """Stationary std of the diffusion model error for the present and recent current (V)."""
        load_c = np.maximum(np.abs(current_a), self.recent_current_a) / self.cell.capacity_ah
        return self.config.diffusion_noise_per_c_v * load_c

    @property
    def at_rest(self) -> bool:
        """True once |I| (offset-corrected) stayed below rest_current_c for rest_time_s (s)."""
        return self.rest.at_rest

    def _update_limits(self, temperature_degc: FloatArray) -> None:
        """Per-cell current limits (A, magnitudes) over both horizons at these temperatures."""
        cfg = self.config
        f = self.filter
        # R0 learnt per cell, R1 and the slow pair as the filter models them, by the law in use
        factor = f.arrhenius(np.where(np.isfinite(temperature_degc), temperature_degc, 25.0))
        r0 = self.resistance.r0_ohm * factor
        r1 = self.cell.r1_ohm * f.r1_scale * factor
        out = []
        for charge, discharge in state_of_power.horizon_limits(
                self.cell, cfg, (cfg.horizon_short_s, cfg.horizon_long_s),
                np.clip(f.soc, 0.0, 1.0), f.x[:, VRC], r0, f.capacity_ah,
                temperature_degc, r1_ohm=r1, v_diff_v=f.x[:, SLOW],
                r_diff_ohm=f.x[:, RSLOW] * factor,
                tau1_s=f.tau1_s(factor) if cfg.tau1_follows_temperature else None,
                residual_v=self.voltage_residual_v if cfg.sop_residual else None):
            charge[~f.initialised] = 0.0
            discharge[~f.initialised] = 0.0
            out += [charge, discharge]
        self._limits = tuple(out)

    # ---------------------------------------------------------------- results
    def estimate(self) -> Estimate:
        """The present estimate (pack values NaN / limits 0 until a cell is initialised)."""
        f = self.filter
        if self._limits_due:
            self._update_limits(self._limit_temperature)
            self._limits_due = False
        soc = np.where(f.initialised, np.clip(f.soc, 0.0, 1.0), np.nan)
        capacity = self.capacity.capacity_ah.copy()
        z, remaining, usable = pack_soc(soc, capacity)
        ok = np.isfinite(soc)
        c_s, d_s, c_l, d_l = self._limits
        # a cell never measured has no estimate: it is left out (protection reports it); with
        # no cell known the limits are 0
        known = f.initialised
        pack_c_s, pack_d_s = state_of_power.pack_limits(c_s[known], d_s[known])
        pack_c_l, pack_d_l = state_of_power.pack_limits(c_l[known], d_l[known])
        return Estimate(
            cell_soc=soc, cell_capacity_ah=capacity, cell_r0_ohm=self.resistance.r0_ohm.copy(),
            pack_soc=z,
            pack_soc_min=float(np.min(soc[ok])) if ok.any() else float('nan'),
            pack_soc_max=float(np.max(soc[ok])) if ok.any() else float('nan'),
            remaining_charge_ah=remaining, capacity_ah=usable,
            soh_capacity=float(np.min(capacity) / self.cell.capacity_ah),
            soh_resistance=float(np.mean(self.resistance.r0_ohm) / self.cell.r0_ohm),
            charge_current_limit_a=pack_c_s, discharge_current_limit_a=pack_d_s,
            charge_current_limit_long_a=pack_c_l, discharge_current_limit_long_a=pack_d_l,
            horizon_short_s=self.config.horizon_short_s,
            horizon_long_s=self.config.horizon_long_s,
            current_offset_a=float(np.median(f.current_offset_a)),
            at_rest=self.at_rest,
            cell_charge_current_limit_a=c_s, cell_discharge_current_limit_a=d_s,
            r0_activation_k=float(self.resistance.law.activation_k))
