"""Raw values of a DBC signal: the range its bits can hold and the raw value meaning "invalid".

Shared by the measurement mapping (can_mapping) and the pack report (pack_report), so a mapping
entry's ``invalid_raw`` means the same in both.
"""
from __future__ import annotations

import math
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


def dbc_raw_range(dbc_signal: Signal) -> tuple[int, int]:
    """(lowest, highest) raw value of the DBC's [minimum|maximum] (physical, either may be
    absent), within the range the bits hold; a negative scale swaps the ends. May be empty
    (lowest > highest): the caller says whose entry that is.
    """
    scale, offset = float(dbc_signal.scale), float(dbc_signal.offset)
    raw_min, raw_max = type_range(dbc_signal)
    bounds = [None if v is None else (v - offset) / scale
              for v in (dbc_signal.minimum, dbc_signal.maximum)]
    if scale < 0:
        bounds.reverse()
    if bounds[0] is not None:
        raw_min = max(raw_min, math.ceil(bounds[0] - 1e-9))
    if bounds[1] is not None:
        raw_max = min(raw_max, math.floor(bounds[1] + 1e-9))
    return raw_min, raw_max


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
