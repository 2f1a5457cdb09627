"""ROS-free helpers between the messages and the estimator (used by the state_estimator node).

* :func:`check_measurement`: accept or reject one PackMeasurement (as plain values);
* :func:`measurement_reject_reason`, :func:`step_from_measurement`: the same check and the
  estimator update from a PackMeasurement-shaped object (a ROS message, a rosbags message);
* :func:`cell_temperatures`: per-cell temperature from the sensors (PackSpec.sensor_of_cell);
* :func:`battery_percentage`: the NaN policy of BatteryState.percentage; :func:`docking_current_a`;
* :func:`power_supply_status`, :func:`power_supply_health`, :data:`TECHNOLOGY`: the
  sensor_msgs/BatteryState enumerations by name (the node maps names to the constants
  ``POWER_SUPPLY_STATUS_<name>``, ``POWER_SUPPLY_HEALTH_<name>`` and
  ``POWER_SUPPLY_TECHNOLOGY_<name>``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

# chemistry of the cell file -> BatteryState POWER_SUPPLY_TECHNOLOGY_<name>
TECHNOLOGY = {'LFP': 'LIFE', 'NMC': 'LION', 'NCA': 'LION', 'LCO': 'LION', 'LMO': 'LIMN'}

LEVEL_ALARM = 2        # bms_interfaces/ProtectionEvent LEVEL_ALARM
LEVEL_TRIP = 3         # LEVEL_TRIP

# protection limit ids (bms_ros.core.protection.limits) -> BatteryState health, in priority
HEALTH_OF_LIMIT = (
    ('overtemperature', 'OVERHEAT'),
    ('overvoltage', 'OVERVOLTAGE'),
    ('undervoltage', 'DEAD'),
    ('undertemperature', 'COLD'),
)


def check_measurement(cells: int, sensors: int, cell_voltages_v: Sequence[float],
                      cell_voltage_valid: Sequence[bool], temperatures_degc: Sequence[float],
                      temperature_valid: Sequence[bool], pack_current_a: float,
                      current_stale: bool, age_s: float | None, timeout_s: float) -> str | None:
    """None if the measurement can be used, else the reason it is rejected (counted)."""
    lengths: tuple[tuple[str, Sequence[Any], int], ...] = (
        ('cell_voltages_v', cell_voltages_v, cells),
        ('cell_voltage_valid', cell_voltage_valid, cells),
        ('temperatures_degc', temperatures_degc, sensors),
        ('temperature_valid', temperature_valid, sensors))
    for name, values, expected in lengths:
        if len(values) != expected:
            return f'{name} has {len(values)} values, expected {expected}'
    if not math.isfinite(pack_current_a):
        return 'pack current is not a number'
    if current_stale:
        return 'pack current is stale'
    if age_s is not None and age_s > timeout_s:
        return f'measurement is {age_s:.1f} s old (timeout {timeout_s:g} s)'
    usable = np.asarray(cell_voltage_valid, dtype=bool) & np.isfinite(
        np.asarray(cell_voltages_v, dtype=float))
    if cells and not usable.any() and not np.isfinite(np.asarray(temperatures_degc,
                                                                 dtype=float)).any():
        return 'no valid cell voltage and no valid temperature (NaN only)'
    return None


def measurement_reject_reason(msg: Any, cells: int, sensors: int, t_s: float,
                              last_t_s: float | None, age_s: float | None,
                              timeout_s: float) -> str | None:
    """:func:`check_measurement` of a PackMeasurement-shaped ``msg`` taken at ``t_s`` (s), and
    its time must advance past ``last_t_s`` (s, None: first); None if usable, else why not.
    """
    reason = check_measurement(cells, sensors, msg.cell_voltages_v, msg.cell_voltage_valid,
                               msg.temperatures_degc, msg.temperature_valid,
                               float(msg.pack_current_a), bool(msg.current_stale), age_s,
                               timeout_s)
    if reason is None and last_t_s is not None and t_s <= last_t_s:
        reason = 'time stamp does not advance'
    return reason


def step_from_measurement(estimator: Any, msg: Any, t_s: float, last_t_s: float | None,
                          sensor_of_cell: ArrayLike, bleed_resistance_ohm: float
                          ) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Feed an accepted PackMeasurement-shaped ``msg`` taken at ``t_s`` (s) to ``estimator``.

    Stale groups count as invalid; a balancing cell carries its bleed current (-V/R, A); with
    both contactors open (feedback not stale) the measured current is the sensor offset.
    The estimator's plausibility checks (bms_ros.core.plausibility) run first: an implausible
    cell voltage is treated as invalid (its SoC is counted, not corrected), an implausible
    temperature as unmeasured.
    Returns (cell voltage used per cell, cell temperature per cell in degC, NaN = unmeasured).
    """
    voltages = np.asarray(msg.cell_voltages_v, dtype=float)
    valid = np.asarray(msg.cell_voltage_valid, dtype=bool) & np.isfinite(voltages) \
        & (not msg.cell_voltages_stale)
    temperature_ok = np.asarray(msg.temperature_valid, dtype=bool) & (not msg.temperatures_stale)
    plausibility = getattr(estimator, 'plausibility', None)     # None: a stand-in, no checks
    if plausibility is not None:
        temperature_ok = plausibility.check_temperatures(t_s, msg.temperatures_degc,
                                                         temperature_ok)
    temperature = cell_temperatures(sensor_of_cell, msg.temperatures_degc, temperature_ok)
    current = float(msg.pack_current_a)
    # a bleeding cell gives V / R_bleed more than the pack current through its resistor
    bleed = np.zeros(voltages.size)
    if len(msg.cell_balancing) == voltages.size:
        on = np.asarray(msg.cell_balancing, dtype=bool) & valid
        bleed[on] = -voltages[on] / bleed_resistance_ohm
    if plausibility is not None:
        valid = plausibility.check(t_s, current, voltages, valid, temperature,
                                   float(getattr(msg, 'pack_voltage_v', math.nan)))
    contactors_open = not msg.contactors_stale and not (
        msg.negative_contactor_closed or msg.positive_contactor_closed)
    if contactors_open and last_t_s is not None:
        estimator.zero_current(current, t_s - last_t_s)
    estimator.step(t_s, current, voltages, valid, limit_temperatures(temperature), bleed)
    return valid, temperature


def cell_temperatures(sensor_of_cell: ArrayLike, temperatures_degc: ArrayLike,
                      temperature_valid: ArrayLike) -> NDArray[np.float64]:
    """Temperature of each cell from its sensor (degC), NaN where that sensor is invalid."""
    t = np.asarray(temperatures_degc, dtype=float)
    ok = np.asarray(temperature_valid, dtype=bool) & np.isfinite(t)
    per_sensor = np.where(ok, t, np.nan)
    return per_sensor[np.asarray(sensor_of_cell, dtype=int)]


def limit_temperatures(cell_temperature_degc: ArrayLike) -> NDArray[np.float64]:
    """Temperatures for the current limits: an unmeasured cell takes the valid sensor farthest
    from 25 degC (the worst case); all unmeasured stay NaN (limits then 0).
    """
    t = np.asarray(cell_temperature_degc, dtype=float)
    ok = np.isfinite(t)
    if ok.all() or not ok.any():
        return t
    worst = t[ok][np.argmax(np.abs(t[ok] - 25.0))]
    return np.where(ok, t, worst)


def power_supply_status(current_a: float, pack_soc: float, threshold_a: float, full_soc: float,
                        contactors_closed: bool | None = None, measured: bool = True,
                        charger_present: bool | None = None) -> str:
    """CHARGING / DISCHARGING / FULL / NOT_CHARGING / UNKNOWN (current A, + = charging).

    ``charger_present`` True (the charger_present input): CHARGING even while full or with the
    contactors open, as nav2's IsBatteryCharging accepts only CHARGING (docs/robot_energy.md).
    """
    if not measured or not math.isfinite(current_a):
        return 'UNKNOWN'
    if charger_present:
        return 'CHARGING'
    idle = abs(current_a) <= threshold_a or contactors_closed is False
    if idle:
        return 'FULL' if math.isfinite(pack_soc) and pack_soc >= full_soc else 'NOT_CHARGING'
    return 'CHARGING' if current_a > 0 else 'DISCHARGING'


def power_supply_health(events: Iterable[tuple[str, int]] | None) -> str:
    """Health from active protection events [(limit_id, level), ...]; None -> UNKNOWN.

    An alarm or trip of over/under temperature or voltage names the health; any other trip is
    UNSPEC_FAILURE; otherwise GOOD.
    """
    if events is None:
        return 'UNKNOWN'
    serious = [(limit_id, level) for limit_id, level in events if level >= LEVEL_ALARM]
    for key, health in HEALTH_OF_LIMIT:
        if any(key in limit_id for limit_id, _ in serious):
            return health
    if any(level >= LEVEL_TRIP for _, level in serious):
        return 'UNSPEC_FAILURE'
    return 'GOOD'


def battery_percentage(pack_soc: float) -> float:
    """BatteryState.percentage (0..1) of a pack SoC; unknown (NaN) reads 0.0, i.e. "low".

    nav2's IsBatteryLow fires on ``percentage <= min_battery``, which a NaN never satisfies: a
    pack without an estimate must not look charged (docs/robot_energy.md, NaN policy).
    """
    z = float(pack_soc)
    return min(max(z, 0.0), 1.0) if math.isfinite(z) else 0.0


def docking_current_a(current_a: float, charger_present: bool, floor_a: float) -> float:
    """Current for the dock_battery_state copy: at least ``floor_a`` (A) while a charger is
    present, so opennav_docking's ``current > charging_threshold`` sees the charger even with
    the contactors open or the pack full; the measured current otherwise.
    """
    i = float(current_a)
    if charger_present and floor_a > 0.0:
        return max(i, floor_a) if math.isfinite(i) else floor_a
    return i
