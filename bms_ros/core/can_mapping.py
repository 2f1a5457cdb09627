"""Mapping of a DBC's messages and signals onto PackMeasurement and the pack commands.

A user brings the DBC of their BMS plus a YAML mapping (config/can/*_mapping.yaml); no code.
The mapping is validated against the DBC at load: every error is a ConfigError naming the
mapping file and the dotted field (``measurement[2].signals[1].signal: unknown signal ...``).

Mapping file::

    measurement:                       # frames from the pack, decoded by the driver
      - message: Pack_CellVoltages     # DBC message name
        period_s: 0.1                  # send period (default: the DBC's GenMsgCycleTime)
        multiplexer: {signal: CellVoltageMux, stride: 4, first: 0}
        counter: StatusCounter         # optional rolling counter signal (+1 per frame)
        signals:
          - {signal: CellVoltage0, field: cell_voltages_v, index: 0}
    commands:                          # frames to the pack, encoded by the driver
      - message: Controller_ContactorCommand
        signals:
          - {signal: NegativeContactorClose, field: negative_closed}

Array element of a signal: ``index + stride * (mux - first)`` (plus the bit number for a
``bitmask: true`` signal, whose bit n is element n). Without ``stride`` the index is the element
itself and the multiplexer only selects which signals a frame carries: the layout of DBCs that
name every cell (``CellVoltage_000`` ... each in its own branch). Any multiplexer of the message
may be named, nested (extended) multiplexing included; the decoder uses the signals cantools
returns for the frame's branch and skips the others. Value of a field:
``dbc_physical * scale + offset`` (``scale: -1`` turns a discharge-positive current into the
charge-positive convention). ``invalid_raw`` is the raw value that means "invalid" (default
``max``: the largest raw value of the signal; ``null``: none).

The code is split by concept; this module re-exports their public names, so
``from bms_ros.core.can_mapping import load_mapping, CanMapping`` is the import path:
``can_mapping_model`` (the fields a mapping fills, SignalMap, MessageMap, CanMapping),
``can_mapping_load`` (load_dbc, load_mapping: the file checked against its DBC),
``can_validity`` (flags, multiplexer branches, valid raw range, invalid_flag / error_bits) and
``can_names`` (the "did you mean" and index-range texts of the errors).
"""
from .can_mapping_load import _Loader, load_dbc, load_mapping
from .can_mapping_model import (
    COMMAND_FIELDS,
    CONTACTOR_COMMAND_FIELDS,
    GROUPS,
    MEASUREMENT_FIELDS,
    REQUIRED_COMMAND_FIELDS,
    REQUIRED_MEASUREMENT_FIELDS,
    CanMapping,
    MessageMap,
    SignalMap,
    element_of,
)
from .can_names import format_indices as _format_indices
from .can_names import suggest as _suggest
from .can_validity import _branch_values, is_boolean_signal

__all__ = ['COMMAND_FIELDS', 'CONTACTOR_COMMAND_FIELDS', 'GROUPS', 'MEASUREMENT_FIELDS',
           'REQUIRED_COMMAND_FIELDS', 'REQUIRED_MEASUREMENT_FIELDS', 'CanMapping', 'MessageMap',
           'SignalMap', '_Loader', '_branch_values', '_format_indices', '_suggest', 'element_of',
           'is_boolean_signal', 'load_dbc', 'load_mapping']
