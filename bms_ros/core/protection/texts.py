"""Names and message texts of protection events: which cell or sensor, which level, which value.

Pure formatting: nothing here decides whether a limit is raised.
"""
from __future__ import annotations

import math

from .limits import (
    CATALOG_BY_ID,
    LEVEL_NAMES,
    STALE_GROUPS,
    FlagLimit,
    Limit,
    RangeLimit,
    TimeCurrentLimit,
)

DECIMALS = {'V': 3, 'A': 1, 'degC': 1, 'degC/s': 2, 's': 2}


def fmt(value: float | None, unit: str) -> str:
    """``value`` with the decimals of ``unit`` ('NaN' if unknown)."""
    if value is None or not math.isfinite(value):
        return 'NaN'
    return f'{value:.{DECIMALS.get(unit, 3)}f}'


def index_of(limit_id: str, channel: int) -> int:
    """Event index of a channel: cell or sensor index; -1 = whole pack (or no message at all)."""
    scope = CATALOG_BY_ID[limit_id].scope
    if scope == 'pack':
        return -1
    if scope == 'group':
        return int(channel) - 1
    return int(channel)


def channel_of(limit_id: str, index: int) -> int | None:
    """The channel of an event index (None for a limit id the catalogue does not know)."""
    entry = CATALOG_BY_ID.get(limit_id)
    if entry is None:
        return None
    if entry.scope == 'pack':
        return 0
    if entry.scope == 'group':
        return index + 1
    return index


def subject(limit_id: str, index: int) -> str:
    """What an event is about: 'cell 3', 'temperature sensor 2', 'pack', a stale group."""
    scope = CATALOG_BY_ID[limit_id].scope
    if scope == 'cell':
        return f'cell {index}'
    if scope == 'sensor':
        return f'temperature sensor {index}'
    if scope == 'group':
        return STALE_GROUPS[index] if index >= 0 else 'measurement'
    return 'pack'


def threshold_of(limit: Limit, row: int) -> float:
    """The threshold reported for level ``row`` of ``limit`` (NaN for a yes/no flag)."""
    if isinstance(limit, RangeLimit):
        return limit.maximum
    if isinstance(limit, FlagLimit):
        return math.nan
    return float(limit.thresholds[row])


def raise_text(limit: Limit, row: int, index: int, value: float,
               by_curve: bool = False) -> str:
    """Message of a raised level; ``by_curve``: tripped by the time-current curve."""
    entry = CATALOG_BY_ID[limit.limit_id]
    name = subject(limit.limit_id, index)
    unit = limit.unit
    if isinstance(limit, RangeLimit):
        return (f'{name} {entry.text}: {fmt(value, unit)} {unit} not in '
                f'[{fmt(limit.minimum, unit)}, {fmt(limit.maximum, unit)}] {unit}')
    if isinstance(limit, FlagLimit):
        return f'{name} {entry.text}'
    level = limit.levels[row]
    if by_curve and isinstance(limit, TimeCurrentLimit):   # only its curve trips by curve
        allowed = float(limit.allowed_time_s(value))
        return (f'{name} {entry.text} {fmt(value, unit)} {unit} beyond the time-current '
                f'curve ({allowed:.1f} s allowed at this current)')
    op = '>=' if limit.high else '<='
    return (f'{name} {entry.text} {fmt(value, unit)} {unit} {op} {LEVEL_NAMES[level]} '
            f'{fmt(limit.thresholds[row], unit)} {unit}')


GATE_TEXT = {   # limit id -> why a gated limit stops applying (bms_ros.core.protection.signals)
    'charge_overtemperature': ('charging stopped', 'only while charging'),
    'charge_undertemperature': ('charging stopped', 'only while charging'),
}


def clear_text(limit: Limit, row: int, index: int, value: float,
               by_gate: bool = False) -> str:
    """Message of a released warning or alarm (a trip clears only by reset); ``by_gate``: the
    limit stopped applying (e.g. charging stopped) while its value is still beyond.
    """
    entry = CATALOG_BY_ID[limit.limit_id]
    name = subject(limit.limit_id, index)
    unit = limit.unit
    if isinstance(limit, FlagLimit):
        return f'{name} {entry.text}: cleared'
    level = limit.levels[row]
    if by_gate:
        why, scope = GATE_TEXT.get(limit.limit_id, ('the limit no longer applies', 'sometimes'))
        return (f'{name} {entry.text} {LEVEL_NAMES[level]} cleared: {why} (now '
                f'{fmt(value, unit)} {unit}; this limit applies {scope})')
    bound = limit.thresholds[row] + (-limit.hysteresis if limit.high else limit.hysteresis)
    op = '<' if limit.high else '>'
    return (f'{name} {entry.text} {LEVEL_NAMES[level]} cleared: {fmt(value, unit)} {unit} '
            f'{op} {fmt(bound, unit)} {unit}')
