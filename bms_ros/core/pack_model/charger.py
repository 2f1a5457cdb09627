"""What drives the simulated pack's current: an external demand (A or W, optionally timing
out), else the CC-CV charger while plugged in, else the load profile. A mixin of PackModel.

The charger (ChargerConfig): CC at the smaller of its rating and the BMS's allowed charge
current, CV with the highest cell at its cell voltage (solved for the step ahead on the
cells' ECM), done once the CV current falls below its end current.
"""
from __future__ import annotations

import logging
import math

import numpy as np

from ..load_profile import ExternalLoad
from .config import ChargerConfig
from .state import PackModelState

log = logging.getLogger(__name__)


class ChargerMixin(PackModelState):
    """PackModel's demand override, charger and load profile."""

    def _init_charger(self) -> None:
        """The charger with its unset values from the cell's datasheet limits; no override."""
        charger = self.config.charger
        self.charger = ChargerConfig(
            current_a=charger.current_a or 0.5 * self.cell.limits.charge_current_max_a,
            cell_voltage_v=charger.cell_voltage_v or self.cell.limits.voltage_max_v,
            end_current_a=charger.end_current_a or self.cell.capacity_ah / 20.0)
        self.charger_enabled = False
        self.charge_limit_a = None
        self.charger_phase = 'off'
        self._override_a = None
        self._override_is_power = False
        self._override_at_s = 0.0

    def demand_a(self, t_s: float) -> float:
        """Demanded current at ``t_s`` (A, + = charging): external override, else the profile."""
        if self._override_a is not None:
            timeout = self.config.demand_timeout_s
            if timeout <= 0.0 or t_s - self._override_at_s <= timeout:
                if self._override_is_power:
                    return self._override_a / max(self.pack_voltage_v, 1.0)
                return self._override_a
            self._override_a = None
            log.info('external demand expired after %.1f s: back to the load profile', timeout)
        if self.charger_enabled:
            return self.charger_current_a()     # plugged in: the charger, not the drive cycle
        return self.load.current_a(t_s)

    def set_demand(self, current_a: float) -> None:
        """External demand (A, + = charging) that overrides the load profile."""
        current_a = self._override(current_a, is_power=False)
        if isinstance(self.load, ExternalLoad):
            self.load.set_current(current_a)   # an external load holds the last current demand

    def set_demand_power(self, power_w: float) -> None:
        """External power demand (W, + = charging) that overrides the load profile.

        Converted to a current each step with the pack terminal voltage of the step before.
        An external load is left alone: it holds amps, and this is watts.
        """
        self._override(power_w, is_power=True)

    def _override(self, value: float, is_power: bool) -> float:
        """Set the override (A, or W if ``is_power``); ValueError unless finite."""
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f'demand must be finite, got {value}')
        self._override_a = value
        self._override_is_power = is_power
        self._override_at_s = self.sim_time_s
        return value

    def clear_demand(self) -> None:
        """Go back to the load profile."""
        self._override_a = None

    def set_charger(self, enabled: bool, charge_limit_a: float | None = None) -> None:
        """Plug the charger in (``enabled``) or out; ``charge_limit_a``: the BMS's allowed
        charge current (A, magnitude; None keeps the last). Unplugging ends a finished charge.
        """
        if charge_limit_a is not None:
            limit = float(charge_limit_a)
            self.charge_limit_a = limit if math.isfinite(limit) else None
        enabled = bool(enabled)
        if enabled != self.charger_enabled:
            self.charger_enabled = enabled
            self.charger_phase = 'CC' if enabled else 'off'
            log.info('charger %s', 'plugged in (CC-CV)' if enabled else 'unplugged')

    def charger_current_a(self) -> float:
        """The charger's current now (A, >= 0): CC at the smaller of its rating and the BMS's
        limit, CV with the highest cell at the charger's cell voltage, 0 once done.
        """
        if not self.charger_enabled or self.charger_phase == 'done':
            return 0.0
        charger = self.charger
        assert charger.current_a is not None and charger.cell_voltage_v is not None \
            and charger.end_current_a is not None     # set by _init_charger
        cc = charger.current_a
        if self.charge_limit_a is not None:
            cc = min(cc, max(0.0, self.charge_limit_a))
        # terminal voltage after one step at current i: OCV + RC decayed + i (R0 + R1 (1 - e))
        decay = self._rc_decay
        slope = self.r0_ohm + self.r1_ohm * (1.0 - decay)
        headroom = charger.cell_voltage_v - (self.ocv_v + self.rc_v * decay)
        cv = float(np.min(headroom / slope))
        if cv < cc:
            if self.charger_phase == 'CC':
                log.info('charger: CV at %.3f V per cell', charger.cell_voltage_v)
            self.charger_phase = 'CV'
            if cv < charger.end_current_a:
                self.charger_phase = 'done'
                log.info('charger: done (CV current below %.2f A)', charger.end_current_a)
                return 0.0
            return max(0.0, cv)
        return cc
