"""Decoding of measurement frames (the driver side): :class:`MeasurementAssembler`.

Frames are decoded through the DBC and its mapping (bms_ros.core.can_mapping) into per-element
values with receive stamps; :meth:`MeasurementAssembler.snapshot` gives a complete,
staleness-checked :class:`AssembledMeasurement`. The maximum raw value of a measurement signal
is the "invalid" marker (open wire, sensor dropout): it decodes to NaN + valid=false. Bad input
is counted by reason (``REJECT_REASONS``, ``VALUE_REASONS``, ``COUNTER_REASONS``), never raised.

Multiplexed frames: cantools returns only the signals of the frame's branch (nested branches
included); a mapped signal absent from the frame is skipped, and a frame carrying no mapped
signal is counted as ``unmapped_branch`` (not a decode error).

Rolling counters (a mapping's ``counter:``; one sequence per message, shared by all its
multiplexer branches, +1 per frame as :class:`PackEncoder` sends them): a frame whose counter
is not the successor of the previous one has its values dropped (not stamped), counted as
``counter_repeat`` (same value again: a frozen sender) or ``counter_jump``. A jump forward by
less than half the counter range (frames lost) resynchronises at once, so a lost frame costs
the one frame after it. A repeat or a step back (an old frame replayed) does not: the sequence
is taken up again only after ``counter_errors_stale`` frames that follow each other (a sender
that restarted). ``counter_errors_stale`` bad frames in a row mark the message stale: every
element it maps is invalidated at once (its groups read stale) and its values stay withheld
until ``counter_errors_stale`` good frames in a row; the frame completing that run is used.
A multiplexed block whose counter changed between its last good frames but now equals the one of
its previous frame is a replayed block (``counter_repeat``) even when it follows the frame
before: a frozen sender replaying a cycle longer than half the counter range (the 24 cell
blocks of a 96s pack) is caught too; a cycle of a multiple of the counter range (16 blocks),
where every block's counter is the same each cycle anyway, cannot be.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import can
import numpy as np

from .can_devices import devices_of, frame_devices_of
from .can_mapping import GROUPS, MEASUREMENT_FIELDS, MessageMap, _branch_values
from .measurement import Measurement
from .pack_report import report_keys

if TYPE_CHECKING:
    from .can_codec import CanProtocol

# Frame-level rejections (the whole frame is dropped; counted in frames_rejected)
REJECT_REASONS = ('unknown_id', 'wrong_dlc', 'error_frame', 'remote_frame', 'decode_error')
# Value-level problems (the frame is used, the value is invalid or ignored; unmapped_branch:
# the frame carries no mapped signal, e.g. a multiplexer branch the mapping does not use;
# invalid_flag / error_bits: the value's invalid_flag or error_bits signal says invalid)
VALUE_REASONS = ('invalid_marker', 'out_of_range', 'unmapped_index', 'unmapped_branch',
                 'invalid_flag', 'error_bits')
# Rolling-counter errors: the frame is decoded but its values are dropped
COUNTER_REASONS = ('counter_repeat', 'counter_jump')
COUNTER_ERRORS_STALE = 3     # default of can.counter_errors_stale

_EXT = 1 << 29            # key bit separating 29-bit from 11-bit ids
_FLOAT, _BOOL, _BITMASK = 0, 1, 2
_NAN = float('nan')


def _entries_by_branch(mm: MessageMap, entries: tuple[_Entry, ...]
                       ) -> dict[int, tuple[_Entry, ...]] | None:
    """{value of the named multiplexer: the entries that branch can carry} for a message of
    named signals per branch (no stride), so a frame walks its own few signals, not all of the
    message's; None for other messages (every entry may be in every frame).
    """
    if mm.mux_signal is None or mm.mux_stride is not None:
        return None
    signals = {s.name: s for s in mm.dbc_message.signals}
    branches = [_branch_values(signals[s.signal], mm.mux_signal, signals) for s in mm.signals]
    values = {v for b in branches if b is not None for v in b}
    if not values:
        return None
    return {v: tuple(e for e, b in zip(entries, branches) if b is None or v in b)
            for v in values}


def frame_key(arbitration_id: int, is_extended: bool) -> int:
    """Lookup key of a frame id: 11-bit and 29-bit ids with the same number differ."""
    return arbitration_id | _EXT if is_extended else arbitration_id


@dataclass
class AssembledMeasurement(Measurement):
    """A :class:`Measurement` from the assembler (stamps: receive times, s, on the caller's
    clock) with the driver's diagnostics, which are not in PackMeasurement.
    """

    balancing_stale: bool = True
    stale_groups: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    counter_stale: tuple[str, ...] = ()      # messages marked stale by their rolling counter
    # {device: {reason: count}}
    device_counts: dict[str, dict[str, int]] = field(default_factory=dict)


class _Plan:
    """Everything the hot path needs about one received message, resolved once."""

    __slots__ = ('name', 'decode', 'length', 'mux', 'stride', 'first', 'entries', 'counter',
                 'counter_modulo', 'counter_last', 'counter_expected', 'candidate_next',
                 'candidate_run', 'bad_run', 'good_run', 'counter_stale', 'elements',
                 'branch_last', 'branch_muxes', 'counts', 'device', 'by_branch')
    name: str
    decode: Callable[..., Any]
    length: int
    mux: str | None
    stride: int | None
    first: int
    entries: tuple[_Entry, ...]
    counter: str | None
    counter_modulo: int
    counter_last: int | None
    counter_expected: int | None
    candidate_next: int | None
    candidate_run: int
    bad_run: int
    good_run: int
    counter_stale: bool
    elements: tuple[tuple[str, int], ...]
    branch_last: dict[Any, tuple[int, bool]]
    branch_muxes: tuple[str, ...] | None
    counts: dict[str, int]
    device: str
    by_branch: dict[Any, tuple[_Entry, ...]] | None


# one mapped signal as the hot path reads it: (signal, values, stamps, index, bits, gain, bias,
# invalid raw, raw min, raw max, field length, kind, validity check or None)
_Entry = tuple[Any, ...]


class MeasurementAssembler:
    """Decodes measurement frames into per-element values with receive stamps (thread-safe).

    ``counter_errors_stale``: bad rolling-counter frames in a row that mark a message stale,
    and good ones in a row that clear it (module docstring).
    """

    def __init__(self, protocol: CanProtocol,
                 counter_errors_stale: int = COUNTER_ERRORS_STALE) -> None:
        if int(counter_errors_stale) < 1:
            raise ValueError(f'counter_errors_stale must be >= 1, got {counter_errors_stale}')
        self.counter_errors_stale = int(counter_errors_stale)
        self.protocol = protocol
        mapping = protocol.mapping
        self._values: dict[str, list[float]] = {}
        self._stamps: dict[str, list[float]] = {}
        for name in MEASUREMENT_FIELDS:
            n = mapping.field_length(name)
            self._values[name] = [_NAN] * n
            self._stamps[name] = [-math.inf] * n
        self._mapped = mapping.mapped_fields()
        self._plans: dict[int, _Plan] = {}
        reasons = REJECT_REASONS + VALUE_REASONS + COUNTER_REASONS
        # per device: counts of its DBC's frames that no plan takes (unknown_id, ignored)
        frame_devices = frame_devices_of(mapping)
        self._device_counts = {d.name: dict.fromkeys(reasons + ('ignored',), 0)
                               for d in devices_of(mapping)}
        ignored = {d.name for d in devices_of(mapping) if d.mapping_path is None}
        self._known = {frame_key(*k): (self._device_counts[name], name in ignored)
                       for k, name in frame_devices.items()}
        self._bus_counts = dict.fromkeys(reasons, 0)     # frames of no device
        for mm in mapping.measurement:
            plan = _Plan()
            plan.name = mm.name
            plan.device = mm.device or frame_devices.get((mm.frame_id, mm.is_extended), '')
            plan.counts = dict.fromkeys(reasons, 0)
            # decode_simple skips the container check of decode(); both exist in cantools 45
            dbc_message = mm.dbc_message
            plan.decode = getattr(dbc_message, 'decode_simple', None) or dbc_message.decode
            plan.length = mm.length
            plan.mux = mm.mux_signal
            plan.stride = mm.mux_stride
            plan.first = mm.mux_first
            plan.counter = mm.counter_signal
            plan.counter_modulo = mm.counter_modulo
            plan.counter_last = plan.counter_expected = plan.candidate_next = None
            plan.candidate_run = plan.bad_run = plan.good_run = 0
            plan.counter_stale = False
            # multiplexer value -> (its last counter, whether its counter changed between its
            # last good frames: false when the cycle is a multiple of the counter range)
            plan.branch_last = {}
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
                kind = _BITMASK if s.bitmask else (_BOOL if s.is_bool else _FLOAT)
                check = None if s.flag is None and s.error is None else (
                    s.flag, s.flag_invalid, s.error, s.error_mask)
                entries.append((s.signal, self._values[s.field], self._stamps[s.field], s.index,
                                s.bits, s.gain, s.bias, s.invalid_raw, s.raw_min, s.raw_max,
                                mapping.field_length(s.field), kind, check))
            plan.entries = tuple(entries)
            plan.by_branch = _entries_by_branch(mm, plan.entries)
            self._plans[frame_key(mm.frame_id, mm.is_extended)] = plan
        self._command_keys = {frame_key(m.frame_id, m.is_extended) for m in mapping.commands}
        self._command_keys |= report_keys(mapping)   # the pack report's node decodes those
        self.frames_received = 0
        self.frames_rejected = 0
        self.frames_ignored = 0     # our own command ids (another controller on the bus)
        self._lock = threading.Lock()

    def feed(self, msg: can.Message, now_s: float) -> bool:
        """Decode one can.Message received at ``now_s`` (s); False if rejected. Never raises."""
        with self._lock:
            try:
                return self._feed(msg, now_s)
            except Exception:  # noqa: BLE001  malformed objects must not stop the reader
                self._bus_counts['decode_error'] += 1
                self.frames_rejected += 1
                return False

    def feed_many(self, msgs: Iterable[can.Message], now_s: float) -> int:
        """Decode a batch of frames received at ``now_s``; number accepted."""
        accepted = 0
        with self._lock:
            for msg in msgs:
                try:
                    accepted += self._feed(msg, now_s)
                except Exception:  # noqa: BLE001
                    self._bus_counts['decode_error'] += 1
                    self.frames_rejected += 1
        return accepted

    @property
    def counts(self) -> dict[str, int]:
        """Frames and values counted per reason over the whole bus (a fresh dict)."""
        total = dict(self._bus_counts)
        for c in [p.counts for p in self._plans.values()] + list(self._device_counts.values()):
            for k in total:
                total[k] += c[k]
        return total

    @property
    def device_counts(self) -> dict[str, dict[str, int]]:
        """{device: {reason: count}}; 'ignored': frames of a device without a mapping."""
        out = {name: dict(c) for name, c in self._device_counts.items()}
        for p in self._plans.values():
            target = out.setdefault(p.device, dict.fromkeys(p.counts, 0))
            for k, v in p.counts.items():
                target[k] = target.get(k, 0) + v
        return out

    def _reject(self, reason: str, counts: dict[str, int] | None = None) -> bool:
        (self._bus_counts if counts is None else counts)[reason] += 1
        self.frames_rejected += 1
        return False

    def _feed(self, msg: can.Message, now_s: float) -> bool:
        self.frames_received += 1
        if msg.is_error_frame:
            return self._reject('error_frame')
        key = msg.arbitration_id
        if msg.is_extended_id:
            key |= _EXT
        plan = self._plans.get(key)
        if plan is None:
            if key in self._command_keys:
                self.frames_ignored += 1
                return False
            known = self._known.get(key)     # in a device's DBC but not mapped
            if known is not None and known[1]:
                known[0]['ignored'] += 1
                self.frames_ignored += 1
                return False
            return self._reject('unknown_id', None if known is None else known[0])
        counts = plan.counts
        if msg.is_remote_frame:
            return self._reject('remote_frame', counts)
        data = msg.data
        if len(data) != plan.length or msg.dlc != plan.length:
            return self._reject('wrong_dlc', counts)
        try:
            raw = plan.decode(bytes(data), False, False, False, False)
        except Exception:  # noqa: BLE001  cantools DecodeError, bitstruct errors
            return self._reject('decode_error', counts)
        if plan.counter is not None and not self._counter_ok(plan, raw[plan.counter],
                                                             self._branch(plan, raw)):
            return True      # decoded, values withheld (counted)
        base = 0
        if plan.mux is not None and plan.stride is not None:
            mux = raw.get(plan.mux)          # None: a nested branch without this multiplexer
            if mux is not None:
                if mux < plan.first:
                    counts['unmapped_branch'] += 1
                    return True
                base = plan.stride * (mux - plan.first)
        present = False
        entries = plan.entries
        if plan.by_branch is not None:       # named signals: only those of this branch
            entries = plan.by_branch.get(raw.get(plan.mux), entries)
        for (name, values, stamps, index, bits, gain, bias, invalid, lo, hi, n,
             kind, check) in entries:
            r = raw.get(name)
            if r is None:                    # not in this frame's multiplexer branch
                continue
            present = True
            i = base + index
            if check is not None:            # invalid_flag / error_bits of the same frame
                flag, flag_invalid, error, mask = check
                reason = 'invalid_flag' if flag is not None and raw[flag] == flag_invalid \
                    else 'error_bits' if error is not None and raw[error] & mask else None
                if reason is not None:
                    if i < n:                # like the invalid marker: NaN, stamped
                        counts[reason] += 1
                        for j in range(i, min(i + (bits if kind == _BITMASK else 1), n)):
                            values[j] = _NAN
                            stamps[j] = now_s
                    continue
            if kind == _FLOAT:
                if i >= n:
                    if r != invalid:   # a real value beyond the pack: mapping/pack mismatch
                        counts['unmapped_index'] += 1
                    continue
                if r == invalid:
                    counts['invalid_marker'] += 1
                    values[i] = _NAN
                elif r < lo or r > hi:
                    counts['out_of_range'] += 1
                    values[i] = _NAN
                else:
                    values[i] = r * gain + bias
                stamps[i] = now_s
            elif kind == _BOOL:
                if i >= n:
                    if r:
                        counts['unmapped_index'] += 1
                    continue
                v = r * gain + bias
                if r == invalid:
                    counts['invalid_marker'] += 1
                    values[i] = _NAN
                elif v != 0.0 and v != 1.0:  # e.g. a J1939 2-bit state: 2 error, 3 n/a
                    counts['out_of_range'] += 1
                    values[i] = _NAN
                else:
                    values[i] = v
                stamps[i] = now_s
            else:
                for k in range(bits):
                    j = i + k
                    if j >= n:
                        if r >> k:
                            counts['unmapped_index'] += 1
                        break
                    values[j] = float((r >> k) & 1)
                    stamps[j] = now_s
        if not present:
            counts['unmapped_branch'] += 1
        return True

    @staticmethod
    def _branch(plan: _Plan, raw: dict[str, Any]) -> Any:
        """The frame's block (multiplexer value, or values when nested); None: no mux."""
        if plan.mux is None:
            return None
        if plan.branch_muxes is None:
            return raw.get(plan.mux)
        return tuple(raw.get(m) for m in plan.branch_muxes)

    def _counter_ok(self, plan: _Plan, value: int, branch: Any) -> bool:
        """Rolling-counter rule (module docstring); False: drop this frame's values."""
        modulo = plan.counter_modulo
        limit = self.counter_errors_stale
        expected = plan.counter_expected
        in_sequence = expected is None or value == expected
        replayed = False
        seen = None
        if branch is not None:
            # a block whose counter normally changes from cycle to cycle comes with the same
            # counter as its last frame: replayed (a frozen cycle of any length)
            seen = plan.branch_last.get(branch)
            replayed = seen is not None and seen[1] and seen[0] == value
        if in_sequence and not replayed:                   # first frame, or in sequence
            plan.counter_expected = (value + 1) % modulo
            plan.counter_last = value
            plan.bad_run = plan.candidate_run = 0
            plan.candidate_next = None
            if branch is not None:
                plan.branch_last[branch] = (value, seen is not None and seen[0] != value)
            if not plan.counter_stale:
                return True
            plan.good_run += 1
            if plan.good_run < limit:
                return False
            plan.counter_stale = False
            return True
        if branch is not None:
            plan.branch_last[branch] = (value, seen is not None and seen[1])
        if value == plan.counter_last or replayed:
            plan.counts['counter_repeat'] += 1
        else:
            plan.counts['counter_jump'] += 1
        if in_sequence:                                    # a replayed block in sequence
            plan.counter_expected = (value + 1) % modulo
        elif value != plan.counter_last and expected is not None \
                and (value - expected) % modulo < modulo // 2:
            plan.counter_expected = (value + 1) % modulo     # frames lost: resynchronise
            plan.candidate_run = 0
        else:                                              # repeated or replayed frame
            plan.candidate_run = plan.candidate_run + 1 if value == plan.candidate_next else 1
            plan.candidate_next = (value + 1) % modulo
            if plan.candidate_run >= limit:                # a new sequence: take it up
                plan.counter_expected = plan.candidate_next
                plan.candidate_run = 0
        plan.counter_last = value
        plan.good_run = 0
        plan.bad_run += 1
        if plan.bad_run >= limit and not plan.counter_stale:
            plan.counter_stale = True
            stamps = self._stamps
            for name, e in plan.elements:
                stamps[name][e] = -math.inf
        return False

    def counter_stale_messages(self) -> tuple[str, ...]:
        """Names of the messages their rolling counter marks stale now."""
        with self._lock:
            return tuple(p.name for p in self._plans.values() if p.counter_stale)

    def latest(self, field: str, index: int = 0) -> float:
        """The last decoded value of one element of a field (NaN if none or invalid)."""
        with self._lock:
            return float(self._values[field][index])

    def extremes(self, field: str) -> tuple[float, float]:
        """(lowest, highest) last decoded value of an array field (NaN, NaN if none valid)."""
        with self._lock:
            values = np.asarray(self._values[field], dtype=float)
        if not np.isfinite(values).any():
            return math.nan, math.nan
        return float(np.nanmin(values)), float(np.nanmax(values))

    def snapshot(self, now_s: float, stale_timeout_s: float) -> AssembledMeasurement:
        """The measurement at ``now_s`` (s): elements older than ``stale_timeout_s`` are invalid."""
        with self._lock:
            values = {k: np.array(v, dtype=float) for k, v in self._values.items()}
            stamps = {k: np.array(v, dtype=float) for k, v in self._stamps.items()}
            counts = self.counts
            device_counts = self.device_counts
            received = self.frames_received
            rejected = self.frames_rejected
            counter_stale = tuple(p.name for p in self._plans.values() if p.counter_stale)
        oldest = now_s - stale_timeout_s
        out: dict[str, Any] = {}
        fresh: dict[str, Any] = {}
        for name, (kind, _) in MEASUREMENT_FIELDS.items():
            ok = stamps[name] >= oldest
            fresh[name] = ok
            v = values[name]
            valid = ok & np.isfinite(v)
            if kind == 'bool':
                out[name] = valid & (v > 0.5)
            else:
                out[name] = np.where(valid, v, np.nan)
            out[name + '#valid'] = valid
        stale: dict[str, bool] = {}
        group_stamp: dict[str, float] = {}
        for group, names in GROUPS.items():
            mapped = [n for n in names if n in self._mapped]
            if not mapped:
                stale[group] = True
                group_stamp[group] = math.nan
                continue
            # a flag that is not 0 or 1 is unknown, and unknown feedback is never "open"
            stale[group] = not all(bool(fresh[n].all()) and (MEASUREMENT_FIELDS[n][0] != 'bool'
                                                             or bool(out[n + '#valid'].all()))
                                   for n in mapped)
            all_stamps = np.concatenate([stamps[n] for n in mapped])
            first = float(all_stamps.min())
            group_stamp[group] = first if math.isfinite(first) else math.nan
        return AssembledMeasurement(
            cell_voltages_v=out['cell_voltages_v'],
            cell_voltage_valid=out['cell_voltages_v#valid'],
            temperatures_degc=out['temperatures_degc'],
            temperature_valid=out['temperatures_degc#valid'],
            pack_current_a=float(out['pack_current_a'][0]),
            pack_voltage_v=float(out['pack_voltage_v'][0]),
            link_voltage_v=float(out['link_voltage_v'][0]),
            negative_contactor_closed=bool(out['negative_contactor_closed'][0]),
            positive_contactor_closed=bool(out['positive_contactor_closed'][0]),
            precharge_relay_closed=bool(out['precharge_relay_closed'][0]),
            cell_balancing=out['cell_balancing'],
            cell_voltages_stamp=group_stamp['cell_voltages'],
            temperatures_stamp=group_stamp['temperatures'],
            current_stamp=group_stamp['current'],
            cell_voltages_stale=stale['cell_voltages'],
            temperatures_stale=stale['temperatures'],
            current_stale=stale['current'],
            contactors_stale=stale['contactors'],
            frames_received=received,
            frames_rejected=rejected,
            balancing_stale=stale['balancing'],
            stale_groups=tuple(g for g in GROUPS if stale[g] and any(
                n in self._mapped for n in GROUPS[g])),
            counts=counts, counter_stale=counter_stale, device_counts=device_counts,
            charger_present=bool(out['charger_present'][0]),
            charger_present_valid=bool(out['charger_present#valid'][0]))
