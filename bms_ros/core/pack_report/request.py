"""Our state request to the pack: :func:`request_decision` (accept or refuse request_state),
:class:`RequestEncoder` (the state-request frame) and :class:`RequestHold` (the request to
forward now; STANDBY once too old).
"""
from __future__ import annotations

import can

from ..pack_state_machine import STATE_NAMES, STATE_STANDBY
from .decoder import UNKNOWN_NAME, PackReport
from .mapping import REQUESTABLE, StateRequestMap


class RequestEncoder:
    """Our requested state -> the pack's state-request frame (rolling counter +1 per frame)."""

    def __init__(self, request_map: StateRequestMap) -> None:
        self.map = request_map
        self._counter = 0

    def value_of(self, state: int) -> int | None:
        """Raw value of the state-request signal for our ``state``; None if not requestable."""
        return self.map.values.get(int(state))

    def frame(self, state: int) -> can.Message:
        """One state-request frame for ``state`` (STANDBY / DRIVE / CHARGE)."""
        m = self.map
        raw: dict[str, int] = dict.fromkeys(m.other_signals, 0)
        value = self.value_of(state)
        if value is None:
            raise ValueError(f'state {state} cannot be requested')
        raw[m.signal] = value
        if m.counter_signal is not None:
            raw[m.counter_signal] = self._counter
            self._counter = (self._counter + 1) % m.counter_modulo
        data = m.dbc_message.encode(raw, scaling=False, padding=False, strict=False)
        return can.Message(arbitration_id=m.frame_id, is_extended_id=m.is_extended,
                           data=data, dlc=len(data), is_rx=False)


class RequestHold:
    """The request to forward now: the last accepted one, or STANDBY once it is older than
    ``hold_s`` (0: it holds until the next), on the caller's monotonic clock (s).
    """

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.state: int = STATE_STANDBY
        self._since: float | None = None

    def set(self, state: int, now_s: float) -> None:
        """Accept ``state`` as the request at ``now_s`` (s)."""
        self.state = int(state)
        self._since = now_s

    def current(self, now_s: float) -> int:
        """The request to forward at ``now_s`` (s): the last one, or STANDBY once too old."""
        if self.hold_s > 0.0 and self._since is not None and now_s - self._since > self.hold_s:
            self.state = STATE_STANDBY
            self._since = None
        return self.state


def request_decision(state: int, report: PackReport,
                     encoder: RequestEncoder) -> tuple[bool, str]:
    """(accepted, reason) of a request_state for ``state``: STANDBY, DRIVE or CHARGE only;
    DRIVE and CHARGE are refused while the report is unknown (stale or never received).
    """
    name = STATE_NAMES.get(state, str(state))
    if state not in REQUESTABLE.values():
        return False, f'{name} cannot be requested (STANDBY, DRIVE or CHARGE)'
    if report.state_name == UNKNOWN_NAME and name != 'STANDBY':
        return False, f'{name} refused: {report.reason}'
    return True, (f'{name} forwarded as {encoder.map.signal} = {encoder.value_of(state)}; '
                  'the pack decides')
