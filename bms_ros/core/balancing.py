"""Passive (bleed-resistor) cell balancing: voltage-based top balancing and SoC-based balancing.

The controller is pure numpy, vectorised over the series cells, and is driven with explicit
times (``now_s``, measurement and estimate stamps in seconds on one clock), so it runs the
same in a node, in a time-scaled simulation and in unit tests.

Strategies (``mode``):

* ``off``: never bleed.
* ``voltage``: a cell starts bleeding when it is more than ``threshold_v`` above the lowest
  cell and stops when it is less than ``threshold_v - hysteresis_v`` above it; only while the
  pack charges or has rested for ``rest_time_s``, and only for cells at or above
  ``min_cell_voltage_v``. Decisions use only voltages measured with the bleed resistors off
  (the off part of the duty cycle, after ``settle_s``), so the bleed current's IR drop does not
  fool the comparison.
* ``soc``: from the estimator's per-cell SoC (low-pass filtered) and capacity, a plan of charge
  to remove is made: ``(soc_i - soc_min - stop_level) * capacity_i`` Ah for each cell whose
  excess over the lowest cell is above ``soc_threshold`` (``stop_level = soc_threshold -
  soc_hysteresis``). Each cell bleeds until its planned charge is removed (counted as V/R over
  the time it was commanded on) or the live estimate says it has reached the stop level. This
  works on LFP's flat OCV plateau, where a 5 % SoC spread shows as 1-2 mV.

In every mode: at most ``max_bleeding_cells`` cells at once (the highest excess first), duty
cycling (``duty_on_s`` on, ``duty_off_s`` off), no bleeding of a cell whose temperature is at
or above ``max_cell_temperature_degc`` or whose bleed resistor (first-order thermal model) is
at or above ``resistor_max_temperature_degc`` (both with ``temperature_hysteresis_degc``),
never the lowest cell, and nothing at all while a protection trip is latched, the protection
status is missing or old, the measurement is stale, rejected or has an invalid cell voltage,
the current is unknown, or (SoC mode) the estimate is missing or old.
"""
import logging
import math
from dataclasses import dataclass, fields

import numpy as np

log = logging.getLogger(__name__)

# Same numbering as bms_interfaces/BalancingStatus MODE_* and SetBalancingMode MODE_*.
MODE_OFF = 0
MODE_VOLTAGE = 1
MODE_SOC = 2
MODES = {'off': MODE_OFF, 'voltage': MODE_VOLTAGE, 'soc': MODE_SOC}
MODE_NAMES = {number: name for name, number in MODES.items()}

# Bounds that also apply to the set_balancing_mode service.
MAX_THRESHOLD_V = 0.5
MAX_SOC_THRESHOLD = 0.5

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


@dataclass(frozen=True)
class BalancingConfig:
    """The validated ``balancing:`` section of a profile."""

    mode: str = 'voltage'                   # off | voltage | soc
    period_s: float = 1.0                   # controller period of the node
    bleed_resistance_ohm: float = 33.0      # per cell; must equal the simulator's / the board's
    threshold_v: float = 0.005              # voltage mode: start above min + threshold
    hysteresis_v: float = 0.002             # voltage mode: stop below min + threshold - hysteresis
    soc_threshold: float = 0.005            # soc mode: plan cells above min SoC + threshold (0..1)
    soc_hysteresis: float = 0.004           # soc mode: bleed down to min + threshold - hysteresis
    soc_filter_time_s: float = 60.0         # first-order low-pass of the estimated cell SoC
    soc_replan_delay_s: float = 600.0       # wait after a finished plan before the next one
    estimate_includes_bleed: bool = True    # false: subtract our own removed charge from the SoC
    min_cell_voltage_v: float = 3.0         # never bleed a cell below this
    rest_current_a: float = 0.5             # |I| below this is rest; above +this is charging
    rest_time_s: float = 1800.0             # rest needed before balancing without charging
    max_bleeding_cells: int = 8             # simultaneous bleeding cells (heat, AFE limit)
    duty_on_s: float = 50.0                 # bleed period of a duty cycle
    duty_off_s: float = 10.0                # measurement period (all bleed off); 0 = no duty cycle
    settle_s: float = 2.0                   # after bleed off, before a voltage counts as clean
    max_cell_temperature_degc: float = 45.0
    temperature_hysteresis_degc: float = 5.0
    resistor_thermal_resistance_k_per_w: float = 60.0   # bleed resistor to the cell/board
    resistor_time_constant_s: float = 30.0
    resistor_max_temperature_degc: float = 100.0
    measurement_timeout_s: float = 2.0      # measurement older than this: stale
    estimate_timeout_s: float = 5.0         # soc mode: estimate older than this: stale
    protection_timeout_s: float = 5.0       # protection status older than this: stale
    require_protection_status: bool = True  # no protection status yet: do not bleed

    @property
    def mode_number(self):
        return MODES[self.mode]

    @property
    def duty_cycle(self):
        """Fraction of time the bleed resistors may be on, 0..1."""
        return self.duty_on_s / (self.duty_on_s + self.duty_off_s)

    @classmethod
    def from_section(cls, section, pack=None):
        """Read and validate ``balancing:``; ConfigError names the file and the field.

        :param section: bms_ros.core.config.Section of the ``balancing`` mapping.
        :param pack: optional PackSpec, to check fields against the cell's limits.
        """
        section.reject_unknown([f.name for f in fields(cls)])
        d = cls()
        number = section.number
        cfg = cls(
            mode=section.string('mode', d.mode, choices=tuple(MODES)),
            period_s=number('period_s', d.period_s, exclusive_minimum=0.0, maximum=60.0),
            bleed_resistance_ohm=number('bleed_resistance_ohm', d.bleed_resistance_ohm,
                                        exclusive_minimum=0.0),
            threshold_v=number('threshold_v', d.threshold_v, exclusive_minimum=0.0,
                               maximum=MAX_THRESHOLD_V),
            hysteresis_v=number('hysteresis_v', d.hysteresis_v, minimum=0.0),
            soc_threshold=number('soc_threshold', d.soc_threshold, exclusive_minimum=0.0,
                                 maximum=MAX_SOC_THRESHOLD),
            soc_hysteresis=number('soc_hysteresis', d.soc_hysteresis, minimum=0.0),
            soc_filter_time_s=number('soc_filter_time_s', d.soc_filter_time_s, minimum=0.0),
            soc_replan_delay_s=number('soc_replan_delay_s', d.soc_replan_delay_s, minimum=0.0),
            estimate_includes_bleed=section.boolean('estimate_includes_bleed',
                                                    d.estimate_includes_bleed),
            min_cell_voltage_v=number('min_cell_voltage_v', d.min_cell_voltage_v,
                                      exclusive_minimum=0.0),
            rest_current_a=number('rest_current_a', d.rest_current_a, exclusive_minimum=0.0),
            rest_time_s=number('rest_time_s', d.rest_time_s, minimum=0.0),
            max_bleeding_cells=section.integer('max_bleeding_cells', d.max_bleeding_cells,
                                               minimum=1),
            duty_on_s=number('duty_on_s', d.duty_on_s, exclusive_minimum=0.0),
            duty_off_s=number('duty_off_s', d.duty_off_s, minimum=0.0),
            settle_s=number('settle_s', d.settle_s, minimum=0.0),
            max_cell_temperature_degc=number('max_cell_temperature_degc',
                                             d.max_cell_temperature_degc),
            temperature_hysteresis_degc=number('temperature_hysteresis_degc',
                                               d.temperature_hysteresis_degc, minimum=0.0),
            resistor_thermal_resistance_k_per_w=number(
                'resistor_thermal_resistance_k_per_w', d.resistor_thermal_resistance_k_per_w,
                minimum=0.0),
            resistor_time_constant_s=number('resistor_time_constant_s',
                                            d.resistor_time_constant_s, exclusive_minimum=0.0),
            resistor_max_temperature_degc=number('resistor_max_temperature_degc',
                                                 d.resistor_max_temperature_degc),
            measurement_timeout_s=number('measurement_timeout_s', d.measurement_timeout_s,
                                         exclusive_minimum=0.0),
            estimate_timeout_s=number('estimate_timeout_s', d.estimate_timeout_s,
                                      exclusive_minimum=0.0),
            protection_timeout_s=number('protection_timeout_s', d.protection_timeout_s,
                                        exclusive_minimum=0.0),
            require_protection_status=section.boolean('require_protection_status',
                                                      d.require_protection_status),
        )
        if cfg.hysteresis_v >= cfg.threshold_v:
            raise section.error('hysteresis_v', f'must be below threshold_v ({cfg.threshold_v}), '
                                f'got {cfg.hysteresis_v}')
        if cfg.soc_hysteresis >= cfg.soc_threshold:
            raise section.error('soc_hysteresis', f'must be below soc_threshold '
                                f'({cfg.soc_threshold}), got {cfg.soc_hysteresis}')
        if cfg.duty_off_s > 0.0 and cfg.settle_s >= cfg.duty_off_s:
            raise section.error('settle_s', f'must be below duty_off_s ({cfg.duty_off_s}) so a '
                                f'clean voltage can be measured, got {cfg.settle_s}')
        if cfg.duty_off_s > 0.0 and cfg.settle_s < cfg.period_s:
            raise section.error('settle_s', f'must be at least period_s ({cfg.period_s}): a '
                                f'command holds for one period, got {cfg.settle_s}')
        if cfg.resistor_max_temperature_degc <= cfg.max_cell_temperature_degc:
            raise section.error('resistor_max_temperature_degc',
                                f'must be above max_cell_temperature_degc '
                                f'({cfg.max_cell_temperature_degc}), got '
                                f'{cfg.resistor_max_temperature_degc}')
        if pack is not None:
            limits = pack.cell.limits
            if not limits.voltage_min_v <= cfg.min_cell_voltage_v <= limits.voltage_max_v:
                raise section.error('min_cell_voltage_v', f'expected a value within the cell '
                                    f'limits {limits.voltage_min_v}..{limits.voltage_max_v} V, '
                                    f'got {cfg.min_cell_voltage_v}')
            if cfg.max_bleeding_cells > pack.cells_series:
                raise section.error('max_bleeding_cells', f'expected at most cells_series '
                                    f'({pack.cells_series}), got {cfg.max_bleeding_cells}')
        return cfg


@dataclass
class BalancingResult:
    """One controller step: the command and the status, named as BalancingStatus fields."""

    mode: int
    active: bool                     # at least one cell bleeding now
    inhibit_reason: str              # "" = not inhibited
    cell_bleed: np.ndarray           # bool per cell, the command
    charge_removed_ah: np.ndarray    # per cell since start (estimated: V/R x on-time)
    energy_bled_wh: float            # total since start (V^2/R x on-time)
    cell_voltage_spread_v: float     # max - min valid cell voltage (NaN if none)
    cell_soc_spread: float           # max - min estimated cell SoC, 0..1 (NaN if none)


class BalancingController:
    """Decides which bleed resistors to switch on; call ``set_*`` with inputs, then ``update``."""

    def __init__(self, config, cells_series, sensor_of_cell, temperature_sensors=None):
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
        self._meas = None                 # dict of arrays of the last accepted measurement
        self._meas_stamp_s = None
        self._rejected_pending = False    # a measurement was rejected since the last update
        self._rejected_at_s = None        # update time of the latest rejection, until a good one
        self._rest_since_s = None
        self._soc_raw = None
        self._soc_f = None                # filtered SoC
        self._capacity_ah = None
        self._est_stamp_s = None
        self._trip_latched = None
        self._prot_stamp_s = None
        # state
        self._last_now_s = None
        self._command = np.zeros(self.n, dtype=bool)
        self._wanted = np.zeros(self.n, dtype=bool)     # voltage mode hysteresis state
        self._clean_window = None                       # off window of the clean samples
        self._clean_sum_v = np.zeros(self.n)            # their sum, for the window mean
        self._clean_count = 0
        self._decided_window = None                     # window of the last voltage decision
        self._plan_ah = np.zeros(self.n)                # soc mode: charge still to remove
        self._plan_active = False
        self._plan_done_s = None
        self._hot_cell = np.zeros(self.n, dtype=bool)
        self._hot_resistor = np.zeros(self.n, dtype=bool)
        self.resistor_temperature_degc = None           # initialised from the cell temperature
        self.charge_removed_ah = np.zeros(self.n)
        self.energy_bled_wh = 0.0

    @classmethod
    def from_profile(cls, profile):
        """Controller for a loaded bms_ros.core.profile.Profile (validates ``balancing:``)."""
        config = BalancingConfig.from_section(profile.section('balancing'), profile.pack)
        pack = profile.pack
        return cls(config, pack.cells_series, pack.sensor_of_cell(), pack.temperature_sensors)

    # ----------------------------------------------------------------------------- inputs
    def set_measurement(self, measurement, stamp_s):
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
        self._collect_clean(volts, v_valid, stamp_s)
        if current_stale or not abs(current_a) < self.config.rest_current_a:
            self._rest_since_s = None
        elif self._rest_since_s is None or stamp_s < self._rest_since_s:
            self._rest_since_s = stamp_s
        return True

    def set_estimate(self, estimate, stamp_s):
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
        soc = np.clip(soc, 0.0, 1.0)
        tau = self.config.soc_filter_time_s
        if self._soc_f is None or tau <= 0.0:
            self._soc_f = soc.copy()
        elif stamp_s > self._est_stamp_s:  # a repeated or older stamp leaves the filter alone
            self._soc_f += (1.0 - math.exp(-(stamp_s - self._est_stamp_s) / tau)) * (
                soc - self._soc_f)
        self._soc_raw = soc
        self._capacity_ah = capacity
        self._est_stamp_s = stamp_s
        return True

    def set_protection(self, trip_latched, stamp_s):
        """Take the protection status: any latched trip holds balancing off."""
        self._trip_latched = bool(trip_latched)
        self._prot_stamp_s = float(stamp_s)

    def set_mode(self, mode, threshold_v=None, hysteresis_v=None, soc_threshold=None):
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
        new_threshold = self.threshold_v if keep['threshold_v'] else float(threshold_v)
        new_hysteresis = self.hysteresis_v if keep['hysteresis_v'] else float(hysteresis_v)
        new_soc = self.soc_threshold if keep['soc_threshold'] else float(soc_threshold)
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
            self._wanted[:] = False
            self._clear_plan()
        self.mode, self.threshold_v = mode, new_threshold
        self.hysteresis_v, self.soc_threshold = new_hysteresis, new_soc
        message = (f'mode {MODE_NAMES[mode]}, threshold_v {new_threshold:g} V, hysteresis_v '
                   f'{new_hysteresis:g} V, soc_threshold {new_soc:g}')
        log.info('balancing set: %s', message)
        return True, message

    # ----------------------------------------------------------------------------- step
    def update(self, now_s):
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
        if reason:
            self._wanted[:] = False
            self._command = np.zeros(self.n, dtype=bool)
            return self._result(reason)

        volts = self._meas['cell_voltages_v']
        on_phase = self._duty_phase(now_s)
        if self.mode == MODE_VOLTAGE:
            excess, priority = self._voltage_decision(volts, on_phase)
        else:
            excess, priority = self._soc_decision(now_s)
        wanted = self._wanted if self.mode == MODE_VOLTAGE else self._plan_ah > 0.0
        lowest = excess <= 0.0                        # the lowest cell(s) of the mode's quantity
        if self.mode == MODE_SOC and self.n > 1:
            # plausibility: a cell clearly lowest by voltage is not bled whatever its SoC says
            two = np.partition(volts, 1)[:2]
            lowest |= (volts <= two[0]) & (two[1] - two[0] > self.threshold_v)
        eligible = wanted & ~lowest & (volts >= self.config.min_cell_voltage_v)
        self._update_thermal()
        thermal = self._hot_cell | self._hot_resistor
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
    def _account(self, dt_s):
        """Charge, energy and resistor heat of the command held over the last ``dt_s``."""
        if self._meas is None:
            return
        volts = np.where(self._meas['cell_voltage_valid'], self._meas['cell_voltages_v'], 0.0)
        volts = np.maximum(volts, 0.0)
        power_w = np.where(self._command, volts * volts / self.config.bleed_resistance_ohm, 0.0)
        if dt_s > 0.0:
            charge_ah = np.where(self._command, volts / self.config.bleed_resistance_ohm,
                                 0.0) * dt_s / 3600.0
            self.charge_removed_ah += charge_ah
            self.energy_bled_wh += float(power_w.sum()) * dt_s / 3600.0
            if self._plan_active:
                self._plan_ah = np.maximum(self._plan_ah - charge_ah, 0.0)
        ambient = self._cell_temperatures()
        if not np.all(np.isfinite(ambient)):
            # unknown sensor: assume the hottest known one (its cells are locked out anyway)
            fallback = float(np.nanmax(ambient)) if np.any(np.isfinite(ambient)) else 25.0
            ambient = np.where(np.isfinite(ambient), ambient, fallback)
        if self.resistor_temperature_degc is None:
            self.resistor_temperature_degc = ambient.copy()
        decay = math.exp(-dt_s / self.config.resistor_time_constant_s)
        steady = ambient + power_w * self.config.resistor_thermal_resistance_k_per_w
        self.resistor_temperature_degc = steady + (self.resistor_temperature_degc - steady) * decay

    def _cell_temperatures(self):
        """Temperature of each cell from its sensor; an invalid sensor gives NaN."""
        temps = np.where(self._meas['temperature_valid'], self._meas['temperatures_degc'], np.nan)
        return temps[self.sensor_of_cell]

    def _inhibit_reason(self, now_s):
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
            if self._soc_f is None:
                return REASON_NO_ESTIMATE
            if abs(now_s - self._est_stamp_s) > cfg.estimate_timeout_s:
                return REASON_STALE_ESTIMATE
        return ''

    def _collect_clean(self, volts, valid, stamp_s):
        """Sum the clean cell voltages of one off window (bleed off, settled), for its mean."""
        cfg = self.config
        if cfg.duty_off_s <= 0.0:
            # no duty cycle: every measurement is a window of its own
            window, clean = stamp_s, True
        else:
            cycle_s = cfg.duty_on_s + cfg.duty_off_s
            window = math.floor(stamp_s / cycle_s)
            clean = stamp_s - window * cycle_s >= cfg.duty_on_s + cfg.settle_s
        if not clean or not np.all(valid):
            return
        if window != self._clean_window:
            self._clean_window, self._clean_count = window, 0
            self._clean_sum_v = np.zeros(self.n)
        self._clean_sum_v += volts
        self._clean_count += 1

    def _duty_phase(self, now_s):
        """True while the bleed resistors may be on: duty phases on the absolute clock."""
        cfg = self.config
        if cfg.duty_off_s <= 0.0:
            return True
        return (now_s % (cfg.duty_on_s + cfg.duty_off_s)) < cfg.duty_on_s

    def _voltage_decision(self, volts, on_phase):
        """Update the per-cell hysteresis from the mean clean voltages of the latest off window,
        once it is complete (in the on phase); returns (excess V, priority) of ``volts``."""
        if self._clean_count and self._clean_window != self._decided_window and on_phase:
            self._decided_window = self._clean_window
            clean_v = self._clean_sum_v / self._clean_count
            clean_excess = clean_v - clean_v.min()
            start = clean_excess > self.threshold_v
            stop = clean_excess < self.threshold_v - self.hysteresis_v
            self._wanted = (self._wanted | start) & ~stop
        excess = volts - volts.min()
        return excess, excess

    def _soc_decision(self, now_s):
        """Keep or make the plan of charge to remove; (excess SoC, priority Ah)."""
        cfg = self.config
        soc = self._soc_f
        if not cfg.estimate_includes_bleed:
            soc = soc - self.charge_removed_ah / self._capacity_ah
        excess = soc - soc.min()
        stop_level = self.soc_threshold - cfg.soc_hysteresis
        if self._plan_active:
            # the live estimate has a say too: a cell already at the stop level is done
            self._plan_ah[excess <= stop_level] = 0.0
            if not np.any(self._plan_ah > 0.0):
                self._clear_plan()
                self._plan_done_s = now_s
        ready = self._plan_done_s is None or now_s - self._plan_done_s >= cfg.soc_replan_delay_s \
            or now_s < self._plan_done_s
        if not self._plan_active and ready and excess.max() > self.soc_threshold:
            self._plan_ah = np.where(excess > self.soc_threshold,
                                     (excess - stop_level) * self._capacity_ah, 0.0)
            self._plan_active = True
            log.info('balancing plan: remove %s Ah', np.round(self._plan_ah, 4).tolist())
        return excess, self._plan_ah.copy()

    def _clear_plan(self):
        self._plan_ah = np.zeros(self.n)
        self._plan_active = False

    def _update_thermal(self):
        """Per-cell thermal lock-outs with hysteresis; an invalid sensor locks its cells out."""
        cfg = self.config
        cell_t = self._cell_temperatures()
        unknown = ~np.isfinite(cell_t)
        if self._meas['temperatures_stale']:
            unknown[:] = True
        hot_on = cell_t >= cfg.max_cell_temperature_degc
        hot_off = cell_t < cfg.max_cell_temperature_degc - cfg.temperature_hysteresis_degc
        self._hot_cell = ((self._hot_cell | hot_on) & ~hot_off) | unknown
        r_t = self.resistor_temperature_degc
        r_on = r_t >= cfg.resistor_max_temperature_degc
        r_off = r_t < cfg.resistor_max_temperature_degc - cfg.temperature_hysteresis_degc
        self._hot_resistor = (self._hot_resistor | r_on) & ~r_off

    def _result(self, reason):
        volts = None if self._meas is None else self._meas['cell_voltages_v'][
            self._meas['cell_voltage_valid']]
        v_spread = (float(volts.max() - volts.min()) if volts is not None and volts.size
                    else math.nan)
        soc_spread = (float(self._soc_raw.max() - self._soc_raw.min())
                      if self._soc_raw is not None else math.nan)
        return BalancingResult(
            mode=self.mode, active=bool(self._command.any()), inhibit_reason=reason,
            cell_bleed=self._command.copy(), charge_removed_ah=self.charge_removed_ah.copy(),
            energy_bled_wh=self.energy_bled_wh, cell_voltage_spread_v=v_spread,
            cell_soc_spread=soc_spread)

    def _reject_measurement(self, why):
        self.measurements_rejected += 1
        self._rejected_pending = True
        if _worth_logging(self.measurements_rejected):
            log.warning('balancing: measurement rejected (%s); %d so far', why,
                        self.measurements_rejected)
        return False

    def _reject_estimate(self, why):
        self.estimates_rejected += 1
        if _worth_logging(self.estimates_rejected):
            log.warning('balancing: estimate rejected (%s); %d so far', why,
                        self.estimates_rejected)
        return False

    @property
    def plan_remaining_ah(self):
        """SoC mode: charge still to remove per cell, Ah (zeros without a plan)."""
        return self._plan_ah.copy()


def _worth_logging(count):
    """Log the 1st, 2nd, 4th, 8th ... occurrence: a bad stream at 10 Hz must not flood."""
    return count & (count - 1) == 0


def _valid_flags(flags, values):
    """Validity array: as given, or (if empty/absent) where the values are finite."""
    if flags is None or len(flags) == 0:
        return np.isfinite(values)
    return np.asarray(flags, dtype=bool)


__all__ = ['BalancingConfig', 'BalancingController', 'BalancingResult', 'MODES', 'MODE_NAMES',
           'MODE_OFF', 'MODE_VOLTAGE', 'MODE_SOC']
