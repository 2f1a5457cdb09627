"""Decoding of measurement frames (the driver side): :class:`MeasurementAssembler`.

Frames are decoded through the DBC and its mapping (bms_ros.core.can_mapping) into per-element
values with receive stamps; :meth:`MeasurementAssembler.snapshot` gives a complete,
staleness-checked :class:`AssembledMeasurement`. The maximum raw value of a measurement signal
is the "invalid" marker (open wire, sensor dropout): it decodes to NaN + valid=false. Bad input
is counted by reason (``REJECT_REASONS``, ``VALUE_REASONS``, ``COUNTER_REASONS``), never raised.

Multiplexed frames: cantools returns only the signals of the frame's branch (nested branches
included); a mapped signal absent from the frame is skipped, and a frame carrying no mapped
signal is counted as ``unmapped_branch`` (not a decode error).

Rolling counters (a mapping's ``counter:``) follow core/can_counter.py's rule: a frame it
refuses has its values dropped (counted as ``counter_repeat`` or ``counter_jump``), and a message
it marks stale has every element it maps invalidated at once. Staleness of elements and groups
at a snapshot: core/can_staleness.py.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import can
import numpy as np

from .can_counter import COUNTER_ERRORS_STALE, COUNTER_REASONS
from .can_decode_plan import BITMASK, BOOL, EXT, FLOAT, Plan, frame_key, plan_of
from .can_devices import devices_of, frame_devices_of
from .can_mapping_model import MEASUREMENT_FIELDS
from .can_staleness import AssembledMeasurement, assemble

if TYPE_CHECKING:
    from .can_codec import CanProtocol

# Frame-level rejections (the whole frame is dropped; counted in frames_rejected)
REJECT_REASONS = ('unknown_id', 'wrong_dlc', 'error_frame', 'remote_frame', 'decode_error')
# Value-level problems (the frame is used, the value is invalid or ignored; unmapped_branch:
# the frame carries no mapped signal, e.g. a multiplexer branch the mapping does not use;
# invalid_flag / error_bits: the value's invalid_flag or error_bits signal says invalid)
VALUE_REASONS = ('invalid_marker', 'out_of_range', 'unmapped_index', 'unmapped_branch',
                 'invalid_flag', 'error_bits')
# Rolling-counter errors (core/can_counter.py): the frame is decoded but its values are dropped;
# COUNTER_REASONS and COUNTER_ERRORS_STALE are re-exported from there

_NAN = float('nan')

__all__ = ['COUNTER_ERRORS_STALE', 'COUNTER_REASONS', 'REJECT_REASONS', 'VALUE_REASONS',
           'AssembledMeasurement', 'MeasurementAssembler', 'frame_key']


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
        self._plans: dict[int, Plan] = {}
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
            key = frame_key(mm.frame_id, mm.is_extended)
            self._plans[key] = plan_of(
                mm, mapping, self._values, self._stamps, reasons,
                mm.device or frame_devices.get((mm.frame_id, mm.is_extended), ''),
                self.counter_errors_stale)
        self._command_keys = {frame_key(m.frame_id, m.is_extended) for m in mapping.commands}
        # the pack report's node decodes those (a method of the mapping: importing
        # core.pack_report here would load estimation and protection into the simulator)
        self._command_keys |= mapping.pack_report_keys()
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
            key |= EXT
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
        rule = plan.counter_rule
        if rule is not None:
            was_stale = rule.stale
            if not rule.accept(raw[plan.counter], self._branch(plan, raw)):
                if rule.stale and not was_stale:     # invalidate what the message maps
                    stamps = self._stamps
                    for name, e in plan.elements:
                        stamps[name][e] = -math.inf
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
                        for j in range(i, min(i + (bits if kind == BITMASK else 1), n)):
                            values[j] = _NAN
                            stamps[j] = now_s
                    continue
            if kind == FLOAT:
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
            elif kind == BOOL:
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
    def _branch(plan: Plan, raw: dict[str, Any]) -> Any:
        """The frame's block (multiplexer value, or values when nested); None: no mux."""
        if plan.mux is None:
            return None
        if plan.branch_muxes is None:
            return raw.get(plan.mux)
        return tuple(raw.get(m) for m in plan.branch_muxes)

    def counter_stale_messages(self) -> tuple[str, ...]:
        """Names of the messages their rolling counter marks stale now."""
        with self._lock:
            return self._counter_stale()

    def _counter_stale(self) -> tuple[str, ...]:
        """Names of the messages their rolling counter marks stale (under the lock)."""
        return tuple(p.name for p in self._plans.values()
                     if p.counter_rule is not None and p.counter_rule.stale)

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
            counter_stale = self._counter_stale()
        return assemble(values, stamps, self._mapped, now_s, stale_timeout_s, counts=counts,
                        device_counts=device_counts, received=received, rejected=rejected,
                        counter_stale=counter_stale)
