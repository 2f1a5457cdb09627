"""Protection limits as frozen data, loaded from a profile's ``protection:`` section.

Three levels per limit, as foxBMS 2 does: warning (maximum operating limit, MOL: information),
alarm (recommended safety limit, RSL: derate) and trip (maximum safety limit, MSL: open the
contactors and latch). The order of the levels is checked at load, so a profile with a warning
above its trip is refused with an error naming the file and the field.

YAML keys carry the unit of the limit, e.g.::

    cell_overvoltage: {warning_v: 3.62, alarm_v: 3.65, trip_v: 3.75, hysteresis_v: 0.05,
                       debounce_s: 0.2}
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .. import contract
from ..config import Section

if TYPE_CHECKING:
    from ..profile import PackSpec

# the levels are the suite's contract (ProtectionEvent.level, ProtectionStatus.max_level)
LEVEL_OK = contract.LEVEL_OK
LEVEL_WARNING = contract.LEVEL_WARNING
LEVEL_ALARM = contract.LEVEL_ALARM
LEVEL_TRIP = contract.LEVEL_TRIP
LEVEL_NAMES = contract.LEVEL_NAMES
LEVEL_BY_NAME = {name: level for level, name in LEVEL_NAMES.items() if level != LEVEL_OK}

# unit of a limit -> suffix of its YAML keys
UNIT_SUFFIX = {'V': 'v', 'A': 'a', 'degC': 'degc', 'degC/s': 'degc_per_s', 's': 's'}


@dataclass(frozen=True)
class CatalogEntry:
    """What one limit watches: id, unit, direction and what its index counts."""

    limit_id: str
    kind: str           # 'threshold', 'time_current', 'flag' or 'range'
    unit: str
    high: bool          # True: violated at value >= threshold; False: at value <= threshold
    scope: str          # 'cell', 'sensor', 'pack' or 'group' (stale measurement groups)
    text: str           # human-readable name used in messages
    floor: float = -np.inf  # lowest value the signal can take (spreads, ages, magnitudes: 0)


# Every limit the protection knows, in the order they are evaluated and documented.
CATALOG = (
    CatalogEntry('cell_overvoltage', 'threshold', 'V', True, 'cell', 'over-voltage'),
    CatalogEntry('cell_undervoltage', 'threshold', 'V', False, 'cell', 'under-voltage'),
    CatalogEntry('pack_overvoltage', 'threshold', 'V', True, 'pack', 'over-voltage'),
    CatalogEntry('pack_undervoltage', 'threshold', 'V', False, 'pack', 'under-voltage'),
    CatalogEntry('charge_overcurrent', 'time_current', 'A', True, 'pack',
                 'charge over-current', 0.0),
    CatalogEntry('discharge_overcurrent', 'time_current', 'A', True, 'pack',
                 'discharge over-current', 0.0),
    CatalogEntry('charge_overtemperature', 'threshold', 'degC', True, 'sensor',
                 'over-temperature while charging'),
    CatalogEntry('charge_undertemperature', 'threshold', 'degC', False, 'sensor',
                 'under-temperature while charging'),
    CatalogEntry('discharge_overtemperature', 'threshold', 'degC', True, 'sensor',
                 'over-temperature'),
    CatalogEntry('discharge_undertemperature', 'threshold', 'degC', False, 'sensor',
                 'under-temperature'),
    CatalogEntry('cell_voltage_spread', 'threshold', 'V', True, 'pack',
                 'cell voltage spread', 0.0),
    CatalogEntry('temperature_spread', 'threshold', 'degC', True, 'pack',
                 'temperature spread', 0.0),
    CatalogEntry('temperature_rise_rate', 'threshold', 'degC/s', True, 'sensor',
                 'temperature rise rate'),
    CatalogEntry('stale_measurement', 'threshold', 's', True, 'group', 'stale', 0.0),
    CatalogEntry('pack_voltage_mismatch', 'threshold', 'V', True, 'pack',
                 'sum of cells differs from pack voltage by', 0.0),
    CatalogEntry('cell_voltage_invalid', 'flag', 'V', True, 'cell',
                 'voltage invalid (open wire or not received)'),
    CatalogEntry('cell_voltage_out_of_range', 'range', 'V', True, 'cell',
                 'voltage outside the plausible range'),
    CatalogEntry('temperature_invalid', 'flag', 'degC', True, 'sensor',
                 'temperature invalid (open or not received)'),
    CatalogEntry('temperature_out_of_range', 'range', 'degC', True, 'sensor',
                 'temperature outside the plausible range'),
    CatalogEntry('current_invalid', 'flag', 'A', True, 'pack', 'current invalid'),
    CatalogEntry('pack_voltage_invalid', 'flag', 'V', True, 'pack', 'pack voltage invalid'),
)
CATALOG_BY_ID = {entry.limit_id: entry for entry in CATALOG}

# Index meaning of stale_measurement (scope 'group'): -1 = no measurement message at all.
STALE_GROUPS = ('cell voltages', 'temperatures', 'current')


@dataclass(frozen=True)
class ThresholdLimit:
    """Three levels on one signal with hysteresis, debounce and a reset cool-down.

    Raised when the value is beyond a level (>= for high limits, <= for low ones) for
    ``debounce_s``; cleared when back inside by ``hysteresis`` for ``release_s``.
    """

    limit_id: str
    unit: str
    high: bool
    warning: float
    alarm: float
    trip: float
    hysteresis: float
    debounce_s: float
    release_s: float
    reset_cooldown_s: float   # a latched trip may be reset this long after its trip level
    #                           released (release_s inside the hysteresis band), not before

    @property
    def levels(self) -> tuple[int, ...]:
        """Levels that this limit raises, lowest first (LEVEL_* values)."""
        return (LEVEL_WARNING, LEVEL_ALARM, LEVEL_TRIP)

    @property
    def thresholds(self) -> NDArray[np.float64]:
        """Thresholds of warning, alarm and trip, in the limit's unit."""
        return np.array([self.warning, self.alarm, self.trip])


@dataclass(frozen=True)
class TimeCurrentLimit(ThresholdLimit):
    """A current limit with an inverse-time trip curve on top of the three levels.

    Above ``curve_current_a[0]`` the pack may carry the current for the time the curve allows
    (log-log interpolation between points, like an inverse-time relay): the used fraction
    integrates dt / t_allowed(I) and trips at 1. Below it, the fraction decays to 0 in
    ``curve_decay_s``. ``trip`` is the instantaneous (short-circuit) level. Currents are
    magnitudes in A.
    """

    curve_current_a: tuple[float, ...] = ()
    curve_time_s: tuple[float, ...] = ()
    curve_decay_s: float = 60.0

    def allowed_time_s(self, current_a: ArrayLike) -> NDArray[np.float64]:
        """Time the curve allows at ``current_a`` (A, magnitude); inf below the curve."""
        current = np.asarray(current_a, dtype=float)
        log_i = np.log(np.maximum(current, 1e-9))
        log_t = np.interp(log_i, np.log(self.curve_current_a), np.log(self.curve_time_s))
        return np.where(current >= self.curve_current_a[0], np.exp(log_t), np.inf)


@dataclass(frozen=True)
class FlagLimit:
    """A yes/no plausibility condition (invalid value, open wire) raised at one level."""

    limit_id: str
    unit: str
    level: int
    debounce_s: float
    release_s: float
    reset_cooldown_s: float

    @property
    def levels(self) -> tuple[int, ...]:
        """The levels this limit raises: its one level."""
        return (self.level,)

    high = True
    hysteresis = 0.0


@dataclass(frozen=True)
class RangeLimit(FlagLimit):
    """A plausibility window: a valid reading outside [minimum, maximum] is implausible."""

    minimum: float = -np.inf
    maximum: float = np.inf


# any limit of ProtectionConfig.limits (TimeCurrentLimit is a ThresholdLimit, RangeLimit a
# FlagLimit)
Limit = ThresholdLimit | FlagLimit


@dataclass(frozen=True)
class ProtectionConfig:
    """Everything the protection needs: the limits and a few operating parameters."""

    limits: tuple[Limit, ...]          # Threshold/TimeCurrent/Flag limits, in CATALOG order
    charge_detect_current_a: float     # A, + = charging: above it charge temperatures apply
    temperature_rate_window_s: float   # span over which the temperature rise rate is taken
    startup_grace_s: float             # after the first measurement: invalid/stale ignored
    charge_current_max_a: float        # current limit before derating, A (magnitude)
    discharge_current_max_a: float
    estimate_timeout_s: float          # an older state-of-power estimate is ignored
    status_period_s: float             # protection_status period (also sent on change)
    diagnostics_period_s: float

    def limit(self, limit_id: str) -> Limit:
        """The limit with this id."""
        for limit in self.limits:
            if limit.limit_id == limit_id:
                return limit
        raise KeyError(limit_id)

    def replace_limit(self, limit: Limit) -> ProtectionConfig:
        """A copy with one limit replaced (tests and benches)."""
        return replace(self, limits=tuple(limit if lim.limit_id == limit.limit_id else lim
                                          for lim in self.limits))


OPERATING_FIELDS = ('charge_detect_current_a', 'temperature_rate_window_s', 'startup_grace_s',
                    'charge_current_max_a', 'discharge_current_max_a', 'estimate_timeout_s',
                    'status_period_s', 'diagnostics_period_s')


def load_protection_config(section: Section, pack: PackSpec) -> ProtectionConfig:
    """Validate a profile's ``protection:`` section; raise ConfigError naming file and field.

    ``pack`` is the PackSpec: its cell limits give the default current limits before derating.
    """
    section.reject_unknown(tuple(CATALOG_BY_ID) + OPERATING_FIELDS)
    limits = tuple(_load_limit(section.section(entry.limit_id), entry) for entry in CATALOG)
    cell = pack.cell.limits
    config = ProtectionConfig(
        limits=limits,
        charge_detect_current_a=section.number('charge_detect_current_a', minimum=0.0),
        temperature_rate_window_s=section.number('temperature_rate_window_s', 10.0,
                                                 exclusive_minimum=0.0),
        startup_grace_s=section.number('startup_grace_s', 10.0, minimum=0.0),
        charge_current_max_a=section.number('charge_current_max_a', cell.charge_current_max_a,
                                            exclusive_minimum=0.0),
        discharge_current_max_a=section.number('discharge_current_max_a',
                                               cell.discharge_current_max_a,
                                               exclusive_minimum=0.0),
        estimate_timeout_s=section.number('estimate_timeout_s', 2.0, exclusive_minimum=0.0),
        status_period_s=section.number('status_period_s', 0.1, exclusive_minimum=0.0),
        diagnostics_period_s=section.number('diagnostics_period_s', 1.0, exclusive_minimum=0.0))
    return config


def _load_limit(section: Section, entry: CatalogEntry) -> Limit:
    timing = ('debounce_s', 'release_s', 'reset_cooldown_s')
    if entry.kind in ('flag', 'range'):
        suffix = UNIT_SUFFIX[entry.unit]
        known = ('level',) + timing + ((f'min_{suffix}', f'max_{suffix}')
                                       if entry.kind == 'range' else ())
        section.reject_unknown(known)
        common: dict[str, Any] = dict(
            limit_id=entry.limit_id, unit=entry.unit,
            level=LEVEL_BY_NAME[section.string('level', choices=tuple(LEVEL_BY_NAME))],
            debounce_s=section.number('debounce_s', minimum=0.0),
            release_s=section.number('release_s', 0.0, minimum=0.0),
            reset_cooldown_s=section.number('reset_cooldown_s', 0.0, minimum=0.0))
        if entry.kind == 'flag':
            return FlagLimit(**common)
        low = section.number(f'min_{suffix}')
        high = section.number(f'max_{suffix}')
        if low >= high:
            raise section.error(f'min_{suffix}', f'must be below max_{suffix} ({high})')
        return RangeLimit(**common, minimum=low, maximum=high)

    suffix = UNIT_SUFFIX[entry.unit]
    names = [f'warning_{suffix}', f'alarm_{suffix}', f'trip_{suffix}']
    curve = ('curve_current_a', 'curve_time_s', 'curve_decay_s') \
        if entry.kind == 'time_current' else ()
    section.reject_unknown(tuple(names) + (f'hysteresis_{suffix}',) + timing + curve)
    warning, alarm, trip = (section.number(name) for name in names)
    hysteresis = section.number(f'hysteresis_{suffix}', minimum=0.0)
    # the order of the levels (foxBMS checks MOL < RSL < MSL when it builds its configuration)
    if entry.high:
        if not warning < alarm:
            raise section.error(names[1], f'must be above {names[0]} ({warning}), got {alarm}')
        if not alarm < trip:
            raise section.error(names[2], f'must be above {names[1]} ({alarm}), got {trip}')
        if warning - hysteresis <= entry.floor:
            raise section.error(f'hysteresis_{suffix}',
                                f'{names[0]} - hysteresis must stay above {entry.floor:g} '
                                f'or the warning never clears, got {warning} - {hysteresis}')
    else:
        if not warning > alarm:
            raise section.error(names[1], f'must be below {names[0]} ({warning}), got {alarm}')
        if not alarm > trip:
            raise section.error(names[2], f'must be below {names[1]} ({alarm}), got {trip}')
    if entry.floor > -np.inf and warning <= entry.floor:
        raise section.error(names[0], f'expected a number > {entry.floor:g}, got {warning}')
    debounce_s = section.number('debounce_s', minimum=0.0)
    release_s = section.number('release_s', 0.0, minimum=0.0)
    if hysteresis == 0.0 and release_s == 0.0:
        # a value sitting on a threshold would raise and clear the level at every sample
        raise section.error('release_s', f'with hysteresis_{suffix} 0 a level needs '
                            f'release_s > 0 (or a hysteresis), or it chatters on noise')
    common = dict(limit_id=entry.limit_id, unit=entry.unit, high=entry.high, warning=warning,
                  alarm=alarm, trip=trip, hysteresis=hysteresis, debounce_s=debounce_s,
                  release_s=release_s,
                  reset_cooldown_s=section.number('reset_cooldown_s', 0.0, minimum=0.0))
    if entry.kind == 'threshold':
        return ThresholdLimit(**common)
    currents = section.numbers('curve_current_a', minimum=0.0, increasing=True)
    times = section.numbers('curve_time_s', length=len(currents), minimum=0.0)
    if any(t <= 0.0 for t in times):
        raise section.error('curve_time_s', 'expected times > 0')
    if any(b >= a for a, b in zip(times, times[1:])):
        raise section.error('curve_time_s', 'expected strictly decreasing times '
                            '(more current, less time)')
    if currents[0] < alarm:
        raise section.error('curve_current_a', f'must start at or above alarm_a ({alarm}), '
                            f'got {currents[0]}')
    if currents[-1] > trip:
        raise section.error('curve_current_a', f'must end at or below trip_a ({trip}), '
                            f'got {currents[-1]}')
    return TimeCurrentLimit(**common, curve_current_a=tuple(currents), curve_time_s=tuple(times),
                            curve_decay_s=section.number('curve_decay_s', 60.0,
                                                         exclusive_minimum=0.0))

