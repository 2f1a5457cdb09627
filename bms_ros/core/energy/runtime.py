"""Energy runtime: the state_estimator's energy fields from its estimate and the measurements.

Feed it every accepted measurement (:meth:`update`) and the charger input
(:meth:`set_charger_present`); :meth:`evaluate` turns an Estimate (SoC, capacity, R0 per cell,
current limits) and the cell temperatures into an :class:`EnergyEstimate` whose field names are
those of bms_interfaces/BatteryEstimate. NaN = unknown or not applicable.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..cell import CellSpec
from ..estimation.estimator import Estimate
from .config import EnergyConfig
from .load_history import LoadTracker
from .state_of_energy import CellEnergyModel, Discharge

FloatArray = NDArray[np.float64]

NAN = float('nan')


@dataclass
class EnergyEstimate:
    """The energy fields of BatteryEstimate (Wh, W + = charging, s)."""

    remaining_energy_wh: float = NAN
    cell_remaining_energy_wh: FloatArray = field(default_factory=lambda: np.zeros(0))
    energy_full_wh: float = NAN
    load_power_w: float = NAN
    time_to_empty_s: float = NAN
    time_to_empty_low_s: float = NAN
    time_to_empty_high_s: float = NAN
    time_to_empty_profile_s: float = NAN
    time_to_empty_profile_low_s: float = NAN
    time_to_empty_profile_high_s: float = NAN
    time_to_full_s: float = NAN
    time_to_full_low_s: float = NAN
    time_to_full_high_s: float = NAN
    charger_present: bool = False


SCALAR_FIELDS = ('remaining_energy_wh', 'energy_full_wh', 'load_power_w', 'time_to_empty_s',
                 'time_to_empty_low_s', 'time_to_empty_high_s', 'time_to_empty_profile_s',
                 'time_to_empty_profile_low_s', 'time_to_empty_profile_high_s', 'time_to_full_s',
                 'time_to_full_low_s', 'time_to_full_high_s')


def _finite_or_nan(x: float) -> float:
    return float(x) if math.isfinite(x) else NAN


class EnergyEstimator:
    """Load tracking, charger input and the energy predictions of one series string."""

    def __init__(self, cell: CellSpec, n_cells: int, config: EnergyConfig) -> None:
        self.cell = cell
        self.n = int(n_cells)
        self.config = config
        self.model = CellEnergyModel(cell, config)
        self.load = LoadTracker(config, cell.tau1_s)
        # (t_s, bool) of the last charger_present input
        self._charger: tuple[float, bool] | None = None

    # ------------------------------------------------------------------ inputs
    def set_charger_present(self, t_s: float, present: bool) -> None:
        """The charger_present input (True: a charger is connected) at ``t_s`` (s)."""
        self._charger = (float(t_s), bool(present))

    def charger_input(self, t_s: float) -> bool | None:
        """True / False from a fresh charger_present input, None if absent or stale."""
        if self._charger is None or t_s - self._charger[0] > self.config.charger_present_timeout_s:
            return None
        return self._charger[1]

    def charger_present(self, t_s: float, current_a: float = NAN) -> bool:
        """Charger connected: the input says so, or (no input) a charging current flows."""
        given = self.charger_input(t_s)
        if given is not None:
            return given
        return math.isfinite(current_a) and current_a > self.config.idle_current_a

    def update(self, t_s: float, current_a: float, pack_voltage_v: float,
               charger: bool | None = None) -> bool:
        """One accepted measurement: time (s), pack current (A, + = charging), voltage (V);
        ``charger``: the charger input now (None: looked up at ``t_s``, the same clock).
        """
        if charger is None:
            charger = self.charger_input(t_s)
        # on a charger (or charging for a while): not part of the learnt load profile
        on_charger = charger is True or current_a > self.config.idle_current_a \
            and self.load.current_a > self.config.idle_current_a
        return self.load.update(t_s, current_a, pack_voltage_v, on_charger=on_charger)

    # ------------------------------------------------------------------ outputs
    def evaluate(self, est: Estimate, temperature_degc: ArrayLike, t_s: float,
                 soc_std: ArrayLike | None = None, capacity_std_ah: ArrayLike | None = None
                 ) -> EnergyEstimate:
        """The energy fields for Estimate ``est`` at cell temperatures ``temperature_degc``."""
        cfg = self.config
        out = EnergyEstimate(cell_remaining_energy_wh=np.full(self.n, NAN))
        out.load_power_w = _finite_or_nan(self.load.power_w)
        out.charger_present = bool(self.charger_present(t_s, self.load.current_a))
        soc = np.asarray(est.cell_soc, dtype=float)
        ok = np.isfinite(soc)
        if not ok.any():
            return out
        temp = np.asarray(temperature_degc, dtype=float)
        temp = np.where(np.isfinite(temp), temp, np.nanmean(temp) if np.isfinite(temp).any()
                        else 25.0)[ok]
        z = soc[ok]
        q = np.asarray(est.cell_capacity_ah, dtype=float)[ok]
        r0_25 = np.asarray(est.cell_r0_ohm, dtype=float)[ok]
        law_k = getattr(est, 'r0_activation_k', None)        # the estimator's law (None: file's)
        r = self.model.resistance_ohm(r0_25, temp, law_k)
        r_peak = self.model.peak_resistance_ohm(r0_25, temp, activation_k=law_k)  # short peaks
        sigma = cfg.band_sigma
        z_std = np.full(z.size, cfg.soc_std) if soc_std is None else \
            np.nan_to_num(np.asarray(soc_std, dtype=float)[ok], nan=cfg.soc_std)
        q_std = cfg.capacity_std_rel * q if capacity_std_ah is None else \
            np.asarray(capacity_std_ah, dtype=float)[ok]
        current = self.load.current_a
        drawn = self.load.drawn_power_w
        discharging = math.isfinite(current) and current < -cfg.idle_current_a
        charging = math.isfinite(current) and current > cfg.idle_current_a
        profile = self.load.profile()
        profile_ok = profile is not None and profile.mean_drawn_w > \
            cfg.idle_current_a * self._pack_voltage(z, temp)

        # the load the energy refers to: the learnt profile (its mean, losses and peaks), else
        # the present filtered one, else none
        r_loss: FloatArray | None = None
        r_pk: FloatArray | None
        if profile is not None and profile_ok:
            power, loss, peak, r_pk = (profile.mean_drawn_w, profile.loss_factor,
                                       profile.peak_drawn_w, r_peak)
            r_loss = self.model.loss_resistance_ohm(r0_25, temp, profile.loss_factor,
                                                    profile.rc_loss_factor, law_k)
        elif discharging:
            power, loss, peak, r_pk = drawn, 1.0, drawn, None
        else:
            power, loss, peak, r_pk = 0.0, 1.0, 0.0, None
        mid = self.model.discharge(z, q, r, temp, power, peak, loss, r_pk, r_loss)
        out.remaining_energy_wh = mid.energy_wh
        i_mean = mid.charge_ah * 3600.0 / mid.time_s if mid.time_s > 0 and \
            math.isfinite(mid.time_s) else 0.0
        cells = np.full(self.n, NAN)
        cells[ok] = self.model.cell_remaining_energy_wh(z, q, r, temp, i_mean)
        out.cell_remaining_energy_wh = cells
        # a full pack: every cell gains the charge the strongest can still take
        gain = float(np.min((cfg.soc_ceiling - z) * q))
        full = self.model.discharge(np.clip(z + max(gain, 0.0) / q, 0.0, 1.0), q, r, temp, power,
                                    peak, loss, r_pk, r_loss)
        out.energy_full_wh = full.energy_wh

        if discharging:
            p_std = self.load.power_std_w
            present = mid if not profile_ok else self.model.discharge(z, q, r, temp, drawn)
            out.time_to_empty_s, out.time_to_empty_low_s, out.time_to_empty_high_s = \
                self._tte_band(z, z_std, q, q_std, r, temp, drawn, p_std, drawn, 1.0, present)
        if profile is not None and profile_ok:
            p = profile.mean_drawn_w
            base = mid
            horizon = base.time_s if math.isfinite(base.time_s) else profile.duration_s
            # the mean over the horizon of a load with this block spread (and this window)
            p_std = profile.block_std_w * math.sqrt(
                cfg.profile_block_s / max(horizon, cfg.profile_block_s) + 1.0 / profile.blocks)
            (out.time_to_empty_profile_s, out.time_to_empty_profile_low_s,
             out.time_to_empty_profile_high_s) = self._tte_band(
                z, z_std, q, q_std, r, temp, p, p_std, profile.peak_drawn_w,
                profile.loss_factor, base, r_peak, r_loss)
        if charging or out.charger_present:
            i_cc = self._charge_current(est, current)
            ttf = self.model.time_to_full_s(z, q, r, temp, i_cc)
            # more SoC: sooner; more capacity: later -> the band pairs SoC up with capacity down
            low = self.model.time_to_full_s(np.clip(z + sigma * z_std, 0.0, 1.0),
                                            np.maximum(q - sigma * q_std, 1e-6), r, temp, i_cc)
            high = self.model.time_to_full_s(np.clip(z - sigma * z_std, 0.0, 1.0),
                                             q + sigma * q_std, r, temp, i_cc)
            out.time_to_full_s = _finite_or_nan(ttf)
            out.time_to_full_low_s = _finite_or_nan(low)
            out.time_to_full_high_s = _finite_or_nan(high)
        return out

    def _tte_band(self, z: FloatArray, z_std: FloatArray, q: FloatArray, q_std: FloatArray,
                  r: FloatArray, temp: FloatArray, power: float, power_std: float, peak: float,
                  loss: float, mid: Discharge, r_peak: FloatArray | None = None,
                  r_loss: FloatArray | None = None) -> tuple[float, float, float]:
        """(time to empty, low, high) in s at ``power`` W drawn, band from SoC, capacity, load."""
        k = self.config.band_sigma
        low = self.model.discharge(np.clip(z - k * z_std, 0.0, 1.0),
                                   np.maximum(q - k * q_std, 1e-6), r, temp,
                                   power + k * power_std, max(peak, power + k * power_std), loss,
                                   r_peak, r_loss)
        high = self.model.discharge(np.clip(z + k * z_std, 0.0, 1.0), q + k * q_std, r, temp,
                                    max(power - k * power_std, 0.05 * power), peak, loss, r_peak,
                                    r_loss)
        return (_finite_or_nan(mid.time_s), _finite_or_nan(low.time_s),
                _finite_or_nan(high.time_s))

    def _charge_current(self, est: Estimate, current_a: float) -> float:
        """CC current (A): the charger's (config, else the measured one), within the limit."""
        limit = float(getattr(est, 'charge_current_limit_long_a', NAN))
        limit = limit if math.isfinite(limit) else self.cell.limits.charge_current_max_a
        given = self.config.charger_current_a
        if given <= 0.0:
            given = current_a if math.isfinite(current_a) and \
                current_a > self.config.idle_current_a else limit
        return min(given, limit)

    def _pack_voltage(self, z: FloatArray, temp: FloatArray) -> float:
        return float(np.sum(self.cell.ocv.ocv(z, temp)))
