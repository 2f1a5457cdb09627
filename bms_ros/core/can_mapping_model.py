"""The mapped element model: which PackMeasurement / command fields a mapping can fill, and
the validated :class:`CanMapping` of messages (:class:`MessageMap`) and signals
(:class:`SignalMap`) that the decoder and the encoders read (file format: core/can_mapping.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from cantools.database.can import Database, Message

# field -> (kind, length source); kinds: 'float', 'bool'; length: None (scalar), 'cells', 'sensors'
MEASUREMENT_FIELDS = {
    'cell_voltages_v': ('float', 'cells'),
    'temperatures_degc': ('float', 'sensors'),
    'pack_current_a': ('float', None),
    'pack_voltage_v': ('float', None),
    'link_voltage_v': ('float', None),
    'negative_contactor_closed': ('bool', None),
    'positive_contactor_closed': ('bool', None),
    'precharge_relay_closed': ('bool', None),
    'cell_balancing': ('bool', 'cells'),
    # a charger's status on the same bus (docs/can.md "several devices"): true = connected;
    # in no staleness group (PackMeasurement.charger_present_valid says fresh or unknown)
    'charger_present': ('bool', None),
}
COMMAND_FIELDS = {
    'negative_closed': ('bool', None),
    'precharge_closed': ('bool', None),
    'positive_closed': ('bool', None),
    'cell_bleed': ('bool', 'cells'),
}
CONTACTOR_COMMAND_FIELDS = ('negative_closed', 'precharge_closed', 'positive_closed')
# A measurement mapping must provide these; the others are optional (NaN / false, stale).
REQUIRED_MEASUREMENT_FIELDS = ('cell_voltages_v', 'temperatures_degc', 'pack_current_a',
                               'pack_voltage_v')
REQUIRED_COMMAND_FIELDS = CONTACTOR_COMMAND_FIELDS
# Staleness groups, named as PackMeasurement's *_stale / *_stamp fields.
GROUPS = {
    'cell_voltages': ('cell_voltages_v',),
    'temperatures': ('temperatures_degc',),
    'current': ('pack_current_a', 'pack_voltage_v', 'link_voltage_v'),
    'contactors': ('negative_contactor_closed', 'positive_contactor_closed',
                   'precharge_relay_closed'),
    'balancing': ('cell_balancing',),
}


@dataclass
class SignalMap:
    """One DBC signal mapped onto one field (or, for a bitmask, onto consecutive elements)."""

    signal: str
    field: str
    index: int              # element of an array field within the block (0 for scalars)
    bitmask: bool           # bit n of the raw value is element index + n
    gain: float             # field value = raw * gain + bias (DBC scaling and mapping scale)
    bias: float
    invalid_raw: int | None  # raw value meaning "invalid"; None: no marker
    raw_min: int            # valid raw range from the DBC's [min|max]
    raw_max: int
    type_min: int           # representable raw range of the signal
    type_max: int
    bits: int
    is_bool: bool
    where: str              # dotted mapping field, for messages
    flag: str | None = None   # invalid_flag signal of the same frame (None: none)
    flag_invalid: int = 1   # its raw value meaning "invalid" (invalid_when)
    error: str | None = None  # error_bits signal of the same frame (None: none)
    error_mask: int = 0     # error_bits & error_mask != 0: invalid


@dataclass
class MessageMap:
    """One DBC message mapped in the measurement or the commands section."""

    name: str
    frame_id: int
    is_extended: bool
    length: int
    period_s: float | None  # None for a command sent only on request
    mux_signal: str | None  # None if not multiplexed
    mux_stride: int | None  # None: absolute indices (or not multiplexed)
    mux_first: int
    mux_values: tuple[int, ...]   # multiplexer values used for this pack (encoder sends these)
    counter_signal: str | None    # None if no rolling counter
    counter_modulo: int
    signals: list[SignalMap]
    dbc_message: Message    # cantools Message
    kind: str = ''          # commands: 'contactor' or 'balancing'
    other_signals: tuple[str, ...] = dc_field(default=())  # DBC signals of the message not mapped
    device: str = ''        # the device (core/can_devices.py) whose DBC defines it

    def element(self, signal_map: SignalMap, mux: int | None, bit: int = 0) -> int:
        """Array element of ``signal_map`` in the frame with multiplexer value ``mux``."""
        return element_of(signal_map.index, self.mux_stride, self.mux_first, mux, bit)


@dataclass
class CanMapping:
    """A validated mapping: measurement and command messages for one pack size."""

    path: str
    dbc_path: str
    cells_series: int
    temperature_sensors: int
    measurement: list[MessageMap]
    commands: list[MessageMap]
    database: Database
    # control style (b): core/pack_report.py's ReportMap list and StateRequestMap (None: not
    # mapped)
    pack_report: list[Any] | None = None
    state_request: Any = None

    def field_length(self, field_name: str) -> int:
        """Number of elements of a field (1 for scalars)."""
        kind = {**MEASUREMENT_FIELDS, **COMMAND_FIELDS}[field_name][1]
        return {'cells': self.cells_series, 'sensors': self.temperature_sensors, None: 1}[kind]

    def mapped_fields(self) -> set[str]:
        """Measurement fields that at least one signal provides."""
        return {s.field for m in self.measurement for s in m.signals}

    def command(self, kind: str) -> MessageMap | None:
        """The command message of a kind ('contactor', 'balancing'), None if not mapped."""
        return next((m for m in self.commands if m.kind == kind), None)

    def pack_report_keys(self) -> set[int]:
        """Frame keys of the pack report and the state request (the driver ignores them)."""
        keys: set[int] = {m.key for m in self.pack_report or ()}
        if self.state_request is not None:
            keys.add(self.state_request.key)
        return keys


def element_of(index: int, stride: int | None, first: int, mux: int | None,
               bit: int = 0) -> int:
    """Array element: ``index + stride * (mux - first) + bit`` (``mux`` or ``stride`` None:
    ``index + bit``, the index is absolute).
    """
    if mux is None or stride is None:
        return index + bit
    return index + stride * (mux - first) + bit
