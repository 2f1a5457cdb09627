"""The pack's report: :class:`ReportDecoder` (frames -> values with receive stamps) and its
:meth:`ReportDecoder.snapshot` -> :class:`PackReport`, our state names and flags.

Staleness: a message older than ``report_timeout_s`` makes its fields unknown; an unknown
state (stale, never received, or a raw value the mapping does not name) is state ERROR named
``UNKNOWN``. Unknown is never OK (fields.py turns it into limits 0 A and a trip-level event).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import TYPE_CHECKING, Any, cast

import can

from ..pack_state_machine import STATE_ERROR, STATE_NAMES
from ..protection.limits import LEVEL_TRIP, LEVEL_WARNING
from .mapping import ReportMessage, ReportSignal, frame_key

if TYPE_CHECKING:
    from ..can_mapping import CanMapping

FLAG_LEVELS = {'fault': LEVEL_TRIP, 'warning': LEVEL_WARNING}
UNKNOWN_NAME = 'UNKNOWN'
_NAN = float('nan')


@dataclass
class PackReport:
    """The pack's report at one time; NaN / None where not mapped, invalid or stale."""

    state: int                  # our state (STATE_ERROR when unknown or stale)
    state_name: str             # our name, UNKNOWN when unknown or stale
    reason: str
    stale: bool                 # the state (or any mapped field) is older than the timeout
    stale_fields: tuple[str, ...]
    age_s: float                # age of the oldest mapped report message (inf: never)
    pack_soc: float = _NAN
    soh_capacity: float = _NAN
    charge_current_limit_a: float = _NAN
    discharge_current_limit_a: float = _NAN
    pack_voltage_v: float = _NAN
    link_voltage_v: float = _NAN
    pack_current_a: float = _NAN
    # field -> bool, None: unknown
    contactors: dict[str, bool | None] = dc_field(default_factory=dict)
    # (limit_id, level, message) active
    flags: list[tuple[str, int, str]] = dc_field(default_factory=list)
    counts: dict[str, int] = dc_field(default_factory=dict)


REPORT_COUNTS = ('frames', 'wrong_dlc', 'decode_error', 'counter_error', 'invalid_marker',
                 'out_of_range', 'unknown_state')


class ReportDecoder:
    """Decodes the pack report's frames (thread-safe by the caller's lock: one reader)."""

    def __init__(self, mapping: CanMapping) -> None:
        self.mapping = mapping
        self.messages: dict[int, ReportMessage] = {m.key: m for m in mapping.pack_report or ()}
        # (field, name) -> (value, its ReportSignal, message name)
        self._values: dict[tuple[str, str], tuple[Any, ReportSignal, str]] = {}
        self._stamps: dict[str, float] = {}   # message name -> last good frame time (s)
        self._counter_last: dict[str, int] = {}
        self.counts = dict.fromkeys(REPORT_COUNTS, 0)
        self._mapped = {s.field for m in self.messages.values() for s in m.signals}

    def wants(self, msg: can.Message) -> bool:
        """True if ``msg`` is a pack report frame."""
        key = frame_key(msg)
        return key in self.messages and not msg.is_error_frame and not msg.is_remote_frame

    def feed(self, msg: can.Message, now_s: float) -> bool:
        """Decode one frame received at ``now_s`` (s); False if not a good report frame.
        Never raises (a malformed object is a decode_error).
        """
        try:
            return self._feed(msg, now_s)
        except Exception:  # noqa: BLE001  malformed objects must not stop the reader
            self.counts['decode_error'] += 1
            return False

    def _feed(self, msg: can.Message, now_s: float) -> bool:
        if not self.wants(msg):
            return False
        key = frame_key(msg)
        m = self.messages[key]
        self.counts['frames'] += 1
        if len(msg.data) != m.length:
            self.counts['wrong_dlc'] += 1
            return False
        try:
            raw = cast('dict[str, Any]', m.dbc_message.decode(bytes(msg.data),
                                                              decode_choices=False,
                                                              scaling=False))
        except Exception:  # noqa: BLE001  cantools / bitstruct errors
            self.counts['decode_error'] += 1
            return False
        if m.counter_signal is not None:
            value = raw[m.counter_signal]
            last = self._counter_last.get(m.name)
            self._counter_last[m.name] = value
            if last is not None and value != (last + 1) % m.counter_modulo:
                self.counts['counter_error'] += 1   # repeated or jumped: values withheld
                return False
        for s in m.signals:
            r = raw[s.signal]
            if s.kind == 'float':
                if s.invalid_raw is not None and r == s.invalid_raw:
                    self.counts['invalid_marker'] += 1
                    value = _NAN
                elif r < s.raw_min or r > s.raw_max:
                    self.counts['out_of_range'] += 1
                    value = _NAN
                else:
                    value = r * s.gain + s.bias
            elif s.kind == 'state':
                value = (int(r), s.states.get(int(r)))
                if value[1] is None:
                    self.counts['unknown_state'] += 1
            elif s.kind == 'bool':
                value = None if (s.invalid_raw is not None and r == s.invalid_raw) else bool(r)
            else:
                value = int(r)
            self._values[(s.field, s.name or s.signal)] = (value, s, m.name)
        self._stamps[m.name] = now_s
        return True

    def snapshot(self, now_s: float, timeout_s: float) -> PackReport:
        """The :class:`PackReport` at ``now_s``: values of messages older than ``timeout_s``
        are unknown; the state unknown means state ERROR named UNKNOWN.
        """
        ages = {m.name: now_s - self._stamps.get(m.name, -math.inf)
                for m in self.messages.values()}
        fresh = {name for name, age in ages.items() if age <= timeout_s}
        stale_fields = sorted({s.field for m in self.messages.values() if m.name not in fresh
                               for s in m.signals})
        out: dict[str, float] = {}
        contactors: dict[str, bool | None] = {}
        flags: list[tuple[str, int, str]] = []
        state_raw: tuple[int, int | None] | None = None
        for (field_name, _), (value, s, message_name) in sorted(
                self._values.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            ok = message_name in fresh
            if s.kind == 'float':
                out[field_name] = value if ok else _NAN
            elif s.kind == 'bool':
                contactors[field_name] = value if ok else None
            elif s.kind == 'state':
                state_raw = value if ok else None
            elif ok and value:
                level = FLAG_LEVELS[field_name]
                choice = s.choices.get(value)
                text = f'pack reports {s.name}' + (f': {choice}' if choice else
                                                   ('' if value == 1 else f' (code {value})'))
                flags.append((s.name, level, text))
        for name in ('negative_contactor_closed', 'positive_contactor_closed',
                     'precharge_relay_closed'):
            if name in self._mapped:
                contactors.setdefault(name, None)
        age_s = max(ages.values()) if ages else math.inf
        if state_raw is None:
            state, state_name = STATE_ERROR, UNKNOWN_NAME
            oldest = ages[next(m.name for m in self.messages.values()
                               if any(s.kind == 'state' for s in m.signals))]
            reason = ('no pack report received' if not math.isfinite(oldest)
                      else f'pack report stale: none for {oldest:.2f} s '
                           f'(timeout {timeout_s:g} s)')
        elif state_raw[1] is None:
            state, state_name = STATE_ERROR, UNKNOWN_NAME
            reason = f'pack state raw {state_raw[0]} is not in the mapping'
        else:
            state = state_raw[1]
            state_name = STATE_NAMES[state]
            state_signal = next(s for m in self.messages.values() for s in m.signals
                                if s.kind == 'state')
            choice = state_signal.choices.get(state_raw[0])
            reason = f'pack reports {choice or state_raw[0]}'
        if stale_fields and state_raw is not None:
            reason += f' (stale: {", ".join(stale_fields)})'
        for name in ('pack_soc', 'soh_capacity', 'charge_current_limit_a',
                     'discharge_current_limit_a', 'pack_voltage_v', 'link_voltage_v',
                     'pack_current_a'):
            out.setdefault(name, _NAN)
        return PackReport(state=state, state_name=state_name, reason=reason,
                          stale=bool(stale_fields), stale_fields=tuple(stale_fields),
                          age_s=age_s, contactors=contactors, flags=flags,
                          counts=dict(self.counts), **out)
