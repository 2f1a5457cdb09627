"""Contactor feedback supervision: closed, open or unknown; welded / stuck-open faults.

A mixin of PackStateMachine (machine.py), sharing its command and measurement. Unknown
feedback (``contactors_stale``: a stale bool decodes as False) is never read as open.
"""
from __future__ import annotations

import logging

from ..protection.checks import Event
from ..protection.limits import LEVEL_TRIP
from .attributes import Feedback, MachineAttributes
from .states import (
    COMMAND_ORDER,
    CONTACTOR_STUCK_OPEN,
    CONTACTOR_WELDED,
    FAULT_INDEX,
    FEEDBACK_CLOSED,
    FEEDBACK_OPEN,
    FEEDBACK_UNKNOWN,
)

log = logging.getLogger(__name__)

__all__ = ['ContactorFeedback', 'FEEDBACK_CLOSED', 'FEEDBACK_OPEN', 'FEEDBACK_UNKNOWN']


class ContactorFeedback(MachineAttributes):
    """Feedback supervision of PackStateMachine: faults when feedback disagrees too long."""

    def _supervise_feedback(self, now_s: float) -> None:
        """Raise a contactor fault when feedback disagrees with the command for too long."""
        if self._measurement is None or self._measurement.contactors_stale:
            # unknown: faults and timers are kept; the unknown timeout (step) and the guards
            # handle it, the measurement timeout a silent driver
            return
        timeout = self.config.contactor_feedback_timeout_s
        for index, (commanded, feedback) in enumerate(zip(self.command.as_tuple(),
                                                          self._feedback())):
            seen = feedback == FEEDBACK_CLOSED
            if commanded == seen:
                self._mismatch_since_s[index] = None
                continue
            since = self._mismatch_since_s[index]
            if since is None:
                since = self._mismatch_since_s[index] = now_s
            lasted = now_s - since
            if lasted > timeout and index not in self._faults:
                limit_id = CONTACTOR_WELDED if seen else CONTACTOR_STUCK_OPEN
                what = ('welded: feedback closed' if seen else 'stuck open: feedback open')
                message = (f'{COMMAND_ORDER[index]} contactor {what} {lasted:.2f} s after the '
                           f'{"close" if commanded else "open"} command (> {timeout:.2f} s)')
                event = Event(limit_id, LEVEL_TRIP, FAULT_INDEX[COMMAND_ORDER[index]], lasted,
                              timeout, 's', True, True, message, now_s)
                self._faults[index] = event
                self._events.append(event)
                log.error('contactor fault: %s', message)
                self._error_open(f'contactor fault: {message}')

    def _clear_fault(self, index: int, now_s: float, why: str) -> None:
        raised = self._faults.pop(index)
        self._events.append(Event(raised.limit_id, LEVEL_TRIP, raised.index, 0.0,
                                  raised.threshold, 's', False, False,
                                  f'{COMMAND_ORDER[index]} contactor fault {why}', now_s))

    def _feedback(self) -> Feedback:
        """Feedback in command order (negative, precharge, positive): closed, open or unknown."""
        m = self._measurement
        if m is None or m.contactors_stale:
            return (FEEDBACK_UNKNOWN,) * 3
        return tuple(FEEDBACK_CLOSED if bool(closed) else FEEDBACK_OPEN for closed in (
            m.negative_contactor_closed, m.precharge_relay_closed, m.positive_contactor_closed))

    @property
    def feedback(self) -> Feedback:
        """Contactor feedback in command order: 'closed', 'open' or 'unknown'."""
        return self._feedback()

    def feedback_unknown_s(self, now_s: float) -> float | None:
        """How long the contactor feedback has been unknown (s); None while known or before
        the first measurement (then other guards say 'no measurement').
        """
        if self._unknown_since_s is None:
            return None
        return max(0.0, now_s - self._unknown_since_s)

    def _unknown_blocker(self, now_s: float) -> str:
        """'contactor feedback unknown (...)' while it is, else ''."""
        unknown_s = self.feedback_unknown_s(now_s)
        if unknown_s is None:
            return ''
        return f'contactor feedback unknown (stale for {unknown_s:.2f} s)'
