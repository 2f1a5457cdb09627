"""The pack estimator: per-cell SoC, capacity and R0, pack SoC, state of power, rest detection.

Pure numpy, vectorised over the series cells; the node and estimate_csv both drive it with
explicit times (``t_s`` on one clock), so it runs the same live, offline and in tests.

Pack SoC (see docs/estimation.md): with D = min_i(soc_i Q_i) the charge the pack can still
deliver before its weakest cell is empty, and C = min_i((1 - soc_i) Q_i) the charge it can still
take before its strongest cell is full,

    pack_soc = D / (D + C)          (= min_soc / (min_soc + 1 - max_soc) for equal capacities)

so the pack reads 0 when any cell is empty and 1 when any cell is full; D is the remaining
charge and D + C the usable capacity at the present imbalance.
"""
import logging
from dataclasses import dataclass, field

import numpy as np

from ..plausibility import Plausibility
from . import state_of_power
from .soc_filter import QINV, SLOW, SOC, VRC, SocFilter
from .soh import CapacityEstimator, ResistanceEstimator

log = logging.getLogger(__name__)

PAIR_PERIOD_S = 1.0     # capacity pairs: the filter's SoC offered at most this often (s)


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
    cell_charge_current_limit_a: np.ndarray = field(default=None, repr=False)
    cell_discharge_current_limit_a: np.ndarray = field(default=None, repr=False)


def pack_soc(cell_soc, cell_capacity_ah):
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

    def __init__(self, cell, n_cells, config):
        self.cell = cell
        self.config = config
        self.n = int(n_cells)
        self.filter = SocFilter(cell, self.n, config)
        self.resistance = ResistanceEstimator(cell, self.n, config)
        self.filter.temperature_law = self.resistance.law    # one learnt law for R0, R1, r_diff
        self.capacity = CapacityEstimator(cell, self.n, config)
        # the measurement path (interface.step_from_measurement) asks it which cells to use
        self.plausibility = Plausibility(cell, self.n, config.plausibility)
        self.t_s = None
        self.last_current_a = np.zeros(self.n)
        self.rest_s = 0.0
        self.anchored = False
        self.anchors = 0
        self._rest_ema = None                        # voltage low-passes at rest (relaxation)
        self.full_anchors = 0
        self._full_anchored = np.zeros(self.n, dtype=bool)   # once per charge
        self.recent_current_a = np.zeros(self.n)   # low-pass of |I| over diffusion_time_s
        self._given_soc = False
        self._zero_current_a = None                 # low-pass of the current at zero current
        self._limits = (np.zeros(self.n), np.zeros(self.n), np.zeros(self.n), np.zeros(self.n))
        self._limit_temperature = np.full(self.n, np.nan)
        self._limits_due = False
        self._next_pair_t_s = -np.inf

    # ---------------------------------------------------------------- initialisation
    @property
    def initialised(self):
        """Per cell: True once its SoC was started (from OCV, a given SoC or a saved state)."""
        return self.filter.initialised

    def start_from_soc(self, soc, soc_std=None):
        """Start from a given SoC (scalar or per cell) of ``initial_soc_std`` doubt."""
        std = self.config.initial_soc_std if soc_std is None else soc_std
        self.filter.initialise(np.clip(soc, 0.0, 1.0), std, capacity_ah=self.capacity.capacity_ah,
                               capacity_std=self.capacity.std_ah / self.capacity.capacity_ah,
                               from_ocv=False)
        self._given_soc = True

    def restore(self, cell_soc, cell_capacity_ah, cell_capacity_std_ah, cell_r0_ohm,
                current_offset_a=0.0, age_s=None):
        """Start from persisted values (validated by the caller) with ``restored_soc_std``,
        grown by ``restored_soc_std_per_day`` for a state ``age_s`` old (self-discharge and
        whatever happened while off; None: age unknown, counted as 30 days).
        """
        self.capacity.set(cell_capacity_ah, cell_capacity_std_ah)
        self.resistance.set(cell_r0_ohm)
        days = 30.0 if age_s is None or not np.isfinite(age_s) or age_s < 0 else age_s / 86400.0
        std = min(self.config.restored_soc_std + self.config.restored_soc_std_per_day * days, 0.5)
        self.filter.initialise(np.clip(cell_soc, 0.0, 1.0), std,
                               capacity_ah=self.capacity.capacity_ah,
                               capacity_std=self.capacity.std_ah / self.capacity.capacity_ah,
                               current_offset_a=current_offset_a, from_ocv=False)

    def zero_current(self, current_a, dt_s):
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

    def soc_from_voltage(self, voltage_v, current_a, temperature_degc):
        """(soc, std, v_rc, v_diff) per cell from a terminal voltage under an unknown history.

        At rest current this is OCV. Under load the voltage holds R0 i and the polarisation of
        both RC pairs, which depends on how long the load has run (unknown): the fraction
        ``startup_polarisation`` of the settled polarisation (R1 i for the fast pair, r_diff i
        for the slow one) is assumed, and the doubt covers the rest and the R0 error.
        """
        factor = self.filter.arrhenius(temperature_degc)
        i = np.asarray(current_a, dtype=float)
        r0 = self.resistance.r0_ohm * factor
        share = self.config.startup_polarisation
        settled_rc = self.cell.r1_ohm * factor * i
        settled_diff = self.config.diffusion_resistance_ratio * self.cell.r1_ohm * factor * i
        v_rc, v_diff = share * settled_rc, share * settled_diff
        ocv = np.asarray(voltage_v, dtype=float) - r0 * i - v_rc - v_diff
        soc = self.cell.ocv.soc_from_ocv(ocv, temperature_degc)
        noise_v = self.config.rest_ocv_noise_v + (1.0 - share) * np.abs(
            settled_rc + settled_diff) + 0.3 * np.abs(r0 * i)
        return soc, self._ocv_soc_std(ocv, noise_v, temperature_degc), v_rc, v_diff

    def _ocv_soc_std(self, ocv_v, noise_v, temperature_degc):
        """SoC doubt of an OCV known to +-noise_v: half the SoC span the inverse table gives
        (on a plateau a few mV span tens of %, which a local slope at one point would hide).
        """
        inverse = self.cell.ocv.soc_from_ocv
        span = inverse(ocv_v + noise_v, temperature_degc) - inverse(ocv_v - noise_v,
                                                                    temperature_degc)
        return np.clip(0.5 * span, 0.005, 0.5)

    def set_soc(self, soc):
        """Set every (or each) cell SoC, 0..1, as a trusted value (service set_soc)."""
        soc = np.broadcast_to(np.clip(np.asarray(soc, dtype=float), 0.0, 1.0), (self.n,))
        self.filter.initialise(soc, 0.01, capacity_ah=self.capacity.capacity_ah,
                               capacity_std=self.capacity.std_ah / self.capacity.capacity_ah,
                               from_ocv=False)
        self.resistance.break_sequence()
        self.capacity.forget_anchor()

    def reanchor_from_ocv(self, voltage_v, temperature_degc, valid, doubt_floor=True,
                          relaxation_v=0.0):
        """Take the voltages as relaxed OCV: a SoC measurement and a capacity anchor.

        ``doubt_floor``: doubt the filter's SoC at least ``anchor_soc_std_min`` first (False:
        a SoC given at start keeps the doubt it was given with). ``relaxation_v``: the
        relaxation still to come per cell (V, signed): the OCV read is voltage + it, and its
        size is added to the doubt.
        """
        valid = np.asarray(valid, dtype=bool) & np.isfinite(voltage_v)
        relaxation_v = np.broadcast_to(np.asarray(relaxation_v, dtype=float), (self.n,))
        ocv_v = np.asarray(voltage_v, dtype=float) + relaxation_v
        soc = self.cell.ocv.soc_from_ocv(ocv_v, temperature_degc)
        noise_v = self.config.rest_ocv_noise_v + np.abs(relaxation_v)
        std = np.clip(noise_v / np.maximum(self.filter.ocv_slope(soc), 1e-3), 0.002, 0.5)
        fresh = valid & ~self.filter.initialised
        if fresh.any():
            self.filter.initialise(soc, std, cells=fresh, capacity_ah=self.capacity.capacity_ah,
                                   capacity_std=self.capacity.std_ah / self.capacity.capacity_ah)
        # a filter can be over-confident after hours of counting: doubt it at least this much
        old = valid & ~fresh
        if doubt_floor:
            self.filter.P[old, SOC, SOC] = np.maximum(self.filter.P[old, SOC, SOC],
                                                      self.config.anchor_soc_std_min ** 2)
        self.filter.update_soc(soc, std, old)
        self.filter.relaxed(valid)
        changed = self.capacity.anchor(soc, std, valid)
        if changed.any():
            self.filter.set_capacity(self.capacity.capacity_ah, self.capacity.std_ah, changed,
                                     self.capacity.offset_sensitivity_h)
        self.capacity.fill_pair_share(self.filter.P[:, SOC, QINV], self.filter.P[:, QINV, QINV])
        self.anchors += 1
        return valid

    # ---------------------------------------------------------------- the update
    def step(self, t_s, current_a, cell_voltage_v, cell_voltage_valid, cell_temperature_degc,
             cell_current_a=0.0):
        """One measurement: time (s), pack current (A, + = charging), per-cell V, validity, degC.

        ``cell_current_a`` is added to the pack current per cell (e.g. minus bleed current).
        Returns False (and changes nothing) if ``t_s`` does not advance.
        """
        if self.t_s is not None and not t_s > self.t_s:
            return False
        cfg = self.config
        v = np.asarray(cell_voltage_v, dtype=float)
        valid = np.asarray(cell_voltage_valid, dtype=bool) & np.isfinite(v)
        temp = np.asarray(cell_temperature_degc, dtype=float)
        temp_model = np.where(np.isfinite(temp), temp, 25.0)
        temp_model.flags.writeable = False       # read-only: its Arrhenius factor is cached
        # the current of each cell: the pack current plus e.g. minus its bleed current
        i_cells = current_a + np.broadcast_to(np.asarray(cell_current_a, dtype=float), (self.n,))
        rest_a = cfg.rest_current_c * self.cell.capacity_ah
        first = self.t_s is None
        fresh = valid & ~self.filter.initialised
        if fresh.any():
            soc, std, v_rc, v_diff = self.soc_from_voltage(v, i_cells, temp_model)
            self.filter.initialise(soc, std, cells=fresh, capacity_ah=self.capacity.capacity_ah,
                                   capacity_std=self.capacity.std_ah / self.capacity.capacity_ah)
            self.filter.x[fresh, VRC] = np.broadcast_to(v_rc, (self.n,))[fresh]
            self.filter.x[fresh, SLOW] = np.broadcast_to(v_diff, (self.n,))[fresh]
        if not first:
            dt = t_s - self.t_s
            i_interval = 0.5 * (i_cells + self.last_current_a)   # trapezoid over the step
            if dt > cfg.max_step_s:
                # the current during a gap is unknown: add the doubt of its charge to the SoC
                self.resistance.break_sequence()
                self.capacity.forget_anchor()
                doubt_a = 0.5 * np.abs(i_cells - self.last_current_a) \
                    + 0.05 * self.cell.capacity_ah
                self.filter.P[:, SOC, SOC] += (doubt_a * dt / (3600.0 * self.cell.capacity_ah)) ** 2
            w = np.exp(-dt / cfg.diffusion_time_s)
            self.recent_current_a = w * self.recent_current_a + (1.0 - w) * np.abs(i_interval)
            self.filter.predict(dt, i_interval, temp_model, self._slow_std(i_interval))
            self.capacity.count(dt, i_interval - self.filter.current_offset_a,
                                self.filter.current_noise_a, self.filter.offset_std_a)
            # rest: offset-corrected current small for long enough -> re-anchor once per rest
            offset = self.filter.current_offset_a
            # the offset is one pack value unless set per cell: no median then (its cost)
            low, high = float(offset.min()), float(offset.max())
            i_pack = current_a - (low if low == high else float(np.median(offset)))
            if abs(i_pack) <= rest_a:
                if self.rest_s == 0.0:
                    self._rest_ema = (v.copy(), v.copy())
                self.rest_s += dt
                self._track_relaxation(v, dt)
            else:
                self.rest_s = 0.0
                self.anchored = False
        self.t_s = t_s
        self.last_current_a = i_cells
        if cfg.r1_follows_r0:
            self.filter.r1_scale = self.resistance.r0_ohm / self.cell.r0_ohm
        factor = self.filter.arrhenius(temp_model)
        r0 = self.resistance.r0_ohm * factor
        # v - OCV - v_rc - v_diff = R0 (i - offset); the R0 estimator differences it
        ocv_v = self.cell.ocv.ocv(self.filter.soc, temp_model)
        self.resistance.update(self._ohmic(v, ocv_v), i_cells, factor,
                               valid & (self.filter.P[:, SOC, SOC] < 0.05 ** 2), temp)
        # at rest, what is still to relax is doubted like the model error (0: not at rest)
        self.filter.relaxation_doubt_v = self._relaxation_doubt_v()
        # the ECM's fast error grows with the current (resistance varies with SoC and current)
        noise_v = cfg.voltage_noise_v + cfg.voltage_noise_per_c_v * np.abs(
            i_cells) / self.cell.capacity_ah
        startup_anchor = first and cfg.startup_anchor and abs(current_a) <= rest_a
        # at a start at rest the first voltage is read once, as OCV (below), not twice
        self.filter.update(v, i_cells, temp_model, r0, valid & ~startup_anchor, noise_v=noise_v,
                           prior_ocv_v=ocv_v)
        self.resistance.remember(self._ohmic(v, self.filter.posterior_ocv_v), i_cells, factor,
                                 valid)
        if startup_anchor:
            # a pack that was off has rested: its voltage is OCV; a SoC given at start is a
            # prior of the doubt it was given with (initial_soc_std), fused with that OCV
            self.reanchor_from_ocv(v, temp_model, valid, doubt_floor=not self._given_soc)
        # pair points at most once per PAIR_PERIOD_S (turning points are minutes apart)
        if cfg.capacity_from_pairs and cfg.estimate_capacity and t_s >= self._next_pair_t_s:
            self._next_pair_t_s = t_s + PAIR_PERIOD_S
            self._soc_pair(valid, i_cells)
        if cfg.full_charge_anchor:
            self._full_charge(v, i_cells, valid)
        if self.rest_s >= cfg.rest_time_s and not self.anchored:
            self.reanchor_from_ocv(v, temp_model, valid, relaxation_v=self.relaxation_v())
            self.anchored = True
            log.debug('re-anchored SoC from OCV after %.0f s at rest', self.rest_s)
        # the limits are worked out when an estimate is asked for (publish rate, not 10 Hz)
        self._limit_temperature = temp
        self._limits_due = True
        return True

    def _soc_pair(self, valid, cell_current_a):
        """Offer the capacity estimator the cells whose filtered SoC is sure (variance small
        after the voltage has spoken where the OCV is steep, at a moderate current): see
        :meth:`.soh.CapacityEstimator.pair`.
        """
        cfg = self.config
        f = self.filter
        var = f.P[:, SOC, SOC]
        sure = valid & f.initialised & (var <= cfg.capacity_pair_soc_std ** 2) & (
            np.abs(cell_current_a - f.current_offset_a)
            <= cfg.capacity_pair_max_current_c * self.cell.capacity_ah)
        if not sure.any():
            return
        soc = f.soc
        sure &= (soc >= cfg.capacity_pair_soc_min) & (soc <= cfg.capacity_pair_soc_max) & (
            f.ocv_slope(soc) >= cfg.capacity_pair_min_slope_v)
        changed = self.capacity.pair(f.soc.copy(), var.copy(), sure,
                                     soc_capacity_cov=f.P[:, SOC, QINV].copy(),
                                     capacity_inverse=f.x[:, QINV].copy(),
                                     capacity_inverse_var=f.P[:, QINV, QINV].copy())
        if changed.any():
            f.set_capacity(self.capacity.capacity_ah, self.capacity.std_ah, changed,
                           self.capacity.offset_sensitivity_h)

    def _full_charge(self, voltage_v, cell_current_a, valid):
        """End-of-charge anchor: a cell held at the charge cut-off voltage while its current
        has tapered to ``full_charge_current_c`` (the CV phase ending) is full: SoC 1 with
        ``full_charge_soc_std``, and a capacity anchor. Once per charge (again after a
        discharge).
        """
        cfg = self.config
        c_a = self.cell.capacity_ah
        i = cell_current_a - self.filter.current_offset_a
        self._full_anchored &= ~(i < -cfg.rest_current_c * c_a)
        full = valid & ~self._full_anchored & (i > 0.0) & (i <= cfg.full_charge_current_c * c_a) \
            & (voltage_v >= self.cell.limits.voltage_max_v - cfg.full_charge_voltage_margin_v)
        if not full.any():
            return
        std = np.full(self.n, cfg.full_charge_soc_std)
        self.filter.P[full, SOC, SOC] = np.maximum(self.filter.P[full, SOC, SOC],
                                                   cfg.anchor_soc_std_min ** 2)
        self.filter.update_soc(np.ones(self.n), std, full)
        changed = self.capacity.anchor(np.ones(self.n), std, full)
        if changed.any():
            self.filter.set_capacity(self.capacity.capacity_ah, self.capacity.std_ah, changed,
                                     self.capacity.offset_sensitivity_h)
        self.capacity.fill_pair_share(self.filter.P[:, SOC, QINV], self.filter.P[:, QINV, QINV])
        self._full_anchored |= full
        self.full_anchors += 1
        log.debug('end-of-charge anchor on %d cells', int(full.sum()))

    def _track_relaxation(self, voltage_v, dt_s):
        """Two low-passes of the voltage at rest (30 s and 90 s): for a voltage drifting at r V/s
        they differ by r x 60 s, so their difference is a drift rate robust to the sensor's
        noise and 1 mV steps.
        """
        fast, slow = self._rest_ema
        v = np.where(np.isfinite(voltage_v), voltage_v, fast)
        fast += (1.0 - np.exp(-dt_s / 30.0)) * (v - fast)
        slow += (1.0 - np.exp(-dt_s / 90.0)) * (v - slow)

    def relaxation_v(self):
        """Relaxation still to come at rest per cell (V, signed), taking the relaxation as
        exponential with time constant T = ``relaxation_time_s``: for V = OCV - a exp(-t / T)
        the two low-passes differ by a exp(-t / T) (T / (T - 90) - T / (T - 30)), so what is
        left follows from their difference (for a short T: drift rate x T); 0 before two
        minutes of rest or with T = 0.
        """
        tau = self.config.relaxation_time_s
        if self._rest_ema is None or self.rest_s < 120.0 or tau <= 0.0:
            return np.zeros(self.n)
        fast, slow = self._rest_ema
        k = tau / (tau - 90.0) - tau / (tau - 30.0) if tau > 180.0 else 60.0 / tau
        return np.nan_to_num((fast - slow) / k)

    def _relaxation_doubt_v(self):
        """Doubt of the voltage as OCV at rest (V per cell): the drift x
        ``relaxation_doubt_time_s`` (0: ``relaxation_time_s``), since a diffusion tail relaxes
        longer than the exponential the anchor's correction assumes; 0 when not at rest.
        """
        cfg = self.config
        if self.rest_s <= 0.0 or cfg.relaxation_time_s <= 0.0:
            return np.zeros(self.n)
        factor = max(cfg.relaxation_doubt_time_s / cfg.relaxation_time_s, 1.0)
        return factor * np.abs(self.relaxation_v())

    def _ohmic(self, voltage_v, ocv_v):
        """v - OCV - v_rc - v_diff per cell (OCV at the filter's SoC): what the model leaves to
        R0 (V).
        """
        f = self.filter
        return voltage_v - ocv_v - f.x[:, VRC] - f.x[:, SLOW]

    def _slow_std(self, current_a):
        """Stationary std of the diffusion model error for the present and recent current (V)."""
        load_c = np.maximum(np.abs(current_a), self.recent_current_a) / self.cell.capacity_ah
        return self.config.diffusion_noise_per_c_v * load_c

    @property
    def at_rest(self):
        """True once |I| (offset-corrected) stayed below rest_current_c for rest_time_s (s)."""
        return self.rest_s >= self.config.rest_time_s

    def _update_limits(self, temperature_degc):
        cfg = self.config
        f = self.filter
        r0 = self.resistance.at(np.where(np.isfinite(temperature_degc), temperature_degc, 25.0))
        out = []
        for horizon in (cfg.horizon_short_s, cfg.horizon_long_s):
            charge, discharge = state_of_power.current_limits(
                self.cell, cfg, horizon, np.clip(f.soc, 0.0, 1.0), f.x[:, VRC] + f.x[:, SLOW],
                r0, f.capacity_ah, temperature_degc)
            charge[~f.initialised] = 0.0
            discharge[~f.initialised] = 0.0
            out += [charge, discharge]
        self._limits = tuple(out)

    # ---------------------------------------------------------------- results
    def estimate(self):
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
            cell_charge_current_limit_a=c_s, cell_discharge_current_limit_a=d_s)
