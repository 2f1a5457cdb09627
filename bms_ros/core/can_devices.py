"""Several devices on one CAN bus: a DBC and a mapping each, merged into one mapping.

A bus carries the BMS, and often a current sensor, an insulation monitor, a charger, each
with its own DBC. The profile lists them (``can: {devices: [{name, dbc, mapping}, ...]}``,
docs/can.md); each device's mapping provides its part of the fields. Checked at load, each a
ConfigError: a frame id defined differently in two DBCs (both files, the id in hex, both
message names), a field element or a message mapped by two devices (both mapping files), the
required fields and the coverage of every cell and sensor over all devices together. A device
without a mapping is known and ignored: its frames are not ``unknown_id``.

The result is a :class:`BusMapping` (a CanMapping whose measurement and commands are those of
all devices, each MessageMap naming its ``device``), so the assembler and the encoders work on
it unchanged and dispatch by frame id.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, cast

import cantools
from cantools.database.can import Database, Message

from .can_mapping import (
    COMMAND_FIELDS,
    CONTACTOR_COMMAND_FIELDS,
    MEASUREMENT_FIELDS,
    REQUIRED_COMMAND_FIELDS,
    REQUIRED_MEASUREMENT_FIELDS,
    CanMapping,
    MessageMap,
    _format_indices,
    _Loader,
    _suggest,
    is_boolean_signal,
    load_dbc,
    load_mapping,
)
from .config import Section, load_yaml
from .errors import ConfigError

_NAME = re.compile(r'^[A-Za-z0-9_]+$')
# sections of one device's mapping file (pack_report / state_request: core/pack_report.py)
_DEVICE_SECTIONS = ('measurement', 'commands', 'pack_report', 'state_request')


@dataclass(frozen=True)
class CanDevice:
    """One device on the bus: its DBC and its mapping (None: its frames are ignored)."""

    name: str
    dbc_path: str
    mapping_path: str | None = None


@dataclass
class DeviceMapping:
    """One device's part of a :class:`BusMapping`."""

    name: str
    dbc_path: str
    mapping_path: str | None  # None: an ignored device
    database: Database
    measurement: list[MessageMap]
    commands: list[MessageMap]


@dataclass
class BusMapping(CanMapping):
    """A CanMapping over several devices (``devices``; ``frame_devices``: (frame id,
    is_extended) -> name of the device whose DBC defines it, for every DBC message).
    """

    devices: tuple[DeviceMapping, ...] = ()
    frame_devices: dict[tuple[int, bool], str] = field(default_factory=dict)

    def ignored_keys(self) -> set[tuple[int, bool]]:
        """(frame id, is_extended) of the devices without a mapping."""
        ignored = {d.name for d in self.devices if d.mapping_path is None}
        return {k for k, name in self.frame_devices.items() if name in ignored}


def device_name(dbc_path: str | os.PathLike[str]) -> str:
    """Default name of a device: its DBC's file name without the suffix."""
    return os.path.splitext(os.path.basename(os.fspath(dbc_path)))[0]


def devices_of(mapping: CanMapping) -> tuple[DeviceMapping, ...]:
    """The devices of a mapping (a plain CanMapping is one device named after its DBC)."""
    if isinstance(mapping, BusMapping):
        return mapping.devices
    return (DeviceMapping(device_name(mapping.dbc_path), mapping.dbc_path, mapping.path,
                          mapping.database, mapping.measurement, mapping.commands),)


def frame_devices_of(mapping: CanMapping) -> dict[tuple[int, bool], str]:
    """(frame id, is_extended) -> device name, for every message of every DBC."""
    if isinstance(mapping, BusMapping):
        return mapping.frame_devices
    name = devices_of(mapping)[0].name
    return {(m.frame_id, m.is_extended_frame): name for m in mapping.database.messages}


def _same_definition(a: Message, b: Message) -> bool:
    """The same message described in two DBCs (name, length and signal layout)."""
    def layout(m: Message) -> tuple[Any, ...]:
        return (m.name, m.length, sorted((s.name, s.start, s.length, s.byte_order, s.is_signed,
                                          float(s.scale), float(s.offset)) for s in m.signals))
    return layout(a) == layout(b)


def _id_text(frame_id: int, is_extended: bool) -> str:
    return f"frame id 0x{frame_id:X} ({'extended' if is_extended else 'standard'})"


def load_devices(devices: Iterable[CanDevice], cells_series: int, temperature_sensors: int,
                 where: tuple[str, str] | None = None) -> BusMapping:
    """Load and validate the mappings of ``devices`` (CanDevice) against their DBCs into one
    BusMapping; ``where`` = (file, field) of the device list for errors (the profile's
    ``can.devices``). One device with a mapping loads exactly as :func:`load_mapping`.
    """
    devices = list(devices)
    where_path, where_field = where or (os.fspath(devices[0].dbc_path) if devices else '',
                                        'devices')
    if not devices:
        raise ConfigError(where_path, where_field, 'expected at least one device')
    names: dict[str, int] = {}
    for i, device in enumerate(devices):
        if not _NAME.match(device.name or ''):
            raise ConfigError(where_path, f'{where_field}[{i}].name',
                              f'expected letters, digits and _, got {device.name!r}')
        if device.name in names:
            raise ConfigError(where_path, f'{where_field}[{i}].name',
                              f"device '{device.name}' is listed twice "
                              f'({where_field}[{names[device.name]}])')
        names[device.name] = i
    mapped = [d for d in devices if d.mapping_path is not None]
    if not mapped:
        raise ConfigError(where_path, where_field, 'no device has a mapping')
    databases = [load_dbc(d.dbc_path) for d in devices]
    frame_devices = _check_clashes(devices, databases, where_path, where_field)
    if len(mapped) == 1:      # one mapping (beside ignored devices): exactly load_mapping
        k = devices.index(mapped[0])
        single = load_mapping(cast(str, mapped[0].mapping_path), mapped[0].dbc_path, cells_series,
                              temperature_sensors, database=databases[k])
        return _bus_mapping(single, devices, databases, frame_devices)

    owners: dict[str, dict[tuple[str, int], str]] = {'measurement': {}, 'commands': {}}
    message_owner: dict[tuple[int, bool], str] = {}   # -> mapping file that maps it
    # 'pack_report' / 'state_request' -> (mapping file, its map)
    pack_parts: dict[str, tuple[str, Any]] = {}
    parts: list[DeviceMapping] = []
    for device, database in zip(devices, databases):
        if device.mapping_path is None:
            parts.append(DeviceMapping(device.name, os.fspath(device.dbc_path), None, database,
                                       [], []))
            continue
        path = os.fspath(device.mapping_path)
        top = Section(load_yaml(path), path)
        top.reject_unknown(_DEVICE_SECTIONS)
        if not any(top.has(k) for k in _DEVICE_SECTIONS):
            raise top.error('measurement', 'expected measurement, commands, pack_report or '
                                           'state_request: a device without any needs no mapping')
        loader = _Loader(top, database, os.path.basename(os.fspath(device.dbc_path)),
                         cells_series, temperature_sensors)
        if top.has('pack_report') or top.has('state_request'):
            # control style (b), the pack's own BMS: its loader lives in core/pack_report.py
            from .pack_report import load_report_sections
            found = dict(zip(('pack_report', 'state_request'), load_report_sections(
                top, database, loader.dbc_name, _suggest, is_boolean_signal)))
            for part, value in found.items():
                if value is None:
                    continue
                if part in pack_parts:
                    raise top.error(part, f'{part} is mapped by {pack_parts[part][0]} too: one '
                                          'device maps it')
                pack_parts[part] = (path, value)
        loader.owner_suffix = f' in {path}'
        sections: dict[str, list[MessageMap]] = {}
        for section_name, known in (('measurement', MEASUREMENT_FIELDS),
                                    ('commands', COMMAND_FIELDS)):
            maps = loader.messages(section_name, known, owners[section_name], coverage=False) \
                if top.has(section_name) else []
            for k, mm in enumerate(maps):
                mm.device = device.name
                key = (mm.frame_id, mm.is_extended)
                if key in message_owner:
                    raise top.error(f'{section_name}[{k}].message',
                                    f"'{mm.name}' ({_id_text(*key)}) is mapped by "
                                    f'{message_owner[key]} too')
                message_owner[key] = path
            sections[section_name] = maps
        parts.append(DeviceMapping(device.name, os.fspath(device.dbc_path), path, database,
                                   sections['measurement'], sections['commands']))
    files = ', '.join(str(d.mapping_path) for d in mapped)
    lengths: dict[str | None, int] = {'cells': cells_series, 'sensors': temperature_sensors}
    # a pack taking a state request owns its contactors: their command is then optional,
    # unless a device maps part of it (as load_mapping rules)
    contactor_optional = 'state_request' in pack_parts and not any(
        f in CONTACTOR_COMMAND_FIELDS for f, _ in owners['commands'])
    for section_name, known, required in (
            ('measurement', MEASUREMENT_FIELDS, REQUIRED_MEASUREMENT_FIELDS),
            ('commands', COMMAND_FIELDS,
             () if contactor_optional else REQUIRED_COMMAND_FIELDS)):
        provided = {f for f, _ in owners[section_name]}
        missing = [f for f in required if f not in provided]
        if missing:
            raise ConfigError(where_path, where_field,
                              f'{section_name}: no device maps {", ".join(missing)} (required; '
                              f'mappings: {files})')
        for field_name, (_, length_of) in known.items():
            if length_of is None or field_name not in provided:
                continue
            covered = {e for f, e in owners[section_name] if f == field_name}
            missing_elements = set(range(lengths[length_of])) - covered
            if missing_elements:
                raise ConfigError(where_path, where_field,
                                  f'{section_name}: {field_name}'
                                  f'[{_format_indices(missing_elements)}] not covered by any '
                                  f'signal (mappings: {files})')
    messages: list[Message] = []
    seen: set[tuple[int, bool]] = set()
    for database in databases:
        for m in database.messages:
            key = (m.frame_id, m.is_extended_frame)
            if key not in seen:              # a shared, identical definition once
                seen.add(key)
                messages.append(m)
    first = next(p for p in parts if p.mapping_path is not None)
    first_path = str(first.mapping_path)    # (a mapped device: not None)
    # only when a device maps them (CanMapping has these fields with control style b)
    pack = {key: value for key, (_, value) in pack_parts.items()}
    return BusMapping(**pack,
        path=first_path, dbc_path=first.dbc_path, cells_series=cells_series,
        temperature_sensors=temperature_sensors,
        measurement=[m for p in parts for m in p.measurement],
        commands=[m for p in parts for m in p.commands],
        database=cantools.database.Database(messages=messages, strict=False),
        devices=tuple(parts), frame_devices=frame_devices)


def _check_clashes(devices: Sequence[CanDevice], databases: Sequence[Database], where_path: str,
                   where_field: str) -> dict[tuple[int, bool], str]:
    """(frame id, is_extended) -> device name; ConfigError on an id two DBCs define differently."""
    seen: dict[tuple[int, bool], tuple[CanDevice, Message]] = {}
    for i, (device, database) in enumerate(zip(devices, databases)):
        for message in database.messages:
            key = (message.frame_id, message.is_extended_frame)
            if key not in seen:
                seen[key] = (device, message)
                continue
            other_device, other = seen[key]
            if other_device is device or _same_definition(other, message):
                continue
            raise ConfigError(where_path, f'{where_field}[{i}].dbc',
                              f"{_id_text(*key)} is '{message.name}' in "
                              f"{os.fspath(device.dbc_path)} and '{other.name}' in "
                              f'{os.fspath(other_device.dbc_path)}')
    return {key: device.name for key, (device, _) in seen.items()}


def _bus_mapping(single: CanMapping, devices: Sequence[CanDevice], databases: Sequence[Database],
                 frame_devices: dict[tuple[int, bool], str]) -> BusMapping:
    """The BusMapping of one mapped device (plus ignored ones) from its plain CanMapping."""
    parts: list[DeviceMapping] = []
    for device, database in zip(devices, databases):
        if device.mapping_path is None:
            parts.append(DeviceMapping(device.name, os.fspath(device.dbc_path), None, database,
                                       [], []))
            continue
        for mm in single.measurement + single.commands:
            mm.device = device.name
        parts.append(DeviceMapping(device.name, single.dbc_path, single.path, database,
                                   single.measurement, single.commands))
    base = {f.name: getattr(single, f.name) for f in fields(CanMapping)}
    return BusMapping(**base, devices=tuple(parts), frame_devices=frame_devices)
