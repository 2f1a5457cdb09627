"""Loading a mapping file and validating it against its DBC: :func:`load_mapping` gives a
:class:`~bms_ros.core.can_mapping_model.CanMapping` or a ConfigError naming the mapping file and
the dotted field (file format: core/can_mapping.py; validity rules: core/can_validity.py).
"""
from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Sequence
from typing import cast

import cantools
from cantools.database.can import Database, Signal

from .can_mapping_model import (
    COMMAND_FIELDS,
    CONTACTOR_COMMAND_FIELDS,
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
from .can_raw import invalid_raw_of, type_range
from .can_validity import branch_values, is_boolean_signal, valid_raw_range, validity
from .config import Section, load_yaml
from .errors import ConfigError

_MESSAGE_KEYS = ('message', 'period_s', 'multiplexer', 'counter', 'signals')
_SIGNAL_KEYS = ('signal', 'field', 'index', 'bitmask', 'scale', 'offset', 'invalid_raw',
                'invalid_flag', 'invalid_when', 'error_bits', 'error_mask')


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
                branch_values(dbc_signal, mux_signal, signals_by_name)
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
        raw_min, raw_max = (type_min, type_max) if is_bool or bitmask \
            else valid_raw_range(sec, dbc_signal, self.dbc_name)
        flag, flag_invalid, error, error_mask = validity(sec, dbc_signal, signals_by_name,
                                                          message_name)
        return SignalMap(
            signal=name, field=field_name, index=index, bitmask=bitmask,
            gain=dbc_scale * scale, bias=dbc_offset * scale + offset, invalid_raw=invalid_raw,
            raw_min=raw_min, raw_max=raw_max, type_min=type_min, type_max=type_max, bits=bits,
            is_bool=is_bool, where=sec.prefix, flag=flag, flag_invalid=flag_invalid,
            error=error, error_mask=error_mask), dbc_signal

