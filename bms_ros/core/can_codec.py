"""DBC-driven CAN codec: frames <-> PackMeasurement fields and contactor / balancing commands.

Driver side: :class:`MeasurementAssembler` decodes received frames into per-element values with
receive stamps and gives a complete, staleness-checked :class:`AssembledMeasurement`;
:class:`CommandEncoder` turns commands into frames. Pack side (the simulator):
:class:`PackEncoder` sends measurement frames at their periods and decodes commands.

The message layout comes only from the DBC and its mapping (bms_ros.core.can_mapping). The
maximum raw value of a measurement signal is the "invalid" marker (open wire, sensor
dropout): the encoder writes it for NaN and the decoder turns it into NaN + valid=false.
Bad input is counted by reason (``REJECT_REASONS``, ``VALUE_REASONS``, ``COUNTER_REASONS``),
never raised.

Decoding lives in bms_ros.core.can_decode (multiplexed layouts, the rolling-counter rule),
encoding in bms_ros.core.can_encode; this module holds :class:`CanProtocol` and re-exports
both, so ``from bms_ros.core.can_codec import ...`` keeps working.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .can_decode import (
    COUNTER_ERRORS_STALE,
    COUNTER_REASONS,
    REJECT_REASONS,
    VALUE_REASONS,
    AssembledMeasurement,
    MeasurementAssembler,
    frame_key,
)
from .can_devices import CanDevice, device_name, devices_of, load_devices
from .can_encode import CommandEncoder, PackEncoder
from .can_mapping import CONTACTOR_COMMAND_FIELDS, CanMapping, MessageMap, load_dbc, load_mapping
from .measurement import MESSAGE_FIELDS, Measurement

if TYPE_CHECKING:
    from .can_devices import DeviceMapping


class CanProtocol:
    """A DBC plus its validated mapping for one pack size (cells in series, sensors)."""

    def __init__(self, mapping: CanMapping) -> None:
        self.mapping = mapping
        self.cells_series = mapping.cells_series
        self.temperature_sensors = mapping.temperature_sensors

    @classmethod
    def from_files(cls, dbc_path: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                   mapping_path: Any, cells_series: int,
                   temperature_sensors: int) -> CanProtocol:
        """Load and validate; ConfigError naming the file and field on any problem. Two
        lists of paths (equal length; a None mapping: an ignored device) load several devices
        on one bus (core/can_devices.py), each named after its DBC.
        """
        if not isinstance(dbc_path, (str, os.PathLike)):
            dbc_paths, mapping_paths = list(dbc_path), list(mapping_path)
            if len(dbc_paths) != len(mapping_paths):
                raise ValueError(f'{len(dbc_paths)} DBCs but {len(mapping_paths)} mappings')
            return cls.from_devices([CanDevice(device_name(d), os.fspath(d), m)
                                     for d, m in zip(dbc_paths, mapping_paths)],
                                    cells_series, temperature_sensors)
        database = load_dbc(dbc_path)
        return cls(load_mapping(mapping_path, dbc_path, int(cells_series),
                                int(temperature_sensors), database=database))

    @classmethod
    def from_devices(cls, devices: Iterable[CanDevice], cells_series: int,
                     temperature_sensors: int,
                     where: tuple[str, str] | None = None) -> CanProtocol:
        """Several devices (CanDevice) on one bus; ``where``: (file, field) for errors."""
        return cls(load_devices(devices, int(cells_series), int(temperature_sensors), where))

    @classmethod
    def from_settings(cls, settings: Any, cells_series: int,
                      temperature_sensors: int) -> CanProtocol:
        """The protocol of a profile's validated ``can:`` section (core/can_bus.py): its
        single DBC and mapping, or its ``devices``.
        """
        if settings.devices:
            return cls.from_devices(settings.devices, cells_series, temperature_sensors,
                                    settings.devices_where)
        return cls.from_files(settings.dbc_path, settings.mapping_path, cells_series,
                              temperature_sensors)

    @property
    def devices(self) -> tuple[DeviceMapping, ...]:
        """The devices of the bus (core/can_devices.DeviceMapping), one for a single DBC."""
        return devices_of(self.mapping)

    @property
    def measurement_messages(self) -> list[MessageMap]:
        """The mapped measurement messages (received from the pack)."""
        return self.mapping.measurement

    @property
    def command_messages(self) -> list[MessageMap]:
        """The mapped command messages (sent to the pack)."""
        return self.mapping.commands

    def field_length(self, name: str) -> int:
        """Number of elements of message field ``name`` (e.g. cells for cell_voltages)."""
        return self.mapping.field_length(name)

    def frame_keys(self, fields: Iterable[str]) -> frozenset[int]:
        """Keys (:func:`frame_key`) of the measurement frames carrying any of ``fields``."""
        wanted = frozenset(fields)
        return frozenset(frame_key(m.frame_id, m.is_extended) for m in self.mapping.measurement
                         if wanted.intersection(s.field for s in m.signals))

    def periods_s(self) -> dict[str, float | None]:
        """Send period of each measurement message, by DBC message name."""
        return {m.name: m.period_s for m in self.mapping.measurement}


__all__ = ['AssembledMeasurement', 'CanProtocol', 'MeasurementAssembler', 'Measurement',
           'PackEncoder', 'CommandEncoder', 'MESSAGE_FIELDS', 'REJECT_REASONS', 'VALUE_REASONS',
           'COUNTER_REASONS', 'COUNTER_ERRORS_STALE', 'CONTACTOR_COMMAND_FIELDS', 'frame_key']
