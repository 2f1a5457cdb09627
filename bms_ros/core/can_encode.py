"""Encoding of frames: the pack side's measurement frames (:class:`PackEncoder`, used by the
simulator and the test players) and the driver's commands (:class:`CommandEncoder`).

NaN is sent as the signal's invalid marker (and sets its invalid_flag or the lowest bit of
its error_bits mask); every message with a rolling counter counts +1
per frame, one sequence over all its multiplexer branches (what the decoder checks).
"""
from __future__ import annotations

import math
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, cast

import can
import numpy as np
from numpy.typing import ArrayLike

from .can_decode import REJECT_REASONS, frame_key
from .can_frame import decode_frame
from .can_mapping import MEASUREMENT_FIELDS, MessageMap, SignalMap
from .errors import EncodeError

if TYPE_CHECKING:
    from .can_codec import CanProtocol

_NAN = float('nan')


def _raw_of_value(s: SignalMap, value: float | None) -> int:
    """Raw integer of a numeric field value for signal map ``s`` (NaN -> invalid marker)."""
    if value is None or not math.isfinite(value):
        return s.invalid_raw if s.invalid_raw is not None else max(s.type_min, min(0, s.type_max))
    raw = round((value - s.bias) / s.gain)
    raw = max(s.type_min, min(s.type_max, raw))
    if raw == s.invalid_raw:   # a saturated reading must not read back as "invalid"
        raw = raw - 1 if raw == s.type_max else raw + 1
    return raw


def _raw_of_bool(s: SignalMap, value: object) -> int:
    """Raw 0/1 that decodes to ``value`` through the mapping's scale/offset."""
    one_is_true = (s.gain + s.bias) >= 0.5
    return 1 if bool(value) == one_is_true else 0


def _branch_frames(mm: MessageMap) -> list[tuple[int | None, dict[str, int]]]:
    """(value of the named multiplexer, {other multiplexer: value}) of each frame a message
    takes: one per multiplexer value; with named signals (no stride) one per distinct branch of
    the other multiplexers of its mapped signals too (nested: module, then block).
    """
    if mm.mux_signal is None:
        return [(None, {})]
    if mm.mux_stride is not None:
        return [(m, {}) for m in mm.mux_values]
    signals = {s.name: s for s in mm.dbc_message.signals}
    out: list[tuple[int | None, dict[str, int]]] = []
    for value in mm.mux_values:
        others: list[tuple[tuple[str, int], ...]] = []
        for s in mm.signals:
            chain: dict[str, tuple[int, ...]] = {}
            signal = signals[s.signal]
            while signal.multiplexer_signal is not None:
                chain[signal.multiplexer_signal] = tuple(signal.multiplexer_ids or ())
                signal = signals[signal.multiplexer_signal]
            if mm.mux_signal in chain and value not in chain[mm.mux_signal]:
                continue                     # not in this branch
            rest = tuple(sorted((m, min(ids)) for m, ids in chain.items()
                                if m != mm.mux_signal and ids))
            if rest and rest not in others:
                others.append(rest)
        out += [(value, dict(r)) for r in others] or [(value, {})]
    return out


def _encode_frame(mm: MessageMap, fields: dict[str, Any], mux: int | None, counter_value: int,
                  other_muxes: dict[str, int] | None = None) -> can.Message:
    """One frame of message ``mm`` for multiplexer value ``mux`` (and ``other_muxes``, name ->
    value, nested) from ``fields`` (name -> value).
    """
    raw: dict[str, Any] = dict.fromkeys(mm.other_signals, 0)
    if mm.mux_signal is not None:
        raw[mm.mux_signal] = mux
        raw.update(other_muxes or {})
    if mm.counter_signal is not None:
        raw[mm.counter_signal] = counter_value
    for s in mm.signals:      # validity signals read valid unless a value they serve is NaN
        if s.flag is not None:
            raw[s.flag] = 1 - s.flag_invalid
        if s.error is not None:
            raw[s.error] = 0
    for s in mm.signals:
        value = fields[s.field]
        is_array = np.ndim(value) > 0
        element = mm.element(s, mux)
        n = len(value) if is_array else 1
        if s.bitmask:
            bits = 0
            for k in range(min(s.bits, max(0, n - element))):
                if value[element + k]:
                    bits |= 1 << k
            raw[s.signal] = bits
        elif element >= n:   # padding slot beyond the pack
            raw[s.signal] = 0 if s.is_bool else _raw_of_value(s, _NAN)
        else:
            v = value[element] if is_array else value
            raw[s.signal] = _raw_of_bool(s, v) if s.is_bool else _raw_of_value(s, float(v))
            if not s.is_bool and not math.isfinite(float(v)):
                if s.flag is not None:
                    raw[s.flag] = s.flag_invalid
                if s.error is not None:
                    raw[s.error] |= s.error_mask & -s.error_mask   # its lowest bit
    data = mm.dbc_message.encode(raw, scaling=False, padding=False, strict=False)
    return can.Message(arbitration_id=mm.frame_id, is_extended_id=mm.is_extended, data=data,
                       dlc=len(data), is_rx=False)


def _field(state: Any, name: str) -> Any:
    if isinstance(state, dict):
        if name not in state:
            raise EncodeError(f'state has no field {name!r}')
        return state[name]
    try:
        return getattr(state, name)
    except AttributeError:
        raise EncodeError(f'state has no field {name!r}') from None


class _Sender:
    """Frame encoding of mapped messages with one rolling counter per message."""

    def __init__(self, protocol: CanProtocol) -> None:
        self.protocol = protocol
        self._counter: dict[str, int] = {}
        self._branches: dict[str, list[tuple[int | None, dict[str, int]]]] = {}

    def _frames(self, mm: MessageMap, fields: dict[str, Any]) -> list[can.Message]:
        branches = self._branches.get(mm.name)
        if branches is None:
            branches = self._branches[mm.name] = _branch_frames(mm)
        frames: list[can.Message] = []
        for mux, other_muxes in branches:
            counter = self._counter.get(mm.name, 0)
            if mm.counter_signal is not None:
                self._counter[mm.name] = (counter + 1) % mm.counter_modulo
            frames.append(_encode_frame(mm, fields, mux, counter, other_muxes))
        return frames


class PackEncoder(_Sender):
    """Pack side: measurement frames at their periods, and decoding of commands."""

    def __init__(self, protocol: CanProtocol) -> None:
        super().__init__(protocol)
        self._next_due = {mm.name: -math.inf for mm in protocol.mapping.measurement}
        self._cell_bleed = np.zeros(protocol.cells_series, dtype=bool)
        self.frames_sent = 0
        self.commands_received = 0
        self.rejected = dict.fromkeys(REJECT_REASONS + ('counter_jump',), 0)
        self._command_plans = {frame_key(m.frame_id, m.is_extended): m
                               for m in protocol.mapping.commands}
        self._command_counter: dict[str, int] = {}

    def state_fields(self, state: Any) -> dict[str, Any]:
        """Values of every mapped measurement field in ``state`` (object or dict), checked."""
        fields: dict[str, Any] = {}
        for name in self.protocol.mapping.mapped_fields():
            value = _field(state, name)
            n = self.protocol.field_length(name)
            if MEASUREMENT_FIELDS[name][1] is not None:
                value = np.asarray(value)
                if value.shape != (n,):
                    raise EncodeError(f'{name}: expected {n} values, got shape {value.shape}')
            fields[name] = value
        return fields

    def encode_all(self, state: Any,
                   keys: Collection[int] | None = None) -> list[can.Message]:
        """Every measurement frame (all multiplexer blocks) of ``state`` now; with ``keys``
        (frame keys, as CanProtocol.frame_keys gives) only those messages, so the rolling
        counters of the others do not advance for frames never sent.
        """
        fields = self.state_fields(state)
        frames: list[can.Message] = []
        for mm in self.protocol.mapping.measurement:
            if keys is None or frame_key(mm.frame_id, mm.is_extended) in keys:
                frames += self._frames(mm, fields)
        self.frames_sent += len(frames)
        return frames

    def due_frames(self, now_s: float, state: Any) -> list[can.Message]:
        """Frames whose period elapsed at ``now_s`` (s), from ``state`` (NaN -> invalid marker)."""
        due = [mm for mm in self.protocol.mapping.measurement if now_s >= self._next_due[mm.name]]
        if not due:
            return []
        fields = self.state_fields(state)
        frames: list[can.Message] = []
        for mm in due:
            period_s = cast(float, mm.period_s)   # a measurement message has one (can_mapping)
            next_due = self._next_due[mm.name] + period_s
            # fell behind (first call, paused process): restart the schedule from now
            self._next_due[mm.name] = next_due if next_due > now_s else now_s + period_s
            frames += self._frames(mm, fields)
        self.frames_sent += len(frames)
        return frames

    def decode_command(self, msg: can.Message) -> dict[str, Any] | None:
        """A command frame as a dict, or None (not a command, or malformed: counted)."""
        try:
            if msg.is_error_frame:
                self.rejected['error_frame'] += 1
                return None
            mm = self._command_plans.get(frame_key(msg.arbitration_id, msg.is_extended_id))
            if mm is None:
                return None   # measurement frames of other senders, foreign ids: not ours
            if msg.is_remote_frame:
                self.rejected['remote_frame'] += 1
                return None
            if len(msg.data) != mm.length:
                self.rejected['wrong_dlc'] += 1
                return None
            raw = decode_frame(mm.dbc_message, msg.data)
        except Exception:  # noqa: BLE001  DecodeError, or not a frame at all
            self.rejected['decode_error'] += 1
            return None
        if mm.counter_signal is not None:
            last = self._command_counter.get(mm.name)
            value = raw[mm.counter_signal]
            if last is not None and value != (last + 1) % mm.counter_modulo:
                self.rejected['counter_jump'] += 1
            self._command_counter[mm.name] = value
        self.commands_received += 1
        if mm.kind == 'contactor':
            out: dict[str, Any] = {'kind': 'contactor'}
            for s in mm.signals:
                out[s.field] = raw[s.signal] * s.gain + s.bias >= 0.5
            return out
        mux = raw.get(mm.mux_signal) if mm.mux_signal else None
        if mux is not None and mux < mm.mux_first:
            return None
        n = len(self._cell_bleed)
        for s in mm.signals:
            r = raw[s.signal]
            start = mm.element(s, mux)
            for k in range(s.bits if s.bitmask else 1):
                if start + k < n:
                    self._cell_bleed[start + k] = bool((r >> k) & 1) if s.bitmask \
                        else r * s.gain + s.bias >= 0.5
        return {'kind': 'balancing', 'cell_bleed': self._cell_bleed.copy()}


class CommandEncoder(_Sender):
    """Driver side: contactor and balancing commands as frames."""

    def __init__(self, protocol: CanProtocol) -> None:
        super().__init__(protocol)
        self.contactor = protocol.mapping.command('contactor')
        self.balancing = protocol.mapping.command('balancing')

    @property
    def contactor_period_s(self) -> float | None:
        """Repeat period of the contactor command (s), None if sent on change only or not
        mapped (control style b: the pack owns its contactors).
        """
        return self.contactor.period_s if self.contactor is not None else None

    def encode_contactor_command(self, negative_closed: bool, precharge_closed: bool,
                                 positive_closed: bool) -> list[can.Message]:
        """Frames of one contactor command (true = close)."""
        if self.contactor is None:
            raise EncodeError('the CAN mapping has no contactor command')
        fields = {'negative_closed': bool(negative_closed),
                  'precharge_closed': bool(precharge_closed),
                  'positive_closed': bool(positive_closed)}
        return self._frames(self.contactor, fields)

    def encode_balancing_command(self, cell_bleed: ArrayLike) -> list[can.Message]:
        """Frames of one balancing command: one bool per series cell (true = bleed)."""
        if self.balancing is None:
            raise EncodeError('the CAN mapping has no balancing command')
        cell_bleed = np.asarray(cell_bleed)
        n = self.protocol.cells_series
        if cell_bleed.shape != (n,):
            raise EncodeError(f'cell_bleed: expected {n} values, got shape {cell_bleed.shape}')
        return self._frames(self.balancing, {'cell_bleed': cell_bleed.astype(bool)})
