"""Frame faults of the simulated pack: a measurement message silent or frozen on the bus.

Applied to the frames bms_ros.core.can_codec.PackEncoder returns, so they act on exactly what
the pack would send (rolling counters included):

- ``can_silent``: the message's frames are no longer sent (a dead transmitter, a lost frame).
- ``can_frozen``: each period the message's last frames before the fault are sent again,
  byte for byte, rolling counter included (a stuck transmitter). Frozen before any frame of
  the message was sent: the first period's frames are the ones repeated.

Index: the measurement message, in the order of ``measurement:`` in the CAN mapping
(``CanProtocol.measurement_messages``). A silent message stays silent while also frozen.
Clearing resumes the encoder's fresh frames (its counter has moved on: the receiver sees one
jump, as after a real transmitter's recovery).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import can

from .can_codec import frame_key

if TYPE_CHECKING:
    from .can_codec import CanProtocol
from .sim_faults import FRAME_FAULTS, FaultError


class FrameFaults:
    """Silent and frozen measurement messages; ``apply`` filters one batch of due frames."""

    def __init__(self, protocol: CanProtocol) -> None:
        messages = protocol.measurement_messages
        self.messages = tuple(mm.name for mm in messages)
        self._index_of = {frame_key(mm.frame_id, mm.is_extended): i
                          for i, mm in enumerate(messages)}
        self.silent = [False] * len(messages)
        self.frozen = [False] * len(messages)
        # the last frames sent of each message, and the frames a frozen message repeats
        self._last: list[list[can.Message] | None] = [None] * len(messages)
        self._held: list[list[can.Message] | None] = [None] * len(messages)
        self.frames_suppressed = 0              # frames not sent (silent)
        self.frames_repeated = 0                # frames sent as frozen copies

    def _index(self, fault: str, index: Any) -> int:
        i: int | None
        try:
            i = int(index)
        except (TypeError, ValueError):
            i = None
        if i is None or isinstance(index, bool) or not 0 <= i < len(self.messages):
            names = ', '.join(f'{k} {name}' for k, name in enumerate(self.messages))
            raise FaultError(f'{fault}: message index {index!r} out of range '
                             f'0..{len(self.messages) - 1} ({names})')
        return i

    def _check(self, fault: str) -> None:
        if fault not in FRAME_FAULTS:
            raise FaultError(f'unknown frame fault {fault!r} (known: {", ".join(FRAME_FAULTS)})')

    def inject(self, fault: str, index: Any) -> str:
        """Activate ``fault`` on message ``index``; a one-line description. FaultError."""
        self._check(fault)
        i = self._index(fault, index)
        name = self.messages[i]
        if fault == 'can_silent':
            self.silent[i] = True
            return f'{name} (message {i}) silent: no longer sent'
        if not self.frozen[i]:
            self.frozen[i] = True
            self._held[i] = self._last[i]        # None: hold the next period's frames
        return f'{name} (message {i}) frozen: its last frames are repeated unchanged'

    def clear(self, fault: str, index: Any = -1) -> str:
        """Clear ``fault`` on message ``index`` (-1: on every message; fault 'all': both)."""
        if fault == 'all':
            self.clear_all()
            return 'all frame faults cleared'
        self._check(fault)
        every = isinstance(index, int) and index < 0
        targets: Sequence[int] = range(len(self.messages)) if every \
            else [self._index(fault, index)]
        for i in targets:
            if fault == 'can_silent':
                self.silent[i] = False
            else:
                self.frozen[i] = False
                self._held[i] = None
        return f'{fault} cleared' + ('' if every else f' at message {targets[0]}')

    def clear_all(self) -> None:
        """Remove every frame fault."""
        for i in range(len(self.messages)):
            self.silent[i] = self.frozen[i] = False
            self._held[i] = None

    def active(self) -> list[tuple[str, int, float]]:
        """Every active frame fault as (fault, message index, 0.0) tuples."""
        return [('can_silent', i, 0.0) for i, on in enumerate(self.silent) if on] + \
            [('can_frozen', i, 0.0) for i, on in enumerate(self.frozen) if on]

    def apply(self, frames: list[can.Message]) -> list[can.Message]:
        """The frames to send instead of ``frames`` (one call's due frames, in order)."""
        if not (any(self.silent) or any(self.frozen)):
            self._remember(frames)
            return frames
        out: list[can.Message] = []
        done: set[int] = set()
        for frame in frames:
            i = self._index_of.get(frame_key(frame.arbitration_id, frame.is_extended_id))
            if i is None:
                out.append(frame)
                continue
            if i in done:
                continue
            done.add(i)
            group = [f for f in frames if f.arbitration_id == frame.arbitration_id
                     and f.is_extended_id == frame.is_extended_id]
            if self.silent[i]:
                self.frames_suppressed += len(group)
                continue
            if self.frozen[i]:
                held = self._held[i]
                if held is None:
                    held = self._held[i] = group
                group = [_copy(f) for f in held]
                self.frames_repeated += len(group)
            else:
                self._last[i] = group
            out.extend(group)
        return out

    def _remember(self, frames: list[can.Message]) -> None:
        """Note the last frames of each message (a later freeze repeats them)."""
        batch: dict[int, list[can.Message]] = {}
        for frame in frames:
            i = self._index_of.get(frame_key(frame.arbitration_id, frame.is_extended_id))
            if i is not None:
                batch.setdefault(i, []).append(frame)
        for i, group in batch.items():
            self._last[i] = group


def _copy(frame: can.Message) -> can.Message:
    """A new can.Message with the same id and bytes (send may stamp the one it is given)."""
    return can.Message(arbitration_id=frame.arbitration_id, is_extended_id=frame.is_extended_id,
                       data=bytes(frame.data), dlc=frame.dlc, is_rx=False)


__all__ = ['FrameFaults', 'FRAME_FAULTS']
