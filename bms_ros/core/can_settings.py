"""The profile's ``can:`` section, validated once for the driver and the pack simulator.

:func:`load_can_settings` reads it into :class:`CanSettings` (the bus's :class:`BusConfig`, the
DBC and mapping paths or several ``devices:``, the driver's publish settings); every bad value
is a ConfigError naming file and field. :func:`check_overrides` validates the can_driver's
parameters that override some of these values (ConfigError naming the parameter).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import can

from .can_devices import CanDevice, device_name
from .command_deadline import CAN_FAILSAFE_FIELDS
from .contract import CAN_HUB_PORT
from .errors import ConfigError
from .profile import config_dir

if TYPE_CHECKING:
    from .config import Section
    from .profile import Profile

CAN_SECTION_FIELDS = ('dbc', 'mapping', 'interface', 'channel', 'host', 'port', 'bitrate',
                      'devices', 'bus_options', 'reconnect_min_s', 'reconnect_max_s',
                      'stale_timeout_s',
                      'publish_rate_hz', 'publish_can_rx', 'prompt_min_interval_s',
                      'prompt_current_a', 'prompt_cell_voltage_v',
                      'control', 'pack_bms') + CAN_FAILSAFE_FIELDS   # core/pack_report
# can_driver parameters overriding the profile's can: values when set: name -> python type
DRIVER_OVERRIDES: dict[str, Any] = {   # Any: isinstance below must not narrow to object
    'interface': str, 'channel': str, 'host': str, 'port': int, 'bitrate': int,
    'stale_timeout_s': float, 'publish_rate_hz': float, 'publish_can_rx': bool,
    'prompt_min_interval_s': float,
}
BUS_OVERRIDES = ('interface', 'channel', 'host', 'port', 'bitrate')


@dataclass(frozen=True)
class BusConfig:
    """Parameters of one python-can bus."""

    interface: str = 'socketcand'
    channel: str = 'vcan0'
    host: str = '127.0.0.1'        # socketcand only
    port: int = CAN_HUB_PORT       # socketcand only
    bitrate: int = 500000          # ignored by socketcand (the hub has no bit timing)
    options: dict[str, Any] = field(default_factory=dict)   # extra python-can keyword arguments
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 5.0

    def bus_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of can.Bus for this configuration."""
        kwargs: dict[str, Any] = {'interface': self.interface, 'channel': self.channel}
        if self.interface == 'socketcand':
            kwargs.update(host=self.host, port=self.port)
        elif self.interface not in ('virtual',):
            kwargs['bitrate'] = self.bitrate
        kwargs.update(self.options)
        return kwargs

    def describe(self) -> str:
        """The bus for logs: interface, channel and address or bitrate."""
        if self.interface == 'socketcand':
            return f'socketcand {self.channel}@{self.host}:{self.port}'
        return f'{self.interface} {self.channel} {self.bitrate} bit/s'


@dataclass(frozen=True)
class CanSettings:
    """The validated ``can:`` section of a profile."""

    # one path each, or with devices: the devices' paths (a None mapping: ignored device)
    dbc_path: str | tuple[str, ...]
    mapping_path: str | tuple[str | None, ...]
    bus: BusConfig
    stale_timeout_s: float = 0.5
    publish_rate_hz: float = 10.0
    publish_can_rx: bool = True
    # publish at once when cell, temperature or contactor frames arrive, at most this often
    # (0 = only at publish_rate_hz): a limit crossing then waits for no timer
    prompt_min_interval_s: float = 0.02
    # a current frame with |I| at or above this publishes at once too (0 = never): set it at
    # or below the lowest over-current warning, above the currents of normal use
    prompt_current_a: float = 0.0
    # a cell voltage leaving this (low, high) window publishes at once, bypassing the minimum
    # interval (() = no window): the lowest under- and over-voltage warning levels
    prompt_cell_voltage_v: tuple[float, ...] = ()
    # several devices on the bus (core/can_devices.CanDevice; () = the single dbc / mapping;
    # then dbc_path and mapping_path are tuples of the devices' paths, a None mapping: ignored)
    devices: tuple[CanDevice, ...] = ()
    devices_where: tuple[str, str] | None = None    # (profile file, 'can.devices') for errors

    def with_overrides(self, interface: str | None = None, channel: str | None = None,
                       host: str | None = None, port: int | None = None,
                       bitrate: int | None = None) -> CanSettings:
        """The same settings with non-empty overrides (node parameters) applied to the bus."""
        given: dict[str, Any] = dict(interface=interface, channel=channel, host=host,
                                     port=port, bitrate=bitrate)
        changes = {k: v for k, v in given.items() if v}
        return replace(self, bus=replace(self.bus, **changes))


def load_can_settings(profile: Profile) -> CanSettings:
    """Read and validate the ``can:`` section of a bms_ros.core.profile.Profile."""
    sec = profile.section('can')
    sec.reject_unknown(CAN_SECTION_FIELDS)
    default_dir = os.path.join(config_dir(), 'can')
    devices, devices_where = _devices(sec), None
    dbc: str | tuple[str, ...]
    mapping: str | tuple[str | None, ...]
    if devices:
        dbc = tuple(d.dbc_path for d in devices)
        mapping = tuple(d.mapping_path for d in devices)
        devices_where = (sec.path, sec.field_name('devices'))
    else:
        dbc = sec.path_field('dbc', os.path.join(default_dir, 'bms_ros.dbc'))
        mapping = sec.path_field('mapping', os.path.join(default_dir, 'bms_ros_mapping.yaml'))
    options = sec.section('bus_options', {})
    for key in options.data:
        if not isinstance(key, str) or not key.isidentifier():
            raise options.error(str(key), 'expected a python-can keyword argument name')
    reconnect_min = sec.number('reconnect_min_s', 0.1, exclusive_minimum=0.0, maximum=60.0)
    bus = BusConfig(
        interface=sec.string('interface', 'socketcand',
                             choices=sorted(can.interfaces.VALID_INTERFACES)),
        channel=sec.string('channel', 'vcan0'),
        host=sec.string('host', '127.0.0.1'),
        port=sec.integer('port', CAN_HUB_PORT, minimum=1, maximum=65535),
        bitrate=sec.integer('bitrate', 500000, minimum=10000, maximum=8000000),
        options=dict(options.data),
        reconnect_min_s=reconnect_min,
        reconnect_max_s=sec.number('reconnect_max_s', 5.0, minimum=reconnect_min, maximum=600.0),
    )
    return CanSettings(
        dbc_path=dbc, mapping_path=mapping, bus=bus,
        stale_timeout_s=sec.number('stale_timeout_s', 0.5, exclusive_minimum=0.0, maximum=60.0),
        publish_rate_hz=sec.number('publish_rate_hz', 10.0, exclusive_minimum=0.0,
                                   maximum=1000.0),
        publish_can_rx=sec.boolean('publish_can_rx', True),
        prompt_min_interval_s=sec.number('prompt_min_interval_s', 0.02, minimum=0.0,
                                         maximum=10.0),
        prompt_current_a=sec.number('prompt_current_a', 0.0, minimum=0.0, maximum=1e5),
        prompt_cell_voltage_v=_cell_window(sec), devices=devices, devices_where=devices_where)


def _devices(sec: Section) -> tuple[CanDevice, ...]:
    """``devices``: CanDevice per entry (paths relative to the profile file), () if absent."""
    if not sec.has('devices'):
        return ()
    for single in ('dbc', 'mapping'):
        if sec.has(single):
            raise sec.error(single, 'give either dbc / mapping or devices, not both')
    items = sec.sections('devices')
    if not items:
        raise sec.error('devices', 'expected at least one device')
    devices = []
    for item in items:
        item.reject_unknown(('name', 'dbc', 'mapping'))
        dbc = item.path_field('dbc')
        mapping = item.path_field('mapping') if item.data.get('mapping') is not None else None
        devices.append(CanDevice(item.string('name', device_name(dbc)), dbc, mapping))
    return tuple(devices)


def _cell_window(sec: Section) -> tuple[float, ...]:
    """``prompt_cell_voltage_v``: [low, high] V with low < high, or absent (no window)."""
    if not sec.has('prompt_cell_voltage_v'):
        return ()
    low, high = sec.numbers('prompt_cell_voltage_v', length=2, minimum=0.0, maximum=10.0)
    if not low < high:
        raise sec.error('prompt_cell_voltage_v', f'expected [low, high] with low < high, '
                                                 f'got [{low}, {high}]')
    return (low, high)


def check_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """The can_driver's override parameters that are set (None or '' = not set), checked: the
    type of ``DRIVER_OVERRIDES`` (an int is taken for a float), numbers > 0
    (``prompt_min_interval_s`` 0..10, 0 = no prompt publish), a known python-can interface;
    ConfigError('parameter', name, ...) otherwise.
    """
    overrides: dict[str, Any] = {}
    for name, kind in DRIVER_OVERRIDES.items():
        value: Any = values.get(name)
        if value is None or value == '':
            continue
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError('parameter', name, f'expected {kind.__name__}, got {value!r}')
        if name == 'prompt_min_interval_s':
            if not 0.0 <= value <= 10.0:   # 0 turns the prompt publish off
                raise ConfigError('parameter', name,
                                  f'expected a number in 0..10, got {value!r}')
        elif kind in (int, float) and not value > 0:
            raise ConfigError('parameter', name, f'expected a number > 0, got {value!r}')
        if name == 'interface' and value not in can.interfaces.VALID_INTERFACES:
            raise ConfigError('parameter', name, 'expected one of '
                              f'{", ".join(sorted(can.interfaces.VALID_INTERFACES))}, '
                              f'got {value!r}')
        overrides[name] = value
    return overrides
