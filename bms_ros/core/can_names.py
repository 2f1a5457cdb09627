"""Texts of mapping errors: "did you mean" suggestions and compact index ranges."""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence


def format_indices(indices: Iterable[int]) -> str:
    """Sorted indices as compact ranges: '16-19, 22'."""
    out = []
    ordered = sorted(indices)
    start = prev = ordered[0]
    rest: list[int | None] = list(ordered[1:])
    for i in rest + [None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        out.append(f'{start}' if start == prev else f'{start}-{prev}')
        if i is not None:
            start = prev = i
    return ', '.join(out)


def unpadded(name: str) -> str:
    """``name`` without the leading zeros of its numbers: CellVoltage_017 -> CellVoltage_17."""
    return re.sub(r'\d+', lambda m: str(int(m.group())), name)


def suggest(name: str, known: Sequence[str]) -> str:
    """The suffix " (did you mean 'X'?)" naming the known name closest to ``name`` ('' if none)."""
    # a name that differs only in zero padding (CellVoltage_17 / CellVoltage_017) comes first:
    # difflib alone ranks CellVoltage_197 higher
    key = unpadded(name)
    padded = [k for k in known if unpadded(k) == key]
    close = difflib.get_close_matches(name, padded, n=1, cutoff=0.0) if padded \
        else difflib.get_close_matches(name, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ''

