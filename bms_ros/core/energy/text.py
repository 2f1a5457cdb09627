"""Short operator texts of the energy fields (the status line's 'runtime' field)."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def duration_text(seconds: float | None) -> str:
    """'1h23', '45m', '>99h' or '?' for a duration in s."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return '?'
    minutes = int(round(seconds / 60.0))
    if minutes >= 100 * 60:
        return '>99h'
    return f'{minutes // 60}h{minutes % 60:02d}' if minutes >= 60 else f'{minutes}m'


def runtime_text(estimate: Mapping[str, Any] | None) -> str | None:
    """'empty 1h23 (1h10-1h35)', 'full 45m', or 'Wh 812' of an estimate dict (field names of
    BatteryEstimate); None without one. Time to empty at the present load, else at the learnt
    profile ('~' marks it), time to full while charging.
    """
    if estimate is None:
        return None
    get = estimate.get
    def finite(name: str) -> bool:
        value = get(name)
        return value is not None and math.isfinite(value)
    if finite('time_to_full_s'):
        return (f'full {duration_text(get("time_to_full_s"))}'
                f' ({duration_text(get("time_to_full_low_s"))}-'
                f'{duration_text(get("time_to_full_high_s"))})')
    for key, mark in (('time_to_empty', ''), ('time_to_empty_profile', '~')):
        if finite(key + '_s'):
            return (f'empty {mark}{duration_text(get(key + "_s"))}'
                    f' ({duration_text(get(key + "_low_s"))}-'
                    f'{duration_text(get(key + "_high_s"))})')
    if finite('remaining_energy_wh'):
        return f'{get("remaining_energy_wh"):.0f} Wh'
    return 'runtime n/a'
