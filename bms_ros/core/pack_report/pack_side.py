"""The pack side, for tests and log generators: :class:`ReportEncoder` (report frames from
field values) and :func:`decode_request` (the state a state-request frame asks for).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import can

from ..can_frame import decode_frame
from ..errors import DecodeError
from ..pack_state_machine import STATE_STANDBY
from .mapping import STATE_OF_NAME, StateRequestMap, frame_key

if TYPE_CHECKING:
    from ..can_mapping import CanMapping

_NAN = float('nan')


def decode_request(request_map: StateRequestMap, msg: can.Message) -> int | None:
    """Pack side: our requested state (int) of a state-request frame; None if not one or
    its value means nothing we request.
    """
    key = frame_key(msg)
    if key != request_map.key or msg.is_error_frame or msg.is_remote_frame:
        return None
    try:
        raw = decode_frame(request_map.dbc_message, msg.data)
    except DecodeError:
        return None
    value = raw.get(request_map.signal)
    return next((s for s, v in request_map.values.items() if v == value), None)


class ReportEncoder:
    """Pack side (tests, log generators): report frames from field values.

    ``values``: field -> value; ``state`` is our state name or int (the first raw value
    mapped to it is sent), flags by their limit_id (name) -> raw int.
    """

    def __init__(self, mapping: CanMapping) -> None:
        self.messages = list(mapping.pack_report or ())
        self._counter: dict[str, int] = {}

    def frames(self, values: dict[str, Any],
               flags: dict[str, int] | None = None) -> list[can.Message]:
        """Report frames for ``values`` (field -> value) and ``flags`` (limit_id -> raw int)."""
        flags = flags or {}
        frames: list[can.Message] = []
        for m in self.messages:
            raw = {s.name: 0 for s in m.dbc_message.signals}
            for s in m.signals:
                if s.kind == 'state':
                    state = values.get('state', STATE_STANDBY)
                    state = STATE_OF_NAME.get(state, state)
                    raw[s.signal] = next((r for r, ours in sorted(s.states.items())
                                          if ours == state), 0)
                elif s.kind == 'flag':
                    raw[s.signal] = int(flags.get(s.name, 0))
                elif s.kind == 'bool':
                    raw[s.signal] = int(bool(values.get(s.field, False)))
                else:
                    value = values.get(s.field, _NAN)
                    if value is None or not math.isfinite(value):
                        raw[s.signal] = s.invalid_raw if s.invalid_raw is not None else 0
                    else:
                        raw[s.signal] = max(s.raw_min, min(s.raw_max,
                                                           round((value - s.bias) / s.gain)))
            if m.counter_signal is not None:
                counter = self._counter.get(m.name, 0)
                raw[m.counter_signal] = counter
                self._counter[m.name] = (counter + 1) % m.counter_modulo
            data = m.dbc_message.encode(raw, scaling=False, padding=False, strict=False)
            frames.append(can.Message(arbitration_id=m.frame_id, is_extended_id=m.is_extended,
                                      data=data, dlc=len(data), is_rx=False))
        return frames
