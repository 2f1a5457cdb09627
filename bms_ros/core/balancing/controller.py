"""Passive (bleed-resistor) balancing controller: inputs, inhibits, cell choice, accounting.

The strategies are one module each (voltage.py, soc.py), the resistor thermal model is
thermal.py and the configuration config.py; this module only combines them.

The controller is pure numpy, vectorised over the series cells, and is driven with explicit
times (``now_s``, measurement and estimate stamps in seconds on one clock), so it runs the
same in a node, in a time-scaled simulation and in unit tests.

Modes: ``off`` never bleeds; ``voltage`` (voltage.py) and ``soc`` (soc.py) choose which cells
want to bleed, only while the pack charges or has rested for ``rest_time_s`` and only for cells
at or above ``min_cell_voltage_v``.

In every mode: at most ``max_bleeding_cells`` cells at once (the highest excess first), duty
cycling (``duty_on_s`` on, ``duty_off_s`` off), no bleeding of a cell whose temperature is at
or above ``max_cell_temperature_degc`` or whose bleed resistor (first-order thermal model) is
at or above ``resistor_max_temperature_degc`` (both with ``temperature_hysteresis_degc``),
never the lowest cell, and nothing at all while a protection trip is latched, the protection
status is missing or old, the measurement is stale, rejected or has an invalid cell voltage,
the current is unknown, or (SoC mode) the estimate is missing or old.

About 410 lines (with type hints): the input validation (set_measurement, set_estimate,
set_mode) is most of it and belongs with the inhibits that read what it accepted.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sized
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..profile import Profile
from .config import (
    MAX_SOC_THRESHOLD,
    MAX_THRESHOLD_V,
    MODE_NAMES,
    MODE_OFF,
    MODE_SOC,
    MODE_VOLTAGE,
    BalancingConfig,
)
from .soc import SocStrategy
from .thermal import BleedThermalModel
from .voltage import VoltageStrategy

log = logging.getLogger(__name__)

# Inhibit reasons (BalancingStatus.inhibit_reason); "" = not inhibited.
REASON_MODE_OFF = 'mode off'
REASON_NO_MEASUREMENT = 'no measurement'
REASON_STALE_MEASUREMENT = 'stale measurement'
REASON_REJECTED_MEASUREMENT = 'rejected measurement'
REASON_INVALID_VOLTAGE = 'invalid cell voltage'
REASON_CURRENT_UNKNOWN = 'pack current unknown'
REASON_NO_PROTECTION = 'no protection status'
REASON_STALE_PROTECTION = 'stale protection status'
REASON_TRIP = 'protection trip latched'
REASON_DISCHARGING = 'discharging'
REASON_WAITING_REST = 'waiting for rest'
REASON_NO_ESTIMATE = 'no estimate'
REASON_STALE_ESTIMATE = 'stale estimate'
REASON_THERMAL = 'thermal limit'


@dataclass
class BalancingResult:
    """One controller step: the command and the status, named as BalancingStatus fields."""

    mode: int
    active: bool                     # at least one cell bleeding now
    inhibit_reason: str              # "" = not inhibited
    cell_bleed: NDArray[np.bool_]    # bool per cell, the command
    charge_removed_ah: NDArray[np.float64]   # per cell since start (estimated: V/R x on-time)
    energy_bled_wh: float            # total since start (V^2/R x on-time)
    cell_voltage_spread_v: float     # max - min valid cell voltage (NaN if none)
    cell_soc_spread: float           # max - min estimated cell SoC, 0..1 (NaN if none)


class BalancingController:
    """Decides which bleed resistors to switch on; call ``set_*`` with inputs, then ``update``."""

    def __init__(self, config: BalancingConfig, cells_series: int, sensor_of_cell: ArrayLike,
                 temperature_sensors: int | None = None) -> None:
        """:param sensor_of_cell: index of the temperature sensor of each cell.
        :param temperature_sensors: sensors per measurement (default: the highest index + 1).
        """
        self.config = config
        self.n = int(cells_series)
        self.sensor_of_cell = np.asarray(sensor_of_cell, dtype=int)
        if self.sensor_of_cell.shape != (self.n,):
            raise ValueError(f'sensor_of_cell: expected {self.n} indices')
        self.n_sensors = (int(temperature_sensors) if temperature_sensors is not None
                          else int(self.sensor_of_cell.max()) + 1)
        if self.n_sensors <= self.sensor_of_cell.max():
            raise ValueError(f'sensor_of_cell: index above {self.n_sensors - 1}')
        self.mode = config.mode_number
        self.threshold_v = config.threshold_v
        self.hysteresis_v = config.hysteresis_v
        self.soc_threshold = config.soc_threshold
        self.measurements_rejected = 0
        self.estimates_rejected = 0
        # inputs
        self._meas: dict[str, Any] | None = None   # arrays of the last accepted measurement
        self._meas_stamp_s = math.nan               # its stamp (s; set with it)
        self._rejected_pending = False    # a measurement was rejected since the last update
        # update time of the latest rejection, until a good one
        self._rejected_at_s: float | None = None
        self._rest_since_s: float | None = None
        self._trip_latched: bool | None = None
        self._prot_stamp_s = math.nan               # stamp of the protection status (s)
        # state
        self._last_now_s: float | None = None
        self._command = np.zeros(self.n, dtype=bool)
        self.voltage = VoltageStrategy(config, self.n)
        self.soc = SocStrategy(config, self.n)
        self.thermal = BleedThermalModel(config, self.n)
        self.charge_removed_ah = np.zeros(self.n)
        self.energy_bled_wh = 0.0

    @classmethod
    def from_profile(cls, profile: Profile) -> BalancingController:
        """Controller for a loaded bms_ros.core.profile.Profile (validates ``balancing:``)."""
        config = BalancingConfig.from_section(profile.section('balancing'), profile.pack)
        pack = profile.pack
        return cls(config, pack.cells_series, pack.sensor_of_cell(), pack.temperature_sensors)

    # ----------------------------------------------------------------------------- inputs
    def set_measurement(self, measurement: Mapping[str, Any], stamp_s: float) -> bool:
        """Take a measurement (mapping named like PackMeasurement fields) taken at ``stamp_s``.

        Returns False, counts it and holds balancing off if it is malformed (wrong array
        length, non-finite value flagged valid, non-finite current).
        """
        try:
            volts = np.asarray(measurement['cell_voltages_v'], dtype=float)
            v_valid = _valid_flags(measurement.get('cell_voltage_valid'), volts)
            temps = np.asarray(measurement['temperatures_degc'], dtype=float)
            t_valid = _valid_flags(measurement.get('temperature_valid'), temps)
            current_a = float(measurement['pack_current_a'])
            stamp_s = float(stamp_s)
        except (KeyError, TypeError, ValueError) as error:
            return self._reject_measurement(f'malformed: {error}')
        if volts.shape != (self.n,) or v_valid.shape != (self.n,):
            return self._reject_measurement(f'expected {self.n} cell voltages, got {volts.size}')
        if temps.shape != (self.n_sensors,) or t_valid.shape != (self.n_sensors,):
            return self._reject_measurement(
                f'expected {self.n_sensors} temperatures, got {temps.size}')
        if np.any(v_valid & ~np.isfinite(volts)) or np.any(t_valid & ~np.isfinite(temps)):
            return self._reject_measurement('non-finite value flagged valid')
        if not math.isfinite(stamp_s):
            return self._reject_measurement('non-finite stamp')
        current_stale = bool(measurement.get('current_stale', False))
        if not math.isfinite(current_a) and not current_stale:
            return self._reject_measurement('non-finite pack current')
        self._meas = {
            'cell_voltages_v': volts, 'cell_voltage_valid': v_valid,
            'temperatures_degc': temps, 'temperature_valid': t_valid,
            'pack_current_a': current_a,
            'cell_voltages_stale': bool(measurement.get('cell_voltages_stale', False)),
            'temperatures_stale': bool(measurement.get('temperatures_stale', False)),
            'current_stale': current_stale,
        }
        self._meas_stamp_s = stamp_s
        self._rejected_pending, self._rejected_at_s = False, None
        self.voltage.collect_clean(volts, v_valid, stamp_s)
        if current_stale or not abs(current_a) < self.config.rest_current_a:
            self._rest_since_s = None
        elif self._rest_since_s is None or stamp_s < self._rest_since_s:
            self._rest_since_s = stamp_s
        return True

    def set_estimate(self, estimate: Mapping[str, Any], stamp_s: float) -> bool:
        """Take an estimate (mapping with BatteryEstimate's cell_soc 0..1, cell_capacity_ah).

        Returns False and counts it if malformed (length, non-finite, capacity <= 0).
        """
        try:
            soc = np.asarray(estimate['cell_soc'], dtype=float)
            capacity = np.asarray(estimate['cell_capacity_ah'], dtype=float)
            stamp_s = float(stamp_s)
        except (KeyError, TypeError, ValueError) as error:
            return self._reject_estimate(f'malformed: {error}')
        if soc.shape != (self.n,) or capacity.shape != (self.n,):
            return self._reject_estimate(f'expected {self.n} cell SoC and capacities, '
                                         f'got {soc.size} and {capacity.size}')
        if not (np.all(np.isfinite(soc)) and np.all(np.isfinite(capacity))
                and math.isfinite(stamp_s)):
            return self._reject_estimate('non-finite value')
        if np.any(capacity <= 0.0) or np.any(soc < -0.05) or np.any(soc > 1.05):
            return self._reject_estimate('SoC outside 0..1 or capacity <= 0')
        self.soc.take_estimate(np.clip(soc, 0.0, 1.0), capacity, stamp_s)
        return True

    def set_protection(self, trip_latched: bool, stamp_s: float) -> None:
        """Take the protection status: any latched trip holds balancing off."""
        self._trip_latched = bool(trip_latched)
        self._prot_stamp_s = float(stamp_s)

    def set_mode(self, mode: int, threshold_v: float | None = None,
                 hysteresis_v: float | None = None, soc_threshold: float | None = None
                 ) -> tuple[bool, str]:
        """Change mode and thresholds (None or <= 0 keeps the current value).

        Returns (success, message); on refusal nothing changes.
        """
        if mode not in MODE_NAMES:
            return False, f'unknown mode {mode} (0 = off, 1 = voltage, 2 = soc)'
        values = {'threshold_v': threshold_v, 'hysteresis_v': hysteresis_v,
                  'soc_threshold': soc_threshold}
        for name, value in values.items():
            if value is not None and not math.isfinite(value):
                return False, f'{name} must be a finite number, got {value}'
        keep = {name: value is None or value <= 0.0 for name, value in values.items()}
        new_threshold = self.threshold_v if threshold_v is None or keep['threshold_v'] \
            else float(threshold_v)
        new_hysteresis = self.hysteresis_v if hysteresis_v is None or keep['hysteresis_v'] \
            else float(hysteresis_v)
        new_soc = self.soc_threshold if soc_threshold is None or keep['soc_threshold'] \
            else float(soc_threshold)
        if new_threshold > MAX_THRESHOLD_V:
            return False, f'threshold_v must be <= {MAX_THRESHOLD_V} V, got {new_threshold:g}'
        if new_hysteresis >= new_threshold:
            return False, (f'hysteresis_v ({new_hysteresis:g} V) must be below threshold_v '
                           f'({new_threshold:g} V)')
        if new_soc > MAX_SOC_THRESHOLD:
            return False, f'soc_threshold must be <= {MAX_SOC_THRESHOLD}, got {new_soc:g}'
        if self.config.soc_hysteresis >= new_soc:
            return False, (f'soc_threshold ({new_soc:g}) must be above soc_hysteresis '
                           f'({self.config.soc_hysteresis:g})')
        if mode != self.mode:
            self.voltage.reset()
            self.soc.clear_plan()
        self.mode, self.threshold_v = mode, new_threshold
        self.hysteresis_v, self.soc_threshold = new_hysteresis, new_soc
        message = (f'mode {MODE_NAMES[mode]}, threshold_v {new_threshold:g} V, hysteresis_v '
                   f'{new_hysteresis:g} V, soc_threshold {new_soc:g}')
        log.info('balancing set: %s', message)
        return True, message

    # ----------------------------------------------------------------------------- step
    def update(self, now_s: float) -> BalancingResult:
        """Account for the bleeding since the last call and decide the command for now.

        :param now_s: current time in seconds, on the clock of the input stamps.
        """
        now_s = float(now_s)
        dt_s = 0.0 if self._last_now_s is None else max(0.0, now_s - self._last_now_s)
        self._last_now_s = now_s
        if self._rejected_pending:
            self._rejected_pending, self._rejected_at_s = False, now_s
        self._account(dt_s)

        reason = self._inhibit_reason(now_s)
        meas = self._meas
        if reason or meas is None:    # (no measurement is a reason)
            self.voltage.reset()
            self._command = np.zeros(self.n, dtype=bool)
            return self._result(reason)

        volts = meas['cell_voltages_v']
        on_phase = self._duty_phase(now_s)
        if self.mode == MODE_VOLTAGE:
            excess, priority = self.voltage.decide(volts, on_phase, self.threshold_v,
                                                   self.hysteresis_v)
            wanted = self.voltage.wanted
        else:
            excess, priority = self.soc.decide(now_s, self.soc_threshold, self.charge_removed_ah)
            wanted = self.soc.wanted
        lowest = excess <= 0.0                        # the lowest cell(s) of the mode's quantity
        if self.mode == MODE_SOC and self.n > 1:
            # plausibility: a cell clearly lowest by voltage is not bled whatever its SoC says
            two = np.partition(volts, 1)[:2]
            lowest |= (volts <= two[0]) & (two[1] - two[0] > self.threshold_v)
        eligible = wanted & ~lowest & (volts >= self.config.min_cell_voltage_v)
        thermal = self.thermal.lockouts(self._cell_temperatures(meas),
                                        meas['temperatures_stale'])
        candidates = eligible & ~thermal
        chosen = np.zeros(self.n, dtype=bool)
        if np.any(candidates):
            order = np.argsort(np.where(candidates, -priority, np.inf), kind='stable')
            chosen[order[:min(self.config.max_bleeding_cells, int(candidates.sum()))]] = True
        self._command = chosen & on_phase
        reason = ''
        if np.any(eligible) and not np.any(candidates):
            reason = f'{REASON_THERMAL}: cells {", ".join(map(str, np.flatnonzero(eligible)))}'
        return self._result(reason)

    # ----------------------------------------------------------------------------- internals
    def _account(self, dt_s: float) -> None:
        """Charge, energy and resistor heat of the command held over the last ``dt_s``."""
        meas = self._meas
        if meas is None:
            return
        volts = np.where(meas['cell_voltage_valid'], meas['cell_voltages_v'], 0.0)
        volts = np.maximum(volts, 0.0)
        power_w = np.where(self._command, volts * volts / self.config.bleed_resistance_ohm, 0.0)
        if dt_s > 0.0:
            charge_ah = np.where(self._command, volts / self.config.bleed_resistance_ohm,
                                 0.0) * dt_s / 3600.0
            self.charge_removed_ah += charge_ah
            self.energy_bled_wh += float(power_w.sum()) * dt_s / 3600.0
            self.soc.account(charge_ah)
        self.thermal.advance(self._cell_temperatures(meas), power_w, dt_s)

    def _cell_temperatures(self, meas: Mapping[str, Any]) -> NDArray[np.float64]:
        """Temperature of each cell from its sensor in ``meas``; an invalid sensor gives NaN."""
        temps = np.where(meas['temperature_valid'], meas['temperatures_degc'], np.nan)
        cells: NDArray[np.float64] = temps[self.sensor_of_cell]
        return cells

    def _inhibit_reason(self, now_s: float) -> str:
        cfg = self.config
        if self.mode == MODE_OFF:
            return REASON_MODE_OFF
        # a rejected stream holds it off; once rejections stop, the old measurement goes stale
        if self._rejected_at_s is not None \
                and abs(now_s - self._rejected_at_s) <= cfg.measurement_timeout_s:
            return REASON_REJECTED_MEASUREMENT
        if self._meas is None:
            return REASON_NO_MEASUREMENT
        m = self._meas
        if m['cell_voltages_stale'] or abs(now_s - self._meas_stamp_s) > cfg.measurement_timeout_s:
            return REASON_STALE_MEASUREMENT
        if not np.all(m['cell_voltage_valid']):
            return REASON_INVALID_VOLTAGE
        if self._trip_latched is None:
            if cfg.require_protection_status:
                return REASON_NO_PROTECTION
        elif abs(now_s - self._prot_stamp_s) > cfg.protection_timeout_s:
            return REASON_STALE_PROTECTION
        elif self._trip_latched:
            return REASON_TRIP
        if m['current_stale'] or not math.isfinite(m['pack_current_a']):
            return REASON_CURRENT_UNKNOWN
        if m['pack_current_a'] <= -cfg.rest_current_a:
            return REASON_DISCHARGING
        charging = m['pack_current_a'] >= cfg.rest_current_a
        if not charging:
            rested_s = (self._meas_stamp_s - self._rest_since_s
                        if self._rest_since_s is not None else 0.0)
            if rested_s < cfg.rest_time_s:
                return f'{REASON_WAITING_REST} ({rested_s:.0f} of {cfg.rest_time_s:.0f} s)'
        if self.mode == MODE_SOC:
            if self.soc.soc_filtered is None:
                return REASON_NO_ESTIMATE
            if abs(now_s - self.soc.stamp_s) > cfg.estimate_timeout_s:
                return REASON_STALE_ESTIMATE
        return ''

    def _duty_phase(self, now_s: float) -> bool:
        """True while the bleed resistors may be on: duty phases on the absolute clock."""
        cfg = self.config
        if cfg.duty_off_s <= 0.0:
            return True
        return (now_s % (cfg.duty_on_s + cfg.duty_off_s)) < cfg.duty_on_s

    def _result(self, reason: str) -> BalancingResult:
        volts = None if self._meas is None else self._meas['cell_voltages_v'][
            self._meas['cell_voltage_valid']]
        v_spread = (float(volts.max() - volts.min()) if volts is not None and volts.size
                    else math.nan)
        raw = self.soc.soc_raw
        soc_spread = float(raw.max() - raw.min()) if raw is not None else math.nan
        return BalancingResult(
            mode=self.mode, active=bool(self._command.any()), inhibit_reason=reason,
            cell_bleed=self._command.copy(), charge_removed_ah=self.charge_removed_ah.copy(),
            energy_bled_wh=self.energy_bled_wh, cell_voltage_spread_v=v_spread,
            cell_soc_spread=soc_spread)

    def _reject_measurement(self, why: str) -> bool:
        self.measurements_rejected += 1
        self._rejected_pending = True
        if _worth_logging(self.measurements_rejected):
            log.warning('balancing: measurement rejected (%s); %d so far', why,
                        self.measurements_rejected)
        return False

    def _reject_estimate(self, why: str) -> bool:
        self.estimates_rejected += 1
        if _worth_logging(self.estimates_rejected):
            log.warning('balancing: estimate rejected (%s); %d so far', why,
                        self.estimates_rejected)
        return False

    @property
    def plan_remaining_ah(self) -> NDArray[np.float64]:
        """SoC mode: charge still to remove per cell, Ah (zeros without a plan)."""
        return self.soc.plan_ah.copy()

    @property
    def resistor_temperature_degc(self) -> NDArray[np.float64] | None:
        """Modelled bleed resistor temperature per cell, degC (None before a measurement)."""
        return self.thermal.temperature_degc

    @property
    def soc_filtered(self) -> NDArray[np.float64] | None:
        """SoC mode: the low-pass filtered cell SoC, 0..1 (None before an estimate)."""
        return self.soc.soc_filtered


def _worth_logging(count: int) -> bool:
    """Log the 1st, 2nd, 4th, 8th ... occurrence: a bad stream at 10 Hz must not flood."""
    return count & (count - 1) == 0


def _valid_flags(flags: Sized | None, values: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Validity array: as given, or (if empty/absent) where the values are finite."""
    if flags is None or len(flags) == 0:
        return np.isfinite(values)
    return np.asarray(flags, dtype=bool)

