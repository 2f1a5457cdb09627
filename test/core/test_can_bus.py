"""CanBus without sockets: bus-off and send failures reopen, kwargs per interface; the profile's
can: section. Over a real hub: test/integration/test_can_bus_hub.py.
"""
import os
import time

import can
import pytest
import yaml

from bms_ros.core.can_bus import BusConfig, CanBus, load_can_settings
from bms_ros.core.errors import ConfigError
from bms_ros.core.profile import Profile, default_profile_path


def recv_until(bus, predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = bus.recv(0.05)
        if predicate(msg):
            return msg
    raise AssertionError(f'timeout: state {bus.state}, counters {bus.counters}')


class _FakeBus:
    """A bus that reports bus-off once, then frames."""

    def __init__(self, bus_off):
        self.frames = [can.Message(arbitration_id=0x40, is_error_frame=True)] if bus_off else []
        self.frames.append(can.Message(arbitration_id=0x100, data=[1]))
        self.closed = False

    def recv(self, timeout):
        return self.frames.pop(0) if self.frames else None

    def send(self, msg):
        raise can.CanOperationError('device unplugged')

    def shutdown(self):
        self.closed = True

    state = can.BusState.ACTIVE


def test_bus_off_and_send_failure_reopen_the_device():
    opened = []

    def opener(config):
        opened.append(_FakeBus(bus_off=not opened))
        return opened[-1]

    bus = CanBus(BusConfig(interface='virtual', reconnect_min_s=0.01), opener=opener)
    first = bus.recv(0.01)
    assert first.is_error_frame                         # still handed over to be counted
    assert bus.counters['bus_off'] == 1 and opened[0].closed
    msg = recv_until(bus, lambda m: m is not None)
    assert msg.arbitration_id == 0x100 and len(opened) == 2   # reopened: the new device's
    assert bus.send(can.Message(arbitration_id=1)) is False
    assert bus.counters['tx_errors'] == 1 and opened[1].closed
    assert 'device unplugged' in bus.last_error
    bus.close()


def test_bus_kwargs_per_interface():
    assert BusConfig(port=1234).bus_kwargs() == {
        'interface': 'socketcand', 'channel': 'vcan0', 'host': '127.0.0.1', 'port': 1234}
    assert BusConfig(interface='socketcan', channel='can0', bitrate=250000,
                     options={'fd': False}).bus_kwargs() == {
        'interface': 'socketcan', 'channel': 'can0', 'bitrate': 250000, 'fd': False}


def test_profile_can_section():
    settings = load_can_settings(Profile(default_profile_path()))
    assert settings.dbc_path.endswith('bms_ros.dbc')
    assert settings.bus.interface == 'socketcand' and settings.stale_timeout_s == 0.5
    changed = settings.with_overrides(interface='socketcan', channel='can1', port=None)
    assert (changed.bus.interface, changed.bus.channel, changed.bus.port) == \
        ('socketcan', 'can1', settings.bus.port)


@pytest.mark.parametrize('line, expected', [
    ('  interfce: socketcand', 'can.interfce: unknown field (known: '),
    ('  interface: vcan', 'can.interface: expected one of '),
    ('  port: 0', 'can.port: expected a number >= 1, got 0'),
    ('  stale_timeout_s: 0', 'can.stale_timeout_s: expected a number > 0.0, got 0'),
    ('  dbc: missing.dbc', 'can.dbc: file not found: '),
])
def test_profile_can_section_errors(tmp_path, line, expected):
    source = Profile(default_profile_path())
    with open(source.path, encoding='utf-8') as stream:
        pack = yaml.safe_load(stream)['pack']
    pack['cell'] = os.path.join(os.path.dirname(source.path), pack['cell'])
    path = tmp_path / 'profile.yaml'
    path.write_text(yaml.safe_dump({'pack': pack}) + 'can:\n' + line + '\n')
    with pytest.raises(ConfigError) as info:
        load_can_settings(Profile(path))
    assert str(info.value).startswith(f'{path}: {expected}')
