"""Pre-charge sequencing: negative, pre-charge relay, positive, release; its aborts.

A mixin of PackStateMachine (machine.py): the sequence reads the machine's measurement and
feedback and ends by entering a state, so it shares the machine's attributes rather than
copying them; it is apart so the sequence can be read (and changed) on its own.
"""
from __future__ import annotations

import logging
import math

from .attributes import MachineAttributes
from .states import COMMAND_ORDER, FEEDBACK_CLOSED, FEEDBACK_OPEN, STATE_NAMES, STATE_STANDBY, pct

log = logging.getLogger(__name__)

# Pre-charge phases: which contactor the sequence waits on.
PHASE_NEGATIVE = 'close negative'
PHASE_PRECHARGE = 'pre-charge'
PHASE_POSITIVE = 'close positive'
PHASE_RELEASE = 'open pre-charge'

# the phases that wait on one contactor's feedback: (command index, feedback awaited); each has
# precharge_phase_timeout_s (the rise, PHASE_PRECHARGE, has precharge_timeout_s)
PHASE_WAITS = {PHASE_NEGATIVE: (0, FEEDBACK_CLOSED), PHASE_POSITIVE: (2, FEEDBACK_CLOSED),
               PHASE_RELEASE: (1, FEEDBACK_OPEN)}


class PrechargeSequence(MachineAttributes):
    """The pre-charge steps of PackStateMachine (state PRECHARGE)."""

    def _precharge_step(self, now_s: float) -> None:
        cfg = self.config
        negative, precharge, positive = (fb == FEEDBACK_CLOSED for fb in self._feedback())
        released = self._feedback()[1] == FEEDBACK_OPEN
        if self._phase == PHASE_NEGATIVE and negative:
            self._set_phase(PHASE_PRECHARGE, now_s)
            self._link_start_fraction = self._link_fraction()
            self._command(True, True, False, 'pre-charge: close pre-charge relay')
        if self._phase == PHASE_PRECHARGE:
            elapsed = now_s - self._phase_since_s
            m = self._measurement
            pack_v = float(m.pack_voltage_v) if m is not None else math.nan
            link_v = float(m.link_voltage_v) if m is not None else math.nan
            fraction = self._link_fraction()
            # a link still charged from the last drive may rise fast: judge only a discharged one
            started_low = not (self._link_start_fraction >= 0.5 * cfg.precharge_target_fraction)
            if precharge and fraction >= cfg.precharge_target_fraction:
                if elapsed < cfg.precharge_min_time_s and started_low:
                    self._abort_precharge(
                        f'rise too fast: {pct(fraction)} of {pack_v:.1f} V after {elapsed:.3f} s'
                        f' < {cfg.precharge_min_time_s:.3f} s (no DC-link capacitance or a '
                        f'bypassed resistor?)', now_s)
                    return
                self._set_phase(PHASE_POSITIVE, now_s)
                self._precharge_time_s = elapsed
                self._command(True, True, True, 'pre-charge: close positive')
            elif elapsed > cfg.precharge_timeout_s:
                shown = 'unknown' if not math.isfinite(fraction) else pct(fraction)
                self._abort_precharge(
                    f'rise too slow: link {link_v:.1f} V = {shown} of {pack_v:.1f} V after '
                    f'{elapsed:.2f} s, target {pct(cfg.precharge_target_fraction)} within '
                    f'{cfg.precharge_timeout_s:.2f} s (shorted load?)', now_s)
                return
        if self._phase == PHASE_POSITIVE and positive:
            self._set_phase(PHASE_RELEASE, now_s)
            self._command(True, False, True, 'pre-charge: open pre-charge relay')
        if self._phase == PHASE_RELEASE and released:
            target = self._target
            assert target is not None, 'PRECHARGE always has a target (set by the request)'
            took = now_s - self._precharge_started_s
            self._phase = None
            self._target = None
            self._precharge_failed_s = None
            self._command(True, False, True, f'{STATE_NAMES[target]}: main contactors closed')
            self._enter(target, f'pre-charge done in {took:.2f} s '
                                f'(link at target after {self._precharge_time_s:.2f} s)')
            return
        if self._phase in PHASE_WAITS:
            elapsed = now_s - self._phase_since_s
            if elapsed > cfg.precharge_phase_timeout_s:
                index, wanted = PHASE_WAITS[self._phase]
                self._abort_precharge(
                    f'phase {self._phase} timed out after {elapsed:.2f} s > '
                    f'{cfg.precharge_phase_timeout_s:.2f} s ({COMMAND_ORDER[index]} feedback '
                    f'{self._feedback()[index]}, waiting for {wanted})', now_s)

    def _link_fraction(self) -> float:
        """DC-link voltage / pack voltage (NaN if unknown)."""
        m = self._measurement
        if m is None:
            return math.nan
        pack_v, link_v = float(m.pack_voltage_v), float(m.link_voltage_v)
        return link_v / pack_v if pack_v > 0.0 and math.isfinite(link_v) else math.nan

    def _abort_precharge(self, why: str, now_s: float) -> None:
        self._precharge_failed_s = now_s
        self._precharge_failure = why
        self._phase = None
        self._target = None
        self._open_all(f'pre-charge failed: {why}')
        self._enter(STATE_STANDBY, f'pre-charge failed: {why}')
        log.warning('pre-charge failed: %s', why)

    @property
    def phase(self) -> str | None:
        """The pre-charge phase (None outside PRECHARGE)."""
        return self._phase
