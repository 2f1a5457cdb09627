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
from .can_decode import (COUNTER_ERRORS_STALE, COUNTER_REASONS, REJECT_REASONS, VALUE_REASONS,
                         AssembledMeasurement, MeasurementAssembler, frame_key)
from .can_encode import CommandEncoder, PackEncoder
from .can_mapping import CONTACTOR_COMMAND_FIELDS, load_dbc, load_mapping
from .measurement import MESSAGE_FIELDS, Measurement


class CanProtocol:
    """A DBC plus its validated mapping for one pack size (cells in series, sensors)."""

    def __init__(self, mapping):
        self.mapping = mapping
        self.cells_series = mapping.cells_series
        self.temperature_sensors = mapping.temperature_sensors

    @classmethod
    def from_files(cls, dbc_path, mapping_path, cells_series, temperature_sensors):
        """Load and validate; ConfigError naming the file and field on any problem."""
        database = load_dbc(dbc_path)
        return cls(load_mapping(mapping_path, dbc_path, int(cells_series),
                                int(temperature_sensors), database=database))

    @property
    def measurement_messages(self):
        return self.mapping.measurement

    @property
    def command_messages(self):
        return self.mapping.commands

    def field_length(self, name):
        return self.mapping.field_length(name)

    def frame_keys(self, fields):
        """Keys (:func:`frame_key`) of the measurement frames carrying any of ``fields``."""
        fields = frozenset(fields)
        return frozenset(frame_key(m.frame_id, m.is_extended) for m in self.mapping.measurement
                         if fields.intersection(s.field for s in m.signals))

    def periods_s(self):
        """Send period of each measurement message, by DBC message name."""
        return {m.name: m.period_s for m in self.mapping.measurement}


__all__ = ['AssembledMeasurement', 'CanProtocol', 'MeasurementAssembler', 'Measurement',
           'PackEncoder', 'CommandEncoder', 'MESSAGE_FIELDS', 'REJECT_REASONS', 'VALUE_REASONS',
           'COUNTER_REASONS', 'COUNTER_ERRORS_STALE', 'CONTACTOR_COMMAND_FIELDS', 'frame_key']
