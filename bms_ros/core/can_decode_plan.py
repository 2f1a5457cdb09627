"""Decode plans: everything the decoder's hot path needs about one measurement message,
resolved once from its MessageMap (core/can_decode.py walks them per frame).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .can_counter import RollingCounter
from .can_mapping_model import CanMapping, MessageMap
from .can_validity import branch_values

EXT = 1 << 29            # key bit separating 29-bit from 11-bit ids
FLOAT, BOOL, BITMASK = 0, 1, 2


def _entries_by_branch(mm: MessageMap, entries: tuple[_Entry, ...]
                       ) -> dict[int, tuple[_Entry, ...]] | None:
    """{value of the named multiplexer: the entries that branch can carry} for a message of
    named signals per branch (no stride), so a frame walks its own few signals, not all of the
    message's; None for other messages (every entry may be in every frame).
    """
    if mm.mux_signal is None or mm.mux_stride is not None:
        return None
    signals = {s.name: s for s in mm.dbc_message.signals}
    branches = [branch_values(signals[s.signal], mm.mux_signal, signals) for s in mm.signals]
    values = {v for b in branches if b is not None for v in b}
    if not values:
        return None
    return {v: tuple(e for e, b in zip(entries, branches) if b is None or v in b)
            for v in values}


def frame_key(arbitration_id: int, is_extended: bool) -> int:
    """Lookup key of a frame id: 11-bit and 29-bit ids with the same number differ."""
    return arbitration_id | EXT if is_extended else arbitration_id


class Plan:
    """Everything the hot path needs about one received message, resolved once."""

    __slots__ = ('name', 'decode', 'length', 'mux', 'stride', 'first', 'entries', 'counter',
                 'counter_rule', 'elements', 'branch_muxes', 'counts', 'device', 'by_branch')
    name: str
    decode: Callable[..., Any]
    length: int
    mux: str | None
    stride: int | None
    first: int
    entries: tuple[_Entry, ...]
    counter: str | None
    counter_rule: RollingCounter | None
    elements: tuple[tuple[str, int], ...]
    branch_muxes: tuple[str, ...] | None
    counts: dict[str, int]
    device: str
    by_branch: dict[Any, tuple[_Entry, ...]] | None


# one mapped signal as the hot path reads it: (signal, values, stamps, index, bits, gain, bias,
# invalid raw, raw min, raw max, field length, kind, validity check or None)
_Entry = tuple[Any, ...]


def plan_of(mm: MessageMap, mapping: CanMapping, values: dict[str, list[float]],
            stamps: dict[str, list[float]], reasons: Sequence[str], device: str,
            counter_errors_stale: int) -> Plan:
    """The plan of measurement message ``mm``, writing into the decoder's per-field ``values``
    and ``stamps`` lists; its counts start at zero for each of ``reasons``.
    """
    plan = Plan()
    plan.name = mm.name
    plan.device = device
    plan.counts = dict.fromkeys(reasons, 0)
    # decode_simple skips the container check of decode(); both exist in cantools 45
    dbc_message = mm.dbc_message
    plan.decode = getattr(dbc_message, 'decode_simple', None) or dbc_message.decode
    plan.length = mm.length
    plan.mux = mm.mux_signal
    plan.stride = mm.mux_stride
    plan.first = mm.mux_first
    plan.counter = mm.counter_signal
    plan.counter_rule = None if mm.counter_signal is None else RollingCounter(
        mm.counter_modulo, counter_errors_stale, plan.counts)
    # nested multiplexing: a block is the combination of all multiplexer values
    muxes = tuple(s.name for s in dbc_message.signals if s.is_multiplexer)
    plan.branch_muxes = muxes if len(muxes) > 1 else None
    # (field, element) pairs the message provides, for invalidation
    elements: set[tuple[str, int]] = set()
    for s in mm.signals:
        n = mapping.field_length(s.field)
        for mux in (mm.mux_values or (None,)):
            for bit in range(s.bits if s.bitmask else 1):
                e = mm.element(s, mux, bit)
                if e < n:
                    elements.add((s.field, e))
    plan.elements = tuple(sorted(elements))
    entries: list[_Entry] = []
    for s in mm.signals:
        kind = BITMASK if s.bitmask else (BOOL if s.is_bool else FLOAT)
        check = None if s.flag is None and s.error is None else (
            s.flag, s.flag_invalid, s.error, s.error_mask)
        entries.append((s.signal, values[s.field], stamps[s.field], s.index, s.bits, s.gain,
                        s.bias, s.invalid_raw, s.raw_min, s.raw_max,
                        mapping.field_length(s.field), kind, check))
    plan.entries = tuple(entries)
    plan.by_branch = _entries_by_branch(mm, plan.entries)
    return plan
