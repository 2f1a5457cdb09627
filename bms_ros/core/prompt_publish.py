"""When the CAN driver publishes a measurement before its next timer tick (a prompt publish).

The driver assembles measurements on a timer (``publish_rate_hz``); a limit crossing would then
wait up to one period before protection sees it. A received batch asks for a prompt publish
when it holds a frame of a limit-relevant group (cell voltages, temperatures, contactor
feedback), or a current frame whose decoded |I| is at or above ``prompt_current_a`` (an
over-current or a short circuit waits for no timer either, while ordinary currents keep the
measurement rate down). The driver publishes at most every ``prompt_min_interval_s``, except
for a crossing: the first batch in which |I| reaches ``prompt_current_a`` or a cell voltage
leaves the ``prompt_cell_voltage_v`` window (the lowest warning levels) is published at once,
whenever the last publish was (the bench found that 20 ms wait at the p99 of the CAN path).
While the value stays beyond, the ordinary rate limit applies again: a pack sitting above a
warning level does not make every cell frame a publish.
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
CURRENT_FIELD = 'pack_current_a'
CELL_FIELD = 'cell_voltages_v'


class PromptPolicy:
    """Decides, per received batch, whether a prompt publish is wanted, and whether it is a
    crossing that must not wait for the minimum interval."""

    def __init__(self, protocol: CanProtocol, min_interval_s: float, current_a: float = 0.0,
                 cell_voltage_v: Sequence[float] = ()) -> None:
        self.enabled = min_interval_s > 0.0
        self.current_a = float(current_a)          # 0: current frames never prompt
        self.cell_window_v = tuple(float(v) for v in cell_voltage_v)   # (): no window
        self._group_keys = protocol.frame_keys(PROMPT_FIELDS)
        self._current_keys = protocol.frame_keys((CURRENT_FIELD,)) if self.current_a > 0.0 \
            else frozenset()
        self._cell_keys = protocol.frame_keys((CELL_FIELD,)) if self.cell_window_v \
            else frozenset()
        self._current_beyond = False               # |I| >= current_a at the last current frame
        self._cells_beyond = False                 # a cell outside the window at the last look

    def assess(self, batch: Sequence[Any],
               assembler: MeasurementAssembler) -> tuple[bool, bool]:
        """(wanted, urgent) for ``batch`` (can.Message list, already fed to ``assembler``)."""
        if not self.enabled:
            return False, False
        keys = {frame_key(m.arbitration_id, m.is_extended_id) for m in batch}
        urgent = False
        if keys & self._current_keys:
            beyond = abs(assembler.latest(CURRENT_FIELD)) >= self.current_a
            urgent = beyond and not self._current_beyond
            self._current_beyond = beyond
        current_wanted = self._current_beyond and bool(keys & self._current_keys)
        if keys & self._cell_keys:
            low, high = assembler.extremes(CELL_FIELD)
            beyond = (math.isfinite(low) and low <= self.cell_window_v[0]) or \
                (math.isfinite(high) and high >= self.cell_window_v[1])
            urgent = urgent or (beyond and not self._cells_beyond)
            self._cells_beyond = beyond
        return bool(keys & self._group_keys) or current_wanted or urgent, urgent

    def wanted(self, batch: Sequence[Any], assembler: MeasurementAssembler) -> bool:
        """True if ``batch`` (already fed to ``assembler``) asks for a prompt publish."""
        return self.assess(batch, assembler)[0]
