"""Our message field values from the pack's report: PackState, BatteryEstimate,
ProtectionStatus, BatteryState, and the report's diagnostic status.

Unknown is never OK: a stale or never-received report gives limits 0 A, a trip-level
``pack_report_stale`` event, health UNKNOWN and ``present`` False.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..estimation import interface
from ..pack_state_machine import STATE_CHARGE, STATE_DRIVE, STATE_ERROR, STATE_NAMES
from ..protection.limits import LEVEL_OK, LEVEL_TRIP
from .decoder import UNKNOWN_NAME, PackReport

if TYPE_CHECKING:
    from ..profile import PackSpec

STALE_EVENT = 'pack_report_stale'
COMMANDED_REASON = 'the pack BMS owns its contactors'   # PackState.commanded.reason
# BatteryState.power_supply_status: |current| at or below this is idle (A); FULL from this SoC
IDLE_CURRENT_A = 0.5
FULL_SOC = 0.98
_NAN = float('nan')


def pack_state_fields(report: PackReport, requested_state: int,
                      measurement: dict[str, Any] | None = None) -> dict[str, Any]:
    """PackState field values (no header / commanded) from the report; contactor feedback
    and voltages from the report where mapped, else from the measurement (a dict of
    PackMeasurement fields, or None); unknown feedback reads closed = False.
    """
    fields: dict[str, Any] = {'state': report.state, 'requested_state': requested_state,
              'state_name': report.state_name, 'reason': report.reason}
    for name in ('negative_contactor_closed', 'positive_contactor_closed',
                 'precharge_relay_closed'):
        if name in report.contactors:
            fields[name] = bool(report.contactors[name])
        else:
            fields[name] = bool(measurement.get(name, False)) if measurement else False
    for name in ('pack_voltage_v', 'link_voltage_v'):
        value = getattr(report, name)
        if not math.isfinite(value) and measurement:
            value = float(measurement.get(name, _NAN))
        fields[name] = value
    return fields


def estimate_fields(report: PackReport, cells_series: int) -> dict[str, Any]:
    """BatteryEstimate field values from the report: what the pack does not give is NaN;
    the limits are 0 A while the report is stale (unknown is never OK).
    """
    nan_cells = [_NAN] * cells_series
    fields: dict[str, Any] = {'cell_soc': list(nan_cells), 'cell_capacity_ah': list(nan_cells),
              'cell_r0_ohm': list(nan_cells)}
    for name in ('pack_soc_min', 'pack_soc_max', 'remaining_charge_ah', 'capacity_ah',
                 'soh_resistance', 'charge_current_limit_long_a',
                 'discharge_current_limit_long_a', 'horizon_short_s', 'horizon_long_s',
                 'current_offset_a'):
        fields[name] = _NAN
    fields['pack_soc'] = report.pack_soc
    fields['soh_capacity'] = report.soh_capacity
    charge, discharge = report_limits(report)
    fields['charge_current_limit_a'] = charge
    fields['discharge_current_limit_a'] = discharge
    fields['at_rest'] = False
    return fields


def report_limits(report: PackReport) -> tuple[float, float]:
    """(charge, discharge) current limits, A (magnitudes): 0 while stale or faulted."""
    if report.state_name == UNKNOWN_NAME or any(level >= LEVEL_TRIP
                                                for _, level, _ in report.flags):
        return 0.0, 0.0
    return (abs(report.charge_current_limit_a), abs(report.discharge_current_limit_a))


def protection_fields(report: PackReport) -> dict[str, Any]:
    """ProtectionStatus field values: the pack's active flags as events (dicts with the
    ProtectionEvent fields), a stale report as a trip-level ``pack_report_stale`` event.
    """
    events: list[dict[str, Any]] = [
        {'limit_id': limit_id, 'level': level, 'index': -1, 'value': 1.0, 'threshold': 1.0,
         'unit': '', 'active': True, 'latched': level >= LEVEL_TRIP, 'message': text}
        for limit_id, level, text in report.flags]
    if report.state_name == UNKNOWN_NAME:
        age = report.age_s
        events.append({'limit_id': STALE_EVENT, 'level': LEVEL_TRIP, 'index': -1,
                       'value': age if math.isfinite(age) else _NAN, 'threshold': _NAN,
                       'unit': 's', 'active': True, 'latched': False,
                       'message': report.reason})
    elif report.state == STATE_ERROR and not any(e['level'] >= LEVEL_TRIP for e in events):
        events.append({'limit_id': 'pack_error', 'level': LEVEL_TRIP, 'index': -1,
                       'value': 1.0, 'threshold': 1.0, 'unit': '', 'active': True,
                       'latched': True, 'message': report.reason})
    charge, discharge = report_limits(report)
    return {'max_level': max([LEVEL_OK] + [e['level'] for e in events]),
            'trip_latched': any(e['latched'] for e in events),
            'active': events,
            'charge_current_limit_a': charge, 'discharge_current_limit_a': discharge}


def battery_health(report: PackReport,
                   power_supply_health: Callable[[list[tuple[str, int]]], str]) -> str:
    """BatteryState health name from the report (``power_supply_health`` is
    core.estimation.interface's): UNKNOWN while stale, else from the active flags.
    """
    if report.state_name == UNKNOWN_NAME:
        return 'UNKNOWN'
    events = [(e['limit_id'], e['level']) for e in protection_fields(report)['active']]
    return power_supply_health(events)


def battery_state_fields(report: PackReport, measurement: Mapping[str, Any] | None,
                         pack: PackSpec) -> dict[str, Any]:
    """sensor_msgs/BatteryState field values (no header) from the report and ``measurement``
    (PackMeasurement fields as a dict, or None); the three enumerations by name (the constants
    ``POWER_SUPPLY_STATUS_<name>``, ``_HEALTH_<name>``, ``_TECHNOLOGY_<name>``).

    Voltage (V) and current (A, + = charging) from the report, else from a measurement whose
    current is not stale; cells and the hottest valid temperature (degC) from the measurement;
    capacity and charge (Ah) from the report's SoH and SoC; status UNKNOWN and present False
    while the report is unknown, NOT_CHARGING (or FULL) while the pack is not in DRIVE/CHARGE.
    """
    voltage = report.pack_voltage_v
    current = report.pack_current_a
    temperature = _NAN
    cell_voltage: list[float] = []
    if measurement is not None and not measurement['current_stale']:
        if not math.isfinite(voltage):
            voltage = float(measurement['pack_voltage_v'])
        if not math.isfinite(current):
            current = float(measurement['pack_current_a'])
    if measurement is not None:
        cell_voltage = [float(v) if ok else _NAN for v, ok in
                        zip(measurement['cell_voltages_v'], measurement['cell_voltage_valid'])]
        temps = [float(t) if ok else _NAN for t, ok in
                 zip(measurement['temperatures_degc'], measurement['temperature_valid'])]
        finite = [t for t in temps if math.isfinite(t)]
        temperature = max(finite) if finite else _NAN
    soh = report.soh_capacity
    capacity = soh * pack.capacity_ah if math.isfinite(soh) else _NAN
    unknown = report.state_name == UNKNOWN_NAME
    closed = None if unknown else report.state in (STATE_DRIVE, STATE_CHARGE)
    return {
        'voltage': voltage, 'current': current, 'temperature': temperature,
        'cell_voltage': cell_voltage,
        'design_capacity': float(pack.capacity_ah), 'capacity': capacity,
        'charge': report.pack_soc * capacity if math.isfinite(capacity) else _NAN,
        'percentage': interface.battery_percentage(report.pack_soc),   # never NaN
        'power_supply_status': interface.power_supply_status(
            current, report.pack_soc, IDLE_CURRENT_A, FULL_SOC, closed, measured=not unknown),
        'power_supply_health': battery_health(report, interface.power_supply_health),
        'power_supply_technology': interface.TECHNOLOGY.get(pack.cell.chemistry, 'UNKNOWN'),
        'present': not unknown,
        'location': pack.location,
        'serial_number': pack.serial_number,
    }


def report_diagnostic(report: PackReport, requested_state: int,
                      requests_sent: int) -> tuple[str, str, dict[str, str]]:
    """(level name OK / WARN / ERROR, message, key values) of the report's diagnostic status:
    ERROR while unknown, WARN with a stale field or an active flag.
    """
    if report.state_name == UNKNOWN_NAME:
        level = 'ERROR'
    elif report.stale or report.flags:
        level = 'WARN'
    else:
        level = 'OK'
    values: dict[str, Any] = {
        'state': report.state_name, 'requested_state': STATE_NAMES[requested_state],
        'age_s': f'{report.age_s:.3f}', 'stale_fields': ' '.join(report.stale_fields),
        'requests_sent': requests_sent, 'flags': ' '.join(f[0] for f in report.flags)}
    values.update({f'report_{k}': v for k, v in report.counts.items()})
    return level, f'{report.state_name}: {report.reason}', {k: str(v) for k, v in values.items()}
