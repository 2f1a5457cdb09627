"""Raw values of a DBC signal: the range its bits can hold and the raw value meaning "invalid".

Shared by the measurement mapping (can_mapping) and the pack report (pack_report), so a mapping
entry's ``invalid_raw`` means the same in both.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cantools.database.can import Signal

    from .config import Section


def type_range(dbc_signal: Signal) -> tuple[int, int]:
    """(smallest, largest) raw value the signal's bits can hold (two's complement if signed)."""
    bits = dbc_signal.length
    if dbc_signal.is_signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def invalid_raw_of(sec: Section, dbc_signal: Signal, marker_by_default: bool) -> int | None:
    """The entry's ``invalid_raw``: ``max`` (the largest raw value), ``null`` (none) or a raw
    value in the signal's range; absent: ``max`` if ``marker_by_default``, else none.
    """
    type_min, type_max = type_range(dbc_signal)
    invalid = sec.data.get('invalid_raw', 'max' if marker_by_default else None)
    if invalid == 'max':
        return type_max
    if invalid is None:
        return None
    return sec.integer('invalid_raw', minimum=type_min, maximum=type_max)
