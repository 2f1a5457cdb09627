"""One bag's measurement columns (``cdr.decode_measurements``) as the cores read them: the
time of each measurement, one sample as a PackMeasurement-shaped row, a row as a Measurement.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..measurement import Measurement

# field name -> its array over the bag's messages (x per cell or sensor)
Columns = Mapping[str, NDArray[Any]]


def measurement_times(columns: Mapping[str, ArrayLike], receive_s: ArrayLike | None = None
                      ) -> NDArray[np.float64]:
    """Time of each measurement (s): its header stamp, else the bag's receive time."""
    stamp = np.asarray(columns['header_stamp_s'], dtype=float)
    if receive_s is None:
        return stamp
    return np.where(stamp > 0.0, stamp, np.asarray(receive_s, dtype=float))


def row(columns: Columns, k: int, current_a: float) -> SimpleNamespace:
    """A PackMeasurement-shaped view of sample ``k`` with ``current_a`` (for the cores)."""
    return SimpleNamespace(
        cell_voltages_v=columns['cell_voltages_v'][k],
        cell_voltage_valid=columns['cell_voltage_valid'][k],
        temperatures_degc=columns['temperatures_degc'][k],
        temperature_valid=columns['temperature_valid'][k],
        pack_current_a=current_a, pack_voltage_v=float(columns['pack_voltage_v'][k]),
        link_voltage_v=float(columns['link_voltage_v'][k]),
        negative_contactor_closed=bool(columns['negative_contactor_closed'][k]),
        positive_contactor_closed=bool(columns['positive_contactor_closed'][k]),
        precharge_relay_closed=bool(columns['precharge_relay_closed'][k]),
        cell_balancing=columns['cell_balancing'][k],
        cell_voltages_stale=bool(columns['cell_voltages_stale'][k]),
        temperatures_stale=bool(columns['temperatures_stale'][k]),
        current_stale=bool(columns['current_stale'][k]),
        contactors_stale=bool(columns['contactors_stale'][k]),
        frames_received=int(columns['frames_received'][k]),
        frames_rejected=int(columns['frames_rejected'][k]),
        cell_voltages_stamp_s=float(columns['cell_voltages_stamp_s'][k]),
        temperatures_stamp_s=float(columns['temperatures_stamp_s'][k]),
        current_stamp_s=float(columns['current_stamp_s'][k]))


def to_measurement(view: SimpleNamespace) -> Measurement:
    """bms_ros.core.measurement.Measurement of a row (stamps already in seconds)."""
    return Measurement(
        cell_voltages_v=np.asarray(view.cell_voltages_v, dtype=float),
        cell_voltage_valid=np.asarray(view.cell_voltage_valid, dtype=bool),
        temperatures_degc=np.asarray(view.temperatures_degc, dtype=float),
        temperature_valid=np.asarray(view.temperature_valid, dtype=bool),
        pack_current_a=float(view.pack_current_a), pack_voltage_v=float(view.pack_voltage_v),
        link_voltage_v=float(view.link_voltage_v),
        negative_contactor_closed=view.negative_contactor_closed,
        positive_contactor_closed=view.positive_contactor_closed,
        precharge_relay_closed=view.precharge_relay_closed,
        cell_balancing=np.asarray(view.cell_balancing, dtype=bool),
        cell_voltages_stamp=view.cell_voltages_stamp_s or math.nan,
        temperatures_stamp=view.temperatures_stamp_s or math.nan,
        current_stamp=view.current_stamp_s or math.nan,
        cell_voltages_stale=view.cell_voltages_stale, temperatures_stale=view.temperatures_stale,
        current_stale=view.current_stale, contactors_stale=view.contactors_stale,
        frames_received=view.frames_received, frames_rejected=view.frames_rejected)
