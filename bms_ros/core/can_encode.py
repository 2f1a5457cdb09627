"""Encoding of frames: the pack side's measurement frames (:class:`PackEncoder`, used by the
simulator and the test players) and the driver's commands (:class:`CommandEncoder`).

NaN is sent as the signal's invalid marker (and sets its invalid_flag or the lowest bit of
its error_bits mask); every message with a rolling counter counts +1
per frame, one sequence over all its multiplexer branches (what the decoder checks).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Collection
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


_CONST, _MASK, _BOOL, _VALUE = range(4)     # how a _FramePlan slot gets its raw value
_SCALARS = (bool, int, float, np.generic)


class _FramePlan:
    """One frame of a measurement message (one multiplexer branch), resolved once: the raw
    values that never change, what each mapped signal takes from the fields, and the bit
    layout of the signals the frame carries. Gives the bytes _encode_frame gives, bit for bit
    (the layout is checked against cantools when built; None if it does not match: cantools
    encodes then).
    """

    def __init__(self, mm: MessageMap, mux: int | None, other_muxes: dict[str, int],
                 lengths: dict[str, int]) -> None:
        self.mm = mm
        fixed: dict[str, Any] = dict.fromkeys(mm.other_signals, 0)
        if mm.mux_signal is not None:
            fixed[mm.mux_signal] = mux
            fixed.update(other_muxes)
        if mm.counter_signal is not None:
            fixed[mm.counter_signal] = 0
        for s in mm.signals:
            if s.flag is not None:
                fixed[s.flag] = 1 - s.flag_invalid
            if s.error is not None:
                fixed[s.error] = 0
        # (kind, signal, field, element: None for a scalar field, argument, signal map)
        slots: list[tuple[int, str, str, int | None, Any, SignalMap]] = []
        for s in mm.signals:
            n = lengths[s.field]
            is_array = MEASUREMENT_FIELDS[s.field][1] is not None
            element = mm.element(s, mux)
            if s.bitmask:
                slots.append((_MASK, s.signal, s.field, None,
                              (element, min(s.bits, max(0, n - element))), s))
            elif element >= n:     # padding slot beyond the pack
                slots.append((_CONST, s.signal, s.field, None,
                              0 if s.is_bool else _raw_of_value(s, _NAN), s))
            elif s.is_bool:
                slots.append((_BOOL, s.signal, s.field, element if is_array else None,
                              (s.gain + s.bias) >= 0.5, s))
            else:
                slots.append((_VALUE, s.signal, s.field, element if is_array else None,
                              s.error_mask & -s.error_mask, s))
        self.fixed = fixed
        self.slots = slots
        self.length = mm.dbc_message.length
        self.message = (mm.frame_id, mm.is_extended)
        self.layout = _bit_layout(mm, fixed)

    def raw(self, values: dict[str, Any], counter: int) -> dict[str, Any]:
        """Raw signal values of the frame from ``values`` (array fields as lists)."""
        raw = self.fixed.copy()
        mm = self.mm
        if mm.counter_signal is not None:
            raw[mm.counter_signal] = counter
        for kind, signal, name, element, arg, s in self.slots:
            if kind == _CONST:
                raw[signal] = arg
                continue
            value = values[name]
            if kind == _MASK:
                start, count = arg
                bits = 0
                for k in range(count):
                    if value[start + k]:
                        bits |= 1 << k
                raw[signal] = bits
                continue
            v = value if element is None else value[element]
            if kind == _BOOL:
                raw[signal] = 1 if bool(v) == arg else 0
                continue
            v = float(v)
            raw[signal] = _raw_of_value(s, v)
            if not math.isfinite(v):
                if s.flag is not None:
                    raw[s.flag] = s.flag_invalid
                if s.error is not None:
                    raw[s.error] |= arg      # the lowest bit of its mask
        return raw

    def data(self, raw: dict[str, Any]) -> bytes:
        """The payload of ``raw`` (as cantools encodes it: unscaled, no padding)."""
        if self.layout is None:
            return bytes(self.mm.dbc_message.encode(raw, scaling=False, padding=False,
                                                    strict=False))
        little, big = self.layout
        value = 0
        for name, shift, mask in little:
            value |= (raw[name] & mask) << shift
        if not big:
            return value.to_bytes(self.length, 'little')
        packed = int.from_bytes(value.to_bytes(self.length, 'little'), 'big')
        for name, shift, mask in big:
            packed |= (raw[name] & mask) << shift
        return packed.to_bytes(self.length, 'big')

    def frame(self, values: dict[str, Any], counter: int) -> can.Message:
        """The frame of ``values`` with rolling counter ``counter``."""
        data = self.data(self.raw(values, counter))
        frame_id, extended = self.message
        return can.Message(arbitration_id=frame_id, is_extended_id=extended, data=data,
                           dlc=len(data), is_rx=False)


_Layout = tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]


def _bit_layout(mm: MessageMap, fixed: dict[str, Any]) -> _Layout | None:
    """(little-endian, big-endian) (signal, shift, mask) of the signals a frame with the
    multiplexer values of ``fixed`` carries: shifts into the payload read as a little-endian
    and a big-endian integer. None where cantools must encode (a float signal, a multiplexer
    value not fixed, a layout that does not reproduce cantools' bytes).
    """
    message = mm.dbc_message
    by_name = {sig.name: sig for sig in message.signals}
    length = message.length

    def carried(sig: Any) -> bool:
        mux = sig.multiplexer_signal
        if mux is None:
            return True
        if mux not in fixed or mux not in by_name:
            raise KeyError(mux)
        return fixed[mux] in (sig.multiplexer_ids or ()) and carried(by_name[mux])

    little: list[tuple[str, int, int]] = []
    big: list[tuple[str, int, int]] = []
    try:
        signals = [sig for sig in message.signals if carried(sig)]
    except KeyError:
        return None
    for sig in signals:
        if sig.is_float:
            return None
        mask = (1 << sig.length) - 1
        if sig.byte_order == 'little_endian':
            little.append((sig.name, sig.start, mask))
        else:
            msb = 8 * (sig.start // 8) + (7 - sig.start % 8)   # from the payload's first bit
            big.append((sig.name, 8 * length - msb - sig.length, mask))
    layout = (little, big)
    # check against cantools on random raw values of every carried signal
    rng = np.random.default_rng(0)
    for _ in range(8):
        raw = dict(fixed)
        for sig in signals:
            if sig.name in fixed and (sig.name == mm.mux_signal or sig.is_multiplexer):
                continue
            lo = -(1 << (sig.length - 1)) if sig.is_signed else 0
            raw[sig.name] = int(rng.integers(lo, lo + (1 << sig.length)))
        try:
            want = bytes(message.encode(raw, scaling=False, padding=False, strict=False))
        except Exception:  # noqa: BLE001  cantools refuses this layout: let it encode
            return None
        value = 0
        for name, shift, mask in little:
            value |= (raw[name] & mask) << shift
        packed = int.from_bytes(value.to_bytes(length, 'little'), 'big')
        for name, shift, mask in big:
            packed |= (raw[name] & mask) << shift
        if packed.to_bytes(length, 'big') != want:
            return None
    return layout


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
        mapped = protocol.mapping.mapped_fields()
        self._lengths = {name: protocol.field_length(name) for name in mapped}
        self._array_fields = frozenset(name for name in mapped
                                       if MEASUREMENT_FIELDS[name][1] is not None)
        self._fields_of: dict[tuple[str, ...], frozenset[str]] = {}
        self._plans: dict[str, list[_FramePlan]] = {}

    def _checked(self, state: Any, names: Collection[str]) -> dict[str, Any]:
        """Values of the measurement fields ``names`` in ``state`` (object or dict), checked."""
        fields: dict[str, Any] = {}
        lengths = self._lengths
        for name in names:
            value = _field(state, name)
            if name in self._array_fields:
                value = np.asarray(value)
                n = lengths[name]
                if value.shape != (n,):
                    raise EncodeError(f'{name}: expected {n} values, got shape {value.shape}')
            fields[name] = value
        return fields

    def state_fields(self, state: Any) -> dict[str, Any]:
        """Values of every mapped measurement field in ``state`` (object or dict), checked."""
        return self._checked(state, self.protocol.mapping.mapped_fields())

    def fields_of(self, messages: Collection[MessageMap]) -> frozenset[str]:
        """The measurement fields the frames of ``messages`` carry."""
        key = tuple(mm.name for mm in messages)
        names = self._fields_of.get(key)
        if names is None:
            names = self._fields_of[key] = frozenset(s.field for mm in messages
                                                     for s in mm.signals)
        return names

    def encode_all(self, state: Any,
                   keys: Collection[int] | None = None) -> list[can.Message]:
        """Every measurement frame (all multiplexer blocks) of ``state`` now; with ``keys``
        (frame keys, as CanProtocol.frame_keys gives) only those messages, so the rolling
        counters of the others do not advance for frames never sent.
        """
        fields = self.state_fields(state)
        messages = [mm for mm in self.protocol.mapping.measurement
                    if keys is None or frame_key(mm.frame_id, mm.is_extended) in keys]
        return self._encode(messages, fields)

    def due_messages(self, now_s: float) -> list[MessageMap]:
        """The measurement messages whose period elapsed at ``now_s`` (s); their schedule
        moves on (encode them with :meth:`encode_messages`).
        """
        next_due = self._next_due
        due = [mm for mm in self.protocol.mapping.measurement if now_s >= next_due[mm.name]]
        for mm in due:
            period_s = cast(float, mm.period_s)   # a measurement message has one (can_mapping)
            after = next_due[mm.name] + period_s
            # fell behind (first call, paused process): restart the schedule from now
            next_due[mm.name] = after if after > now_s else now_s + period_s
        return due

    def encode_messages(self, messages: Collection[MessageMap],
                        state: Any) -> list[can.Message]:
        """The frames of ``messages`` (all their blocks) from ``state`` (object or dict with
        at least the fields they carry: :meth:`fields_of`; NaN -> invalid marker).
        """
        if not messages:
            return []
        return self._encode(messages, self._checked(state, self.fields_of(messages)))

    def due_frames(self, now_s: float, state: Any) -> list[can.Message]:
        """Frames whose period elapsed at ``now_s`` (s), from ``state`` (NaN -> invalid marker)."""
        return self.encode_messages(self.due_messages(now_s), state)

    def due_frames_measured(self, now_s: float,
                            measure: Callable[[frozenset[str]], Any]) -> list[can.Message]:
        """due_frames with the state ``measure(fields)`` gives for the fields the due frames
        carry (PackModel.measured): called at every call, with no fields when nothing is due,
        so a measurement's noise draws do not depend on the frames due.
        """
        due = self.due_messages(now_s)
        state = measure(self.fields_of(due))
        return self.encode_messages(due, state)

    def _encode(self, messages: Collection[MessageMap],
                fields: dict[str, Any]) -> list[can.Message]:
        """Frames of ``messages`` from checked ``fields``; counts them in frames_sent."""
        # array fields as lists: element access and float() on Python floats are cheap
        values = {name: value.tolist() if name in self._array_fields else value
                  for name, value in fields.items()}
        plain = all(isinstance(value, _SCALARS) for name, value in values.items()
                    if name not in self._array_fields)
        frames: list[can.Message] = []
        counters = self._counter
        for mm in messages:
            if not plain:      # a scalar field given as a sequence: the general encoder
                frames += self._frames(mm, fields)
                continue
            plans = self._plans.get(mm.name)
            if plans is None:
                plans = self._plans[mm.name] = [_FramePlan(mm, mux, other, self._lengths)
                                                for mux, other in _branch_frames(mm)]
            for plan in plans:
                counter = counters.get(mm.name, 0)
                if mm.counter_signal is not None:
                    counters[mm.name] = (counter + 1) % mm.counter_modulo
                frames.append(plan.frame(values, counter))
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
