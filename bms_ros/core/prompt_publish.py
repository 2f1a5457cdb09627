"""When the CAN driver publishes a measurement before its next timer tick (a prompt publish).

The driver assembles measurements on a timer (``publish_rate_hz``, 10 Hz in the profiles); a
limit crossing would then wait up to one period before protection sees it. A pack at rest sits
well inside its lowest warning levels, and a value can only reach a trip level by leaving
them first, so the policy watches those crossings rather than every frame:

- a crossing is published at once, whatever the minimum interval (urgent): the first batch in
  which |I| reaches ``prompt_current_a`` or a cell voltage leaves the ``prompt_cell_voltage_v``
  window (the lowest warning levels; the bench found the 20 ms wait at the p99 of the CAN path);
- while a value stays beyond, every frame of its group asks for a publish, at most every
  ``prompt_min_interval_s`` (the alarm and trip levels lie there: a pack above a warning level
  is watched as closely as before, without making every cell frame a publish);
- a change of the contactor feedback asks for a publish (the supervisor's sequences wait on it);
- without a cell window (``prompt_cell_voltage_v`` empty) every cell frame asks, as there is no
  crossing to watch; temperature frames wait for the timer (their limits debounce >= 1 s).

Inside the window nothing else prompts: the measurement goes out at the timer's rate, not on
every frame group (issue 18: ~23 measurements/s at rest became 10).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .can_codec import frame_key

if TYPE_CHECKING:
    from .can_codec import CanProtocol
    from .can_decode import MeasurementAssembler

PROMPT_FIELDS = frozenset(('cell_voltages_v', 'temperatures_degc', 'negative_contactor_closed',
                           'positive_contactor_closed', 'precharge_relay_closed'))
CONTACTOR_FIELDS = ('negative_contactor_closed', 'positive_contactor_closed',
                    'precharge_relay_closed')
CURRENT_FIELD = 'pack_current_a'
CELL_FIELD = 'cell_voltages_v'


class PromptPolicy:
    """Decides, per received batch, whether a prompt publish is wanted, and whether it is a
    crossing that must not wait for the minimum interval.
    """

    def __init__(self, protocol: CanProtocol, min_interval_s: float, current_a: float = 0.0,
                 cell_voltage_v: Sequence[float] = ()) -> None:
        self.enabled = min_interval_s > 0.0
        self.current_a = float(current_a)          # 0: current frames never prompt
        self.cell_window_v = tuple(float(v) for v in cell_voltage_v)   # (): no window
        self._current_keys = protocol.frame_keys((CURRENT_FIELD,)) if self.current_a > 0.0 \
            else frozenset()
        self._cell_keys = protocol.frame_keys((CELL_FIELD,))
        self._contactor_keys = protocol.frame_keys(CONTACTOR_FIELDS)
        self._current_beyond = False               # |I| >= current_a at the last current frame
        self._cells_beyond = False                 # a cell outside the window at the last look
        self._contactors: tuple[str, ...] | None = None   # feedback at the last look (None: none)

    def assess(self, batch: Sequence[Any],
               assembler: MeasurementAssembler) -> tuple[bool, bool]:
        """(wanted, urgent) for ``batch`` (can.Message list, already fed to ``assembler``)."""
        if not self.enabled:
            return False, False
        keys = {frame_key(m.arbitration_id, m.is_extended_id) for m in batch}
        urgent = wanted = False
        if keys & self._current_keys:
            beyond = abs(assembler.latest(CURRENT_FIELD)) >= self.current_a
            urgent = beyond and not self._current_beyond
            self._current_beyond = beyond
            wanted = beyond
        if keys & self._cell_keys:
            if self.cell_window_v:
                low, high = assembler.extremes(CELL_FIELD)
                beyond = (math.isfinite(low) and low <= self.cell_window_v[0]) or \
                    (math.isfinite(high) and high >= self.cell_window_v[1])
                urgent = urgent or (beyond and not self._cells_beyond)
                self._cells_beyond = beyond
                wanted = wanted or beyond
            else:
                wanted = True
        if keys & self._contactor_keys:
            # NaN (invalid) compares unequal to itself: str() makes "still invalid" no change
            contactors = tuple(str(assembler.latest(f)) for f in CONTACTOR_FIELDS)
            wanted = wanted or contactors != self._contactors
            self._contactors = contactors
        return wanted or urgent, urgent

    def wanted(self, batch: Sequence[Any], assembler: MeasurementAssembler) -> bool:
        """True if ``batch`` (already fed to ``assembler``) asks for a prompt publish."""
        return self.assess(batch, assembler)[0]
