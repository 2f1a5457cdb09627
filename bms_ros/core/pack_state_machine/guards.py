"""Guards of the pack state machine: why DRIVE / CHARGE or leaving ERROR is refused now.

A mixin of PackStateMachine (machine.py): each guard reads the machine's latest inputs and
returns the first reason to refuse ('' = allowed).
"""
from __future__ import annotations

import numpy as np

from .attributes import MachineAttributes
from .states import COMMAND_ORDER, FEEDBACK_CLOSED, FEEDBACK_OPEN, STATE_DRIVE, STATE_STANDBY, pct


class RequestGuards(MachineAttributes):
    """The request guards of PackStateMachine."""

    def _guard(self, state: int, now_s: float) -> str:
        """Why DRIVE or CHARGE may not be entered now ('' = allowed). First failing guard."""
        cfg = self.config
        if self._trip_latched:
            return (f'trip latched ({", ".join(self._latched_names) or "see trip_event"}); '
                    f'reset trips first')
        if self._status_s is None:
            return 'no protection status yet'
        if now_s - self._status_s > cfg.protection_timeout_s:
            return f'protection status stale ({now_s - self._status_s:.1f} s old)'
        if self._measurement_s is None:
            return 'no measurement yet'
        if now_s - self._measurement_s > cfg.measurement_timeout_s:
            return f'measurement stale ({now_s - self._measurement_s:.1f} s old)'
        unknown = self._unknown_blocker(now_s)
        if unknown:
            return unknown
        if self.state == STATE_STANDBY and self._precharge_failed_s is not None:
            left = cfg.precharge_retry_delay_s - (now_s - self._precharge_failed_s)
            if left > 0:
                return (f'pre-charge failed ({self._precharge_failure}); retry in {left:.1f} s')
        soc_known = self._soc_s is not None and now_s - self._soc_s <= cfg.estimate_timeout_s
        soc = self._soc if soc_known else None       # (set with _soc_s)
        if cfg.require_estimate and not soc_known:
            return ('SoC unknown (no estimate yet)' if self._soc_s is None else
                    f'SoC unknown (estimate stale: {now_s - self._soc_s:.1f} s old)')
        if state == STATE_DRIVE:
            if soc is not None and soc < cfg.drive_soc_min:
                return f'SoC too low: {pct(soc)} < {pct(cfg.drive_soc_min)}'
            window = (cfg.drive_temperature_min_degc, cfg.drive_temperature_max_degc, 'drive')
            limit, direction = self._discharge_limit_a, 'discharge'
        else:
            if soc is not None and soc > cfg.charge_soc_max:
                return f'SoC too high: {pct(soc)} > {pct(cfg.charge_soc_max)}'
            window = (cfg.charge_temperature_min_degc, cfg.charge_temperature_max_degc, 'charge')
            limit, direction = self._charge_limit_a, 'charge'
        blocker = self._temperature_blocker(*window)
        if blocker:
            return blocker
        if not limit > 0.0:
            return f'{direction} current limit is 0 A (protection derating)'
        if self.state == STATE_STANDBY:
            closed = [name for name, fb in zip(COMMAND_ORDER, self._feedback())
                      if fb != FEEDBACK_OPEN]
            if closed:
                return f'contactor feedback not open: {", ".join(closed)}'
        return ''

    def _temperature_blocker(self, low: float, high: float, mode: str) -> str:
        m = self._measurement
        if m is None:       # (the guards ask for a measurement first)
            return 'no measurement yet'
        temps = np.asarray(m.temperatures_degc, dtype=float)
        valid = np.asarray(m.temperature_valid, dtype=bool) & np.isfinite(temps)
        if not valid.any():
            return 'no valid temperature'
        hottest = int(np.argmax(np.where(valid, temps, -np.inf)))
        coldest = int(np.argmin(np.where(valid, temps, np.inf)))
        if temps[hottest] > high:
            return (f'temperature outside the {mode} window: sensor {hottest} at '
                    f'{temps[hottest]:.1f} degC > {high:.1f} degC')
        if temps[coldest] < low:
            return (f'temperature outside the {mode} window: sensor {coldest} at '
                    f'{temps[coldest]:.1f} degC < {low:.1f} degC')
        return ''

    def _error_exit_blocker(self, now_s: float) -> str:
        cfg = self.config
        if self._trip_latched:
            return (f'trip latched ({", ".join(self._latched_names) or "see trip_event"}); '
                    f'reset trips first')
        if self._status_s is None or now_s - self._status_s > cfg.protection_timeout_s:
            return 'no fresh protection status'
        if self._measurement_s is None or now_s - self._measurement_s > cfg.measurement_timeout_s:
            return 'no fresh measurement'
        unknown = self._unknown_blocker(now_s)
        if unknown:
            faults = ', '.join(COMMAND_ORDER[i] for i in sorted(self._faults))
            return unknown + (f'; contactor faults kept: {faults}' if faults else '')
        closed = [name for name, fb in zip(COMMAND_ORDER, self._feedback())
                  if fb == FEEDBACK_CLOSED]
        if closed:
            return f'contactor feedback not open: {", ".join(closed)} (welded?)'
        return ''
