"""Fault injection into the simulated pack (the faults themselves: core/sim_faults.FaultSet).

A mixin of PackModel: the model reads its FaultSet where each fault acts (contactors welded or
stuck open, a shorted load on the DC link, thermal-event heat, and on the readings: a stuck
or open-wire cell voltage, a temperature dropout, a current-sensor offset).
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .state import PackModelState

log = logging.getLogger(__name__)


class FaultsMixin(PackModelState):
    """PackModel's fault injection and clearing."""

    def inject_fault(self, fault: str, index: Any = 0, value: float = 0.0) -> str:
        """Inject a fault (see bms_ros.core.sim_faults); returns a description. FaultError."""
        present = None
        if fault == 'stuck_cell_voltage' and isinstance(index, (int, np.integer)) \
                and 0 <= index < self.cells:
            present = float(self.cell_voltages_v[index])
        text = self.faults.inject(fault, index, value, present_cell_voltage_v=present)
        log.info('fault injected: %s', text)
        return text

    def clear_fault(self, fault: str, index: Any = -1) -> str:
        """Clear a fault (index -1: all instances; fault 'all': everything)."""
        text = self.faults.clear(fault, index)
        log.info('fault cleared: %s', text)
        return text
