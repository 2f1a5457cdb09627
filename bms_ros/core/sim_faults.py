"""Faults the pack simulator can inject, and their bookkeeping.

Measurement faults change only what the BMS slave reports; physical faults (thermal event,
welded or stuck contactor, shorted load) change the pack itself; frame faults (``FRAME_FAULTS``,
applied to the encoded frames by bms_ros.core.sim_frame_faults.FrameFaults in the node) change
what reaches the bus.

| fault | index | value |
|---|---|---|
| ``stuck_cell_voltage`` | cell | reading held, V (<= 0: the reading at injection) |
| ``open_wire`` | cell | - (the reading becomes NaN) |
| ``temperature_dropout`` | sensor | - (the reading becomes NaN) |
| ``thermal_event`` | cell | extra heat into the cell, W (> 0) |
| ``current_offset`` | - | offset added to the measured current, A |
| ``contactor_welded`` | contactor | - (stays closed whatever the command) |
| ``contactor_stuck_open`` | contactor | - (stays open whatever the command) |
| ``shorted_load`` | - | resistance across the DC link, ohm (<= 0: the default) |
| ``can_silent`` | message | - (that measurement message is no longer sent) |
| ``can_frozen`` | message | - (its last frames are resent unchanged, rolling counter included) |

Contactor indices: 0 = negative, 1 = positive, 2 = precharge (the PackMeasurement order).
Message indices: the order of ``measurement:`` in the CAN mapping (config/can/bms_ros_mapping.yaml:
0 cell voltages, 1 temperatures, 2 current and voltages, 3 status (contactor feedback),
4 balancing feedback). Clearing a fault with index -1 clears every instance of it.
"""
from __future__ import annotations

import math
from typing import Any, cast

import numpy as np

from bms_ros.core import contract
from bms_ros.core.errors import BmsError

CONTACTORS = contract.CONTACTORS   # a contactor fault's index: 0 negative, 1 positive, 2 precharge

# fault name -> what its index addresses (None: the fault has no index)
FAULTS = {
    'stuck_cell_voltage': 'cell',
    'open_wire': 'cell',
    'temperature_dropout': 'sensor',
    'thermal_event': 'cell',
    'current_offset': None,
    'contactor_welded': 'contactor',
    'contactor_stuck_open': 'contactor',
    'shorted_load': None,
}

# faults of the frames on the bus (index: measurement message in the mapping order)
FRAME_FAULTS = ('can_silent', 'can_frozen')

DEFAULT_SHORT_RESISTANCE_OHM = 0.05


class FaultError(BmsError, ValueError):
    """A fault request names an unknown fault, a bad index or a bad value."""


def _check_known(fault: str, extra: str = '') -> None:
    """FaultError unless ``fault`` is a fault of the model (frame faults are not)."""
    if fault in FRAME_FAULTS:
        raise FaultError(f'{fault} is a frame fault: FrameFaults applies it to the frames, '
                         'not the pack model')
    if fault not in FAULTS:
        known = ', '.join(sorted(tuple(FAULTS) + FRAME_FAULTS))
        raise FaultError(f'unknown fault {fault!r} (known: {extra}{known})')


class FaultSet:
    """Active faults of one pack, as arrays the model applies each step."""

    def __init__(self, cells: int, sensors: int) -> None:
        self.cells = int(cells)
        self.sensors = int(sensors)
        self.clear_all()

    def clear_all(self) -> None:
        """Remove every fault."""
        self.stuck_cell_voltage_v = np.full(self.cells, np.nan)   # NaN: not stuck
        self.open_wire = np.zeros(self.cells, dtype=bool)
        self.temperature_dropout = np.zeros(self.sensors, dtype=bool)
        self.thermal_event_w = np.zeros(self.cells)
        self.current_offset_a = 0.0
        self.contactor_welded = [False, False, False]
        self.contactor_stuck_open = [False, False, False]
        self.short_resistance_ohm = math.inf                    # inf: no short

    def _index(self, fault: str, index: Any) -> int | None:
        target = FAULTS[fault]
        if target is None:
            return None
        count = {'cell': self.cells, 'sensor': self.sensors, 'contactor': 3}[target]
        if isinstance(index, str) and target == 'contactor' and index in CONTACTORS:
            return CONTACTORS.index(index)
        try:
            index = int(index)
        except (TypeError, ValueError):
            raise FaultError(f'{fault}: index must be an integer {target} index, got {index!r}') \
                from None
        if not 0 <= index < count:
            raise FaultError(f'{fault}: {target} index {index} out of range 0..{count - 1}')
        return index

    def inject(self, fault: str, index: Any = 0, value: float = 0.0,
               present_cell_voltage_v: float | None = None) -> str:
        """Activate ``fault``; returns a one-line description. Raises FaultError."""
        _check_known(fault)
        value = float(value)
        if not math.isfinite(value):
            raise FaultError(f'{fault}: value must be finite, got {value}')
        i = self._index(fault, index)
        if fault == 'stuck_cell_voltage':
            if value <= 0.0:
                if present_cell_voltage_v is None:
                    raise FaultError(f'{fault}: value must be a voltage > 0')
                value = float(present_cell_voltage_v)
            self.stuck_cell_voltage_v[i] = value
            return f'cell {i} reading stuck at {value:.4f} V'
        if fault == 'open_wire':
            self.open_wire[i] = True
            return f'cell {i} sense wire open (reading invalid)'
        if fault == 'temperature_dropout':
            self.temperature_dropout[i] = True
            return f'temperature sensor {i} dropped out (reading invalid)'
        if fault == 'thermal_event':
            if value <= 0.0:
                raise FaultError(f'{fault}: value must be a heat power > 0 W, got {value}')
            self.thermal_event_w[i] = value
            return f'cell {i} heats with {value:g} W extra'
        if fault == 'current_offset':
            self.current_offset_a = value
            return f'current sensor offset {value:+g} A'
        if fault in ('contactor_welded', 'contactor_stuck_open'):
            welded = fault == 'contactor_welded'
            k = cast(int, i)     # a contactor fault has an index (FAULTS)
            self.contactor_welded[k] = welded
            self.contactor_stuck_open[k] = not welded
            return f'{CONTACTORS[k]} contactor {"welded closed" if welded else "stuck open"}'
        # shorted_load
        self.short_resistance_ohm = value if value > 0.0 else DEFAULT_SHORT_RESISTANCE_OHM
        return f'load shorted through {self.short_resistance_ohm:g} ohm'

    def clear(self, fault: str, index: Any = -1) -> str:
        """Clear ``fault`` (index -1: every instance; fault 'all': every fault)."""
        if fault == 'all':
            self.clear_all()
            return 'all faults cleared'
        _check_known(fault, 'all, ')
        target = FAULTS[fault]
        sel = slice(None) if target is None or int(index) < 0 else self._index(fault, index)
        if fault == 'stuck_cell_voltage':
            self.stuck_cell_voltage_v[sel] = np.nan
        elif fault == 'open_wire':
            self.open_wire[sel] = False
        elif fault == 'temperature_dropout':
            self.temperature_dropout[sel] = False
        elif fault == 'thermal_event':
            self.thermal_event_w[sel] = 0.0
        elif fault == 'current_offset':
            self.current_offset_a = 0.0
        elif fault == 'shorted_load':
            self.short_resistance_ohm = math.inf
        else:
            flags = self.contactor_welded if fault == 'contactor_welded' \
                else self.contactor_stuck_open
            for k in range(3):
                if sel == slice(None) or sel == k:
                    flags[k] = False
        return f'{fault} cleared' + ('' if target is None or int(index) < 0 else f' at {index}')

    def active(self) -> list[tuple[str, int, float]]:
        """Every active fault as (fault, index, value) tuples; index -1 for pack-wide faults."""
        out = [('stuck_cell_voltage', int(i), float(self.stuck_cell_voltage_v[i]))
               for i in np.flatnonzero(np.isfinite(self.stuck_cell_voltage_v))]
        out += [('open_wire', int(i), 0.0) for i in np.flatnonzero(self.open_wire)]
        out += [('temperature_dropout', int(i), 0.0)
                for i in np.flatnonzero(self.temperature_dropout)]
        out += [('thermal_event', int(i), float(self.thermal_event_w[i]))
                for i in np.flatnonzero(self.thermal_event_w)]
        if self.current_offset_a:
            out.append(('current_offset', -1, self.current_offset_a))
        out += [('contactor_welded', k, 0.0) for k in range(3) if self.contactor_welded[k]]
        out += [('contactor_stuck_open', k, 0.0) for k in range(3) if self.contactor_stuck_open[k]]
        if math.isfinite(self.short_resistance_ohm):
            out.append(('shorted_load', -1, self.short_resistance_ohm))
        return out
