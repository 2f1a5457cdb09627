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
"""
from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, cast

import cantools
from cantools.database.can import Database, Message, Signal

from .can_raw import invalid_raw_of, type_range
from .config import Section, load_yaml
from .errors import ConfigError

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

_MESSAGE_KEYS = ('message', 'period_s', 'multiplexer', 'counter', 'signals')
_SIGNAL_KEYS = ('signal', 'field', 'index', 'bitmask', 'scale', 'offset', 'invalid_raw',
                'invalid_flag', 'invalid_when', 'error_bits', 'error_mask')


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


def element_of(index: int, stride: int | None, first: int, mux: int | None,
               bit: int = 0) -> int:
    """Array element: ``index + stride * (mux - first) + bit`` (``mux`` or ``stride`` None:
    ``index + bit``, the index is absolute).
    """
    if mux is None or stride is None:
        return index + bit
    return index + stride * (mux - first) + bit


def load_dbc(dbc_path: str | os.PathLike[str]) -> Database:
    """Load a DBC with cantools; ConfigError naming the file if it cannot be read or parsed."""
    dbc_path = os.fspath(dbc_path)
    if not os.path.isfile(dbc_path):
        raise ConfigError(dbc_path, '', 'file not found')
    try:
        return cast(Database, cantools.database.load_file(dbc_path, database_format='dbc'))
    except Exception as error:  # noqa: BLE001  cantools raises many types (ParseError, ...)
        raise ConfigError(dbc_path, '', f'cannot load DBC: {error}') from None


def load_mapping(mapping_path: str | os.PathLike[str], dbc_path: str | os.PathLike[str],
                 cells_series: int, temperature_sensors: int,
                 database: Database | None = None) -> CanMapping:
    """Load and validate a mapping against its DBC for a pack of the given size."""
    mapping_path = os.fspath(mapping_path)
    database = database if database is not None else load_dbc(dbc_path)
    top = Section(load_yaml(mapping_path), mapping_path)
    top.reject_unknown(('measurement', 'commands', 'pack_report', 'state_request'))
    loader = _Loader(top, database, os.path.basename(os.fspath(dbc_path)),
                     cells_series, temperature_sensors)
    measurement = loader.messages('measurement', MEASUREMENT_FIELDS)
    # a pack that takes a state request owns its contactors: the contactor command is optional
    pack_controls = top.has('state_request')
    commands = loader.messages('commands', COMMAND_FIELDS) \
        if top.has('commands') or not pack_controls else []
    loader.check_required('measurement', measurement, REQUIRED_MEASUREMENT_FIELDS)
    if not pack_controls or any(s.field in CONTACTOR_COMMAND_FIELDS
                                for m in commands for s in m.signals):
        loader.check_required('commands', commands, REQUIRED_COMMAND_FIELDS)
    from .pack_report import load_report_sections  # its loader lives there (control style b)
    pack_report, state_request = load_report_sections(
        top, database, loader.dbc_name, _suggest, is_boolean_signal)
    return CanMapping(path=mapping_path, dbc_path=os.fspath(dbc_path), cells_series=cells_series,
                      temperature_sensors=temperature_sensors, measurement=measurement,
                      commands=commands, database=database, pack_report=pack_report,
                      state_request=state_request)


def _branch_values(dbc_signal: Signal, mux_signal: str,
                   signals_by_name: dict[str, Signal]) -> tuple[int, ...] | None:
    """Values of multiplexer ``mux_signal`` whose branch carries ``dbc_signal`` (nested
    multiplexing followed upwards); None if the signal is in every frame of the message.
    """
    signal = dbc_signal
    while signal.multiplexer_signal is not None:
        if signal.multiplexer_signal == mux_signal:
            return tuple(signal.multiplexer_ids or ())
        signal = signals_by_name[signal.multiplexer_signal]
    return None


def _format_indices(indices: Iterable[int]) -> str:
    """Sorted indices as compact ranges: '16-19, 22'."""
    out = []
    ordered = sorted(indices)
    start = prev = ordered[0]
    rest: list[int | None] = list(ordered[1:])
    for i in rest + [None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        out.append(f'{start}' if start == prev else f'{start}-{prev}')
        if i is not None:
            start = prev = i
    return ', '.join(out)


def _unpadded(name: str) -> str:
    """``name`` without the leading zeros of its numbers: CellVoltage_017 -> CellVoltage_17."""
    return re.sub(r'\d+', lambda m: str(int(m.group())), name)


def _suggest(name: str, known: Sequence[str]) -> str:
    # a name that differs only in zero padding (CellVoltage_17 / CellVoltage_017) comes first:
    # difflib alone ranks CellVoltage_197 higher
    key = _unpadded(name)
    padded = [k for k in known if _unpadded(k) == key]
    close = difflib.get_close_matches(name, padded, n=1, cutoff=0.0) if padded \
        else difflib.get_close_matches(name, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ''


def is_boolean_signal(dbc_signal: Signal) -> bool:
    """True for a 1-bit signal, or one whose named choices are exactly 0 and 1 and whose DBC
    range holds nothing else (a flag, not a value).
    """
    if dbc_signal.length == 1:
        return True
    choices: Mapping[Any, Any] = dbc_signal.choices or {}
    if {int(k) for k in choices} != {0, 1}:
        return False
    hi = dbc_signal.maximum
    return hi is not None and (hi - float(dbc_signal.offset)) / float(dbc_signal.scale) <= 1.0


class _Loader:
    """Validates one mapping file against one DBC."""

    def __init__(self, top: Section, database: Database, dbc_name: str, cells_series: int,
                 temperature_sensors: int) -> None:
        self.top = top
        self.db = database
        self.dbc_name = dbc_name
        self.lengths = {'cells': cells_series, 'sensors': temperature_sensors, None: 1}
        self.by_name = {m.name: m for m in database.messages}
        self.message_names: set[str] = set()
        self.frame_ids: dict[tuple[int, bool], str] = {}
        self.owner_suffix = ''   # ' in <mapping file>' when several devices share the owners

    def messages(self, section_name: str, fields: dict[str, tuple[str, str | None]],
                 owners: dict[tuple[str, int], str] | None = None,
                 coverage: bool = True) -> list[MessageMap]:
        """The MessageMaps of a section; ``owners`` ((field, element) -> the signal that
        provides it) may be shared by several devices, which then check coverage together.
        """
        if not self.top.has(section_name):
            raise self.top.error(section_name, 'missing required field')
        sections = self.top.sections(section_name)
        if not sections:
            raise self.top.error(section_name, 'expected at least one message')
        owners = {} if owners is None else owners
        maps = [self._message(sec, fields, owners, section_name) for sec in sections]
        # every element of every mapped array field must be provided
        for field_name, (_, length_of) in fields.items():
            if not coverage:
                break
            if length_of is None:
                continue
            covered = {e for f, e in owners if f == field_name}
            if not covered:
                continue
            missing = set(range(self.lengths[length_of])) - covered
            if missing:
                raise self.top.error(section_name, f'{field_name}[{_format_indices(missing)}] '
                                                   'not covered by any signal')
        return maps

    def check_required(self, section_name: str, maps: Sequence[MessageMap],
                       required: Iterable[str]) -> None:
        mapped = {s.field for m in maps for s in m.signals}
        missing = [f for f in required if f not in mapped]
        if missing:
            raise self.top.error(section_name,
                                 f'no signal maps {", ".join(missing)} (required)')

    def _message(self, sec: Section, fields: dict[str, tuple[str, str | None]],
                 owners: dict[tuple[str, int], str], section_name: str) -> MessageMap:
        sec.reject_unknown(_MESSAGE_KEYS)
        name = sec.string('message')
        if name not in self.by_name:
            raise sec.error('message', f"unknown message '{name}' in {self.dbc_name}"
                            + _suggest(name, list(self.by_name)))
        if name in self.message_names:
            raise sec.error('message', f"message '{name}' is mapped twice")
        self.message_names.add(name)
        dbc_message = self.by_name[name]
        if dbc_message.is_container:
            raise sec.error('message', f"container message '{name}' is not supported")
        signals_by_name = {s.name: s for s in dbc_message.signals}

        period_s = sec.number('period_s', None, exclusive_minimum=0.0) \
            if sec.data.get('period_s') is not None else None
        if period_s is None and dbc_message.cycle_time:
            period_s = dbc_message.cycle_time / 1000.0
        if period_s is None and section_name == 'measurement':
            raise sec.error('period_s', f"missing, and message '{name}' has no GenMsgCycleTime "
                                        f'in {self.dbc_name}')

        mux_signal: str | None = None
        stride: int | None = None
        first = 0
        dbc_muxes = [s.name for s in dbc_message.signals if s.is_multiplexer]
        if sec.has('multiplexer'):
            mux_sec = sec.section('multiplexer')
            mux_sec.reject_unknown(('signal', 'stride', 'first'))
            mux_signal = mux_sec.string('signal')
            if mux_signal not in dbc_muxes:
                known = ', '.join(dbc_muxes) or 'none'
                raise mux_sec.error('signal', f"'{mux_signal}' is not a multiplexer of "
                                              f"message '{name}' (multiplexers: {known})")
            # no stride: absolute indices (each branch names its own signals)
            stride = mux_sec.integer('stride', None, minimum=1, maximum=1024) \
                if mux_sec.data.get('stride') is not None else None
            first = mux_sec.integer('first', 0, minimum=0)
            if stride is None and mux_sec.has('first'):
                raise mux_sec.error('first',
                                    'only with a stride (absolute indices need no first)')
        elif dbc_muxes:
            raise sec.error('multiplexer', f"missing: message '{name}' is multiplexed by "
                                           f"{', '.join(dbc_muxes)}")

        counter_signal: str | None = None
        counter_modulo = 0
        if sec.has('counter'):
            counter_signal = sec.string('counter')
            counter = signals_by_name.get(counter_signal)
            if counter is None:
                raise sec.error('counter', f"unknown signal '{counter_signal}' in message "
                                           f"'{name}'"
                                + _suggest(counter_signal, list(signals_by_name)))
            if counter.is_signed or counter.multiplexer_ids or counter.is_multiplexer \
                    or counter.conversion.is_float:
                raise sec.error('counter', f"'{counter_signal}' must be an unsigned, not "
                                           'multiplexed integer signal')
            counter_modulo = 1 << counter.length

        signal_maps: list[SignalMap] = []
        used = {mux_signal, counter_signal}
        mux_values_used: set[int] = set()
        element_kind: str | None = None
        for sig_sec in sec.sections('signals'):
            sig_map, dbc_signal = self._signal(sig_sec, name, signals_by_name, fields,
                                               mux_signal, stride, used)
            used.add(sig_map.signal)
            kind = 'contactor' if sig_map.field in CONTACTOR_COMMAND_FIELDS else (
                'balancing' if sig_map.field == 'cell_bleed' else 'measurement')
            if element_kind is not None and kind != element_kind:
                raise sig_sec.error('field', f"'{sig_map.field}' cannot share message '{name}' "
                                             'with the fields of another command')
            element_kind = kind
            length = self.lengths[fields[sig_map.field][1]]
            branches = None if mux_signal is None else \
                _branch_values(dbc_signal, mux_signal, signals_by_name)
            frame_muxes: Sequence[int | None]
            if mux_signal is None or stride is None:
                frame_muxes = (None,)        # the element does not depend on the branch
            else:
                if branches is None:
                    raise sig_sec.error('signal', f"'{sig_map.signal}' is not in a branch of "
                                                  f"'{mux_signal}' (give no stride for absolute "
                                                  'indices)')
                frame_muxes = [m for m in branches if m >= first]
                if not frame_muxes:
                    raise sig_sec.error('signal', f"'{sig_map.signal}' is not multiplexed by "
                                                  f"'{mux_signal}' with values >= {first}")
            nbits = sig_map.bits if sig_map.bitmask else 1
            carries = False                  # at least one element inside the pack
            for mux in frame_muxes:
                for bit in range(nbits):
                    element = element_of(sig_map.index, stride, first, mux, bit)
                    if element >= length:
                        if (mux_signal is None or stride is None) and not sig_map.bitmask:
                            raise sig_sec.error('index', f'{sig_map.index} out of range: '
                                                         f'{sig_map.field} has {length} elements')
                        continue
                    where = f'{name}.{sig_map.signal}' + ('' if mux is None else f' (mux {mux})')
                    key = (sig_map.field, element)
                    if key in owners:
                        target = sig_map.field if fields[sig_map.field][1] is None \
                            else f'{sig_map.field}[{element}]'
                        raise sig_sec.error('field', f'{target} already mapped by {owners[key]}')
                    owners[key] = where + self.owner_suffix
                    carries = True
                    if mux is not None:
                        mux_values_used.add(mux)
            if carries and stride is None and branches is not None:
                mux_values_used.update(branches)
            signal_maps.append(sig_map)
        if not signal_maps:
            raise sec.error('signals', 'expected at least one signal')
        frame_id = dbc_message.frame_id
        self.frame_ids[(frame_id, dbc_message.is_extended_frame)] = name
        others = tuple(s.name for s in dbc_message.signals if s.name not in used)
        return MessageMap(
            name=name, frame_id=frame_id, is_extended=dbc_message.is_extended_frame,
            length=dbc_message.length, period_s=period_s, mux_signal=mux_signal,
            mux_stride=stride, mux_first=first, mux_values=tuple(sorted(mux_values_used)),
            counter_signal=counter_signal, counter_modulo=counter_modulo, signals=signal_maps,
            dbc_message=dbc_message,
            kind='' if element_kind == 'measurement' or element_kind is None else element_kind,
            other_signals=others)

    def _signal(self, sec: Section, message_name: str, signals_by_name: dict[str, Signal],
                fields: dict[str, tuple[str, str | None]], mux_signal: str | None,
                stride: int | None, used: Collection[str | None]) -> tuple[SignalMap, Signal]:
        sec.reject_unknown(_SIGNAL_KEYS)
        name = sec.string('signal')
        dbc_signal = signals_by_name.get(name)
        if dbc_signal is None:
            raise sec.error('signal', f"unknown signal '{name}' in message '{message_name}'"
                            + _suggest(name, list(signals_by_name)))
        if name in used:
            raise sec.error('signal', f"'{name}' is already used in message '{message_name}'")
        if dbc_signal.is_multiplexer:
            raise sec.error('signal', f"'{name}' is a multiplexer, not a value")
        if dbc_signal.multiplexer_ids and mux_signal is None:
            raise sec.error('signal', f"'{name}' is multiplexed: give the message a multiplexer")
        field_name = sec.string('field', choices=list(fields))
        kind, length_of = fields[field_name]
        if kind == 'float' and is_boolean_signal(dbc_signal):
            what = 'a 1-bit signal' if dbc_signal.length == 1 else \
                'a boolean signal (choices ' + ', '.join(
                    f"{int(k)} '{v}'" for k, v in sorted((dbc_signal.choices or {}).items())) + ')'
            raise sec.error('field', f"'{field_name}' is a value, but '{name}' in message "
                                     f"'{message_name}' is {what}: a flag cannot be mapped "
                                     'onto it')
        bitmask = sec.boolean('bitmask', False)
        if bitmask and (kind != 'bool' or length_of is None):
            raise sec.error('bitmask', f"only for arrays of booleans, not '{field_name}'")
        if length_of is None:
            if sec.has('index'):
                raise sec.error('index', f"'{field_name}' is a single value, not an array")
            index = 0
        else:
            index = sec.integer('index', 0, minimum=0) if bitmask \
                else sec.integer('index', minimum=0)
            if stride is not None and not bitmask and index >= stride:
                raise sec.error('index', f'{index} out of range: expected 0 <= index < '
                                         f'multiplexer stride {stride}')
        if dbc_signal.conversion.is_float:
            raise sec.error('signal', f"'{name}' is a floating-point signal: not supported")
        bits = dbc_signal.length
        if bitmask and stride is not None and bits > stride:
            raise sec.error('bitmask', f"'{name}' has {bits} bits but the multiplexer stride "
                                       f'is {stride}')
        if bitmask and (sec.has('scale') or sec.has('offset')):
            raise sec.error('scale' if sec.has('scale') else 'offset',
                            'a bitmask takes its bits as they are: no scale or offset')
        scale = sec.number('scale', 1.0)
        if scale == 0.0:
            raise sec.error('scale', 'must not be 0')
        offset = sec.number('offset', 0.0)
        type_min, type_max = type_range(dbc_signal)
        is_bool = kind == 'bool'
        invalid_raw = invalid_raw_of(sec, dbc_signal, marker_by_default=not is_bool)
        dbc_scale = float(dbc_signal.scale)
        dbc_offset = float(dbc_signal.offset)
        raw_min, raw_max = type_min, type_max
        if not is_bool and not bitmask:
            # valid raw range: the DBC's [minimum|maximum] in raw units, within the type
            lo = dbc_signal.minimum
            hi = dbc_signal.maximum
            bounds: list[float | None] = []
            for value in (lo, hi):
                if value is None:
                    bounds.append(None)
                    continue
                bounds.append((value - dbc_offset) / dbc_scale)
            if dbc_scale < 0:
                bounds.reverse()
            if bounds[0] is not None:
                raw_min = max(type_min, math.ceil(bounds[0] - 1e-9))
            if bounds[1] is not None:
                raw_max = min(type_max, math.floor(bounds[1] + 1e-9))
            if raw_min > raw_max:
                raise sec.error('signal', f"'{name}' has an empty [minimum|maximum] range in "
                                          f'{self.dbc_name}')
        flag, flag_invalid, error, error_mask = _validity(sec, dbc_signal, signals_by_name,
                                                          message_name)
        return SignalMap(
            signal=name, field=field_name, index=index, bitmask=bitmask,
            gain=dbc_scale * scale, bias=dbc_offset * scale + offset, invalid_raw=invalid_raw,
            raw_min=raw_min, raw_max=raw_max, type_min=type_min, type_max=type_max, bits=bits,
            is_bool=is_bool, where=sec.prefix, flag=flag, flag_invalid=flag_invalid,
            error=error, error_mask=error_mask), dbc_signal


def _branch_chain(dbc_signal: Signal, signals_by_name: dict[str, Signal]) -> dict[str, set[int]]:
    """{multiplexer name: values} that must hold for ``dbc_signal`` to be in a frame."""
    chain: dict[str, set[int]] = {}
    signal = dbc_signal
    while signal.multiplexer_signal is not None:
        chain[signal.multiplexer_signal] = set(signal.multiplexer_ids or ())
        signal = signals_by_name[signal.multiplexer_signal]
    return chain


def _always_beside(flag_signal: Signal, value_signal: Signal,
                   signals_by_name: dict[str, Signal]) -> bool:
    """True if every frame carrying ``value_signal`` carries ``flag_signal`` too."""
    value_chain = _branch_chain(value_signal, signals_by_name)
    for mux, values in _branch_chain(flag_signal, signals_by_name).items():
        if mux not in value_chain or not value_chain[mux] <= values:
            return False
    return True


def _validity(sec: Section, dbc_signal: Signal, signals_by_name: dict[str, Signal],
              message_name: str) -> tuple[str | None, int, str | None, int]:
    """(invalid_flag, invalid_when, error_bits, error_mask) of one mapped signal, checked:
    the signals exist in the same message and in every frame that carries the value.
    """
    found: dict[str, Signal] = {}
    for key in ('invalid_flag', 'error_bits'):
        if not sec.has(key):
            continue
        name = sec.string(key)
        other = signals_by_name.get(name)
        if other is None:
            raise sec.error(key, f"unknown signal '{name}' in message '{message_name}'"
                            + _suggest(name, list(signals_by_name)))
        if name == dbc_signal.name or other.is_multiplexer:
            raise sec.error(key, f"'{name}' is " + ('the value itself' if name == dbc_signal.name
                                                    else 'a multiplexer') + ', not a flag')
        if not _always_beside(other, dbc_signal, signals_by_name):
            raise sec.error(key, f"'{name}' is not in every frame that carries "
                                 f"'{dbc_signal.name}' (another multiplexer branch)")
        if other.conversion.is_float:
            raise sec.error(key, f"'{name}' is a floating-point signal, not a flag")
        found[key] = other
    flag_invalid = 1
    if 'invalid_flag' in found:
        flag = found['invalid_flag']
        if not is_boolean_signal(flag):
            raise sec.error('invalid_flag', f"'{flag.name}' has {flag.length} bits: an "
                                            'invalid_flag is a 1-bit or boolean signal '
                                            '(error_bits takes a multi-bit one)')
        flag_invalid = sec.integer('invalid_when', 1, minimum=0, maximum=1)
    elif sec.has('invalid_when'):
        raise sec.error('invalid_when', 'only with an invalid_flag')
    error_mask = 0
    if 'error_bits' in found:
        error = found['error_bits']
        if error.is_signed:
            raise sec.error('error_bits', f"'{error.name}' is signed: error bits are an "
                                          'unsigned signal')
        full = (1 << error.length) - 1
        error_mask = sec.integer('error_mask', full, minimum=1, maximum=full)
    elif sec.has('error_mask'):
        raise sec.error('error_mask', 'only with error_bits')
    return (found['invalid_flag'].name if 'invalid_flag' in found else None, flag_invalid,
            found['error_bits'].name if 'error_bits' in found else None, error_mask)
