"""When the CAN driver publishes a measurement before its next timer tick (a prompt publish).

The driver assembles measurements on a timer (``publish_rate_hz``); a limit crossing would then
wait up to one period before protection sees it. A received batch asks for a prompt publish
when it holds a frame of a limit-relevant group (cell voltages, temperatures, contactor
feedback), or a current frame whose decoded |I| is at or above ``prompt_current_a`` (an
over-current or a short circuit waits for no timer either, while ordinary currents keep the
measurement rate down). The driver still publishes at most every ``prompt_min_interval_s``.
"""
from .can_codec import frame_key

PROMPT_FIELDS = frozenset(('cell_voltages_v', 'temperatures_degc', 'negative_contactor_closed',
                           'positive_contactor_closed', 'precharge_relay_closed'))
CURRENT_FIELD = 'pack_current_a'


class PromptPolicy:
    """Decides, per received batch, whether a prompt publish is wanted."""

    def __init__(self, protocol, min_interval_s, current_a=0.0):
        self.enabled = min_interval_s > 0.0
        self.current_a = float(current_a)          # 0: current frames never prompt
        self._group_keys = protocol.frame_keys(PROMPT_FIELDS)
        self._current_keys = protocol.frame_keys((CURRENT_FIELD,)) if self.current_a > 0.0 \
            else frozenset()

    def wanted(self, batch, assembler):
        """True if ``batch`` (can.Message list, already fed to ``assembler``) asks for one."""
        if not self.enabled:
            return False
        keys = {frame_key(m.arbitration_id, m.is_extended_id) for m in batch}
        if keys & self._group_keys:
            return True
        return bool(keys & self._current_keys) and \
            abs(assembler.latest(CURRENT_FIELD)) >= self.current_a
