"""One pack measurement as bms_interfaces/PackMeasurement, without ROS (driver, protection)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .stamps import stamp_s


@dataclass
class Measurement:
    """One pack measurement; field names and units as bms_interfaces/PackMeasurement.

    Current: + = charging, - = discharging (A). Invalid, stale or unmeasured values are NaN or
    have their *_valid flag False. Stamps are receive times in seconds on the clock of whoever
    filled them (NaN: some element never received); there is no header.
    """

    cell_voltages_v: NDArray[np.float64]
    cell_voltage_valid: NDArray[np.bool_]
    temperatures_degc: NDArray[np.float64]
    temperature_valid: NDArray[np.bool_]
    pack_current_a: float
    pack_voltage_v: float
    link_voltage_v: float = math.nan
    negative_contactor_closed: bool = False      # contactor feedback (auxiliary contacts)
    positive_contactor_closed: bool = False
    precharge_relay_closed: bool = False
    cell_balancing: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    cell_voltages_stamp: float = math.nan
    temperatures_stamp: float = math.nan
    current_stamp: float = math.nan
    cell_voltages_stale: bool = False
    temperatures_stale: bool = False
    current_stale: bool = False
    contactors_stale: bool = False
    frames_received: int = 0
    frames_rejected: int = 0
    charger_present: bool = False                # a mapped charger status (CAN): connected
    charger_present_valid: bool = False          # false: not mapped, never received or stale

    @classmethod
    def simple(cls, cell_voltages_v: ArrayLike, temperatures_degc: ArrayLike,
               pack_current_a: float = 0.0, pack_voltage_v: float | None = None,
               **fields: Any) -> Measurement:
        """A measurement with every value valid; pack voltage defaults to the sum of cells."""
        cells = np.asarray(cell_voltages_v, dtype=float)
        temps = np.asarray(temperatures_degc, dtype=float)
        return cls(cells, np.ones(cells.shape, bool), temps, np.ones(temps.shape, bool),
                   float(pack_current_a),
                   float(cells.sum() if pack_voltage_v is None else pack_voltage_v), **fields)

    @classmethod
    def from_message(cls, msg: Any) -> Measurement:
        """From a PackMeasurement-shaped object (ROS or rosbags message): arrays as numpy,
        stamps as seconds (NaN where the stamp is zero: not set).
        """
        return cls(
            cell_voltages_v=np.asarray(msg.cell_voltages_v, dtype=float),
            cell_voltage_valid=np.asarray(msg.cell_voltage_valid, dtype=bool),
            temperatures_degc=np.asarray(msg.temperatures_degc, dtype=float),
            temperature_valid=np.asarray(msg.temperature_valid, dtype=bool),
            pack_current_a=float(msg.pack_current_a), pack_voltage_v=float(msg.pack_voltage_v),
            link_voltage_v=float(msg.link_voltage_v),
            negative_contactor_closed=bool(msg.negative_contactor_closed),
            positive_contactor_closed=bool(msg.positive_contactor_closed),
            precharge_relay_closed=bool(msg.precharge_relay_closed),
            cell_balancing=np.asarray(msg.cell_balancing, dtype=bool),
            cell_voltages_stamp=stamp_s(msg.cell_voltages_stamp, math.nan),
            temperatures_stamp=stamp_s(msg.temperatures_stamp, math.nan),
            current_stamp=stamp_s(msg.current_stamp, math.nan),
            cell_voltages_stale=bool(msg.cell_voltages_stale),
            temperatures_stale=bool(msg.temperatures_stale),
            current_stale=bool(msg.current_stale), contactors_stale=bool(msg.contactors_stale),
            frames_received=int(msg.frames_received), frames_rejected=int(msg.frames_rejected),
            # absent in bags recorded before the field existed: unknown
            charger_present=bool(getattr(msg, 'charger_present', False)),
            charger_present_valid=bool(getattr(msg, 'charger_present_valid', False)))


# Every field of Measurement is a PackMeasurement field (the can_driver copies exactly these).
MESSAGE_FIELDS = tuple(f.name for f in fields(Measurement))
