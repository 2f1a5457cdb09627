"""Opening a python-can bus from parameters, with reconnect and exponential back-off.

The same code opens the loopback hub (``interface: socketcand``, host, port, channel) and real
hardware (``socketcan`` / ``can0``, ``pcan``, ``kvaser``, ...). :class:`CanBus` never raises
from ``recv`` / ``send``: a lost device, a closed TCP connection or bus-off closes the bus,
counts it, and reopens it after a back-off that doubles from ``reconnect_min_s`` up to
``reconnect_max_s``.

The profile's ``can:`` section is read here (:func:`load_can_settings`) so the driver and the
pack simulator share one validated reading of it.
"""
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field, replace

import can
import psutil

from .can_devices import CanDevice, device_name
from .command_deadline import CAN_FAILSAFE_FIELDS
from .contract import CAN_HUB_PORT
from .profile import config_dir

log = logging.getLogger(__name__)

CAN_SECTION_FIELDS = ('dbc', 'mapping', 'interface', 'channel', 'host', 'port', 'bitrate',
                      'devices', 'bus_options', 'reconnect_min_s', 'reconnect_max_s',
                      'stale_timeout_s',
                      'publish_rate_hz', 'publish_can_rx', 'prompt_min_interval_s',
                      'prompt_current_a', 'prompt_cell_voltage_v',
                      'control', 'pack_bms') + CAN_FAILSAFE_FIELDS   # core/pack_report.py
CAN_ERR_BUSOFF = 0x40      # SocketCAN error class bit in the id of an error frame
_SOCKETCAND_LOGGER = 'can.interfaces.socketcand.socketcand'


@dataclass(frozen=True)
class BusConfig:
    """Parameters of one python-can bus."""

    interface: str = 'socketcand'
    channel: str = 'vcan0'
    host: str = '127.0.0.1'        # socketcand only
    port: int = CAN_HUB_PORT       # socketcand only
    bitrate: int = 500000          # ignored by socketcand (the hub has no bit timing)
    options: dict = field(default_factory=dict)   # extra python-can keyword arguments
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 5.0

    def bus_kwargs(self):
        """Keyword arguments of can.Bus for this configuration."""
        kwargs = {'interface': self.interface, 'channel': self.channel}
        if self.interface == 'socketcand':
            kwargs.update(host=self.host, port=self.port)
        elif self.interface not in ('virtual',):
            kwargs['bitrate'] = self.bitrate
        kwargs.update(self.options)
        return kwargs

    def describe(self):
        """The bus for logs: interface, channel and address or bitrate."""
        if self.interface == 'socketcand':
            return f'socketcand {self.channel}@{self.host}:{self.port}'
        return f'{self.interface} {self.channel} {self.bitrate} bit/s'


@dataclass(frozen=True)
class CanSettings:
    """The validated ``can:`` section of a profile."""

    dbc_path: str
    mapping_path: str
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
    prompt_cell_voltage_v: tuple = ()
    # several devices on the bus (core/can_devices.CanDevice; () = the single dbc / mapping;
    # then dbc_path and mapping_path are tuples of the devices' paths, a None mapping: ignored)
    devices: tuple = ()
    devices_where: tuple = None    # (profile file, 'can.devices') for errors

    def with_overrides(self, interface=None, channel=None, host=None, port=None, bitrate=None):
        """The same settings with non-empty overrides (node parameters) applied to the bus."""
        changes = {k: v for k, v in dict(interface=interface, channel=channel, host=host,
                                         port=port, bitrate=bitrate).items() if v}
        return replace(self, bus=replace(self.bus, **changes))


def load_can_settings(profile):
    """Read and validate the ``can:`` section of a bms_ros.core.profile.Profile."""
    sec = profile.section('can')
    sec.reject_unknown(CAN_SECTION_FIELDS)
    default_dir = os.path.join(config_dir(), 'can')
    devices, devices_where = _devices(sec), None
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


def _devices(sec):
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


def _cell_window(sec):
    """``prompt_cell_voltage_v``: [low, high] V with low < high, or absent (no window)."""
    if not sec.has('prompt_cell_voltage_v'):
        return ()
    low, high = sec.numbers('prompt_cell_voltage_v', length=2, minimum=0.0, maximum=10.0)
    if not low < high:
        raise sec.error('prompt_cell_voltage_v', f'expected [low, high] with low < high, '
                                                 f'got [{low}, {high}]')
    return (low, high)


def quiet_socketcand_logging():
    """python-can 4.6.1's socketcand client logs a warning whenever a TCP read ends inside a
    frame, which is normal at high rates; keep only its errors.
    """
    logging.getLogger(_SOCKETCAND_LOGGER).setLevel(logging.ERROR)


# opening a socketcand bus and finding its connection among this process's sockets happen
# under one lock, so two buses opened at once in one process cannot take each other's socket
_SOCKETCAND_OPEN_LOCK = threading.Lock()


def _connection_fds(host, port):
    """File descriptors of this process's TCP connections to ``host``:``port``."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port,
                                                                type=socket.SOCK_STREAM)}
    except OSError:
        addresses = set()
    try:
        connections = psutil.Process().net_connections(kind='tcp')
    except psutil.Error as error:
        log.warning('cannot list this process\'s connections: %s', error)
        return set()
    return {c.fd for c in connections if c.fd >= 0 and c.raddr and c.raddr.port == port
            and (not addresses or c.raddr.ip in addresses)}


def _watch_socket(new_fds, where):
    """A duplicate of the one new connection's socket, to peek at (None if not exactly one).

    python-can 4.6.1's socketcand client treats a closed TCP connection as "no data" and has
    no public way to reach its socket; the duplicate (its own descriptor) shows the close.
    """
    if len(new_fds) != 1:
        log.warning('%s: %d new connections found, a closed connection is detected on send only',
                    where, len(new_fds))
        return None
    try:
        return socket.socket(fileno=os.dup(next(iter(new_fds))))
    except OSError as error:
        log.warning('%s: cannot watch the connection (%s), a closed connection is detected on '
                    'send only', where, error)
        return None


class CanBus:
    """A python-can bus that reopens itself; ``recv`` and ``send`` never raise."""

    def __init__(self, config, opener=None):
        self.config = config
        self._opener = opener or (lambda cfg: can.Bus(**cfg.bus_kwargs()))
        self._bus = None
        self._watch = None                     # socketcand: our duplicate of its socket
        self._lock = threading.Lock()          # guards opening / closing, not each frame
        self._delay_s = config.reconnect_min_s
        self._next_attempt = 0.0
        self._ever_connected = False
        self._closed = False
        self.state = 'disconnected'            # 'connected', 'disconnected', 'closed'
        self.last_error = ''
        self.counters = dict(opens=0, reconnects=0, open_failures=0, connection_lost=0,
                             bus_off=0, error_frames=0, rx_frames=0, tx_frames=0,
                             tx_dropped=0, tx_errors=0)
        if config.interface == 'socketcand':
            quiet_socketcand_logging()

    @property
    def connected(self):
        """True while the bus is open."""
        return self._bus is not None

    def open(self):
        """Try to open the bus once now; True on success (failures are counted, not raised)."""
        with self._lock:
            return self._open_locked()

    def _open_locked(self):
        if self._bus is not None:
            return True
        if self._closed:
            return False
        cfg = self.config
        try:
            if cfg.interface == 'socketcand':
                with _SOCKETCAND_OPEN_LOCK:
                    # python-can's socketcand client retries connect() in a busy loop for 10 s;
                    # probe first so a missing hub costs one refused connect
                    with socket.create_connection((cfg.host, cfg.port), timeout=1.0):
                        pass
                    before = _connection_fds(cfg.host, cfg.port)
                    bus = self._opener(cfg)
                    self._watch = _watch_socket(_connection_fds(cfg.host, cfg.port) - before,
                                                cfg.describe())
            else:
                bus = self._opener(cfg)
        except Exception as error:  # noqa: BLE001  each interface raises its own types
            self.counters['open_failures'] += 1
            self._fail(f'open {cfg.describe()} failed: {error}')
            return False
        self._bus = bus
        self.state = 'connected'
        self.counters['opens'] += 1
        if self._ever_connected:
            self.counters['reconnects'] += 1
            log.warning('CAN bus %s reconnected', cfg.describe())
        else:
            log.info('CAN bus %s open', cfg.describe())
        self._ever_connected = True
        self._delay_s = cfg.reconnect_min_s
        return True

    def _fail(self, reason):
        """Note a failure and schedule the next attempt with exponential back-off."""
        if reason != self.last_error:
            log.warning('%s; retrying in %.2f s', reason, self._delay_s)
        self.last_error = reason
        self.state = 'closed' if self._closed else 'disconnected'
        self._next_attempt = time.monotonic() + self._delay_s
        self._delay_s = min(self._delay_s * 2.0, self.config.reconnect_max_s)

    def _drop(self, reason, counter='connection_lost'):
        """Close a bus that failed; the next recv/send reopens it after the back-off."""
        with self._lock:
            bus, self._bus = self._bus, None
            if bus is None:
                return
            self.counters[counter] += 1
            self._close_watch()
            try:
                bus.shutdown()
            except Exception:  # noqa: BLE001
                pass
            self._fail(reason)

    def _close_watch(self):
        """Close our duplicate of the socketcand socket (else the connection would stay up)."""
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()

    def _ensure(self, timeout_s):
        """The open bus, reopening it when due; None (after sleeping up to timeout_s) if down."""
        bus = self._bus
        if bus is not None:
            return bus
        wait = self._next_attempt - time.monotonic()
        if wait > 0:
            time.sleep(max(0.0, min(wait, timeout_s)))
            if self._next_attempt - time.monotonic() > 0:
                return None
        with self._lock:
            self._open_locked()
        return self._bus

    def recv(self, timeout_s):
        """One frame, or None after ``timeout_s`` (also while disconnected). Never raises."""
        bus = self._ensure(timeout_s)
        if bus is None:
            return None
        try:
            msg = bus.recv(timeout_s)
        except Exception as error:  # noqa: BLE001  CanOperationError, OSError, ...
            self._drop(f'receive on {self.config.describe()} failed: {error}')
            return None
        if msg is None:
            self._check_alive(bus)
            return None
        self.counters['rx_frames'] += 1
        if msg.is_error_frame:
            self.counters['error_frames'] += 1
            if msg.arbitration_id & CAN_ERR_BUSOFF:
                self._drop(f'{self.config.describe()}: bus-off', counter='bus_off')
        return msg

    def recv_batch(self, timeout_s, max_frames=256):
        """Up to ``max_frames`` frames: waits ``timeout_s`` for the first, then takes the queued."""
        first = self.recv(timeout_s)
        if first is None:
            return []
        batch = [first]
        bus = self._bus
        while bus is not None and len(batch) < max_frames:
            try:
                msg = bus.recv(0.0)
            except Exception as error:  # noqa: BLE001
                self._drop(f'receive on {self.config.describe()} failed: {error}')
                break
            if msg is None:
                break
            self.counters['rx_frames'] += 1
            if msg.is_error_frame:
                self.counters['error_frames'] += 1
                if msg.arbitration_id & CAN_ERR_BUSOFF:
                    batch.append(msg)
                    self._drop(f'{self.config.describe()}: bus-off', counter='bus_off')
                    break
            batch.append(msg)
        return batch

    def _check_alive(self, bus):
        """Detect a dead link that the interface reports only as silence."""
        if self.config.interface == 'socketcand':
            # python-can 4.6.1's socketcand client treats a closed TCP connection as "no data"
            sock = self._watch
            if sock is None:
                return
            try:
                if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b'':
                    self._drop(f'{self.config.describe()}: connection closed by the server')
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as error:
                self._drop(f'{self.config.describe()}: {error}')
            return
        try:
            if bus.state == can.BusState.ERROR:
                self._drop(f'{self.config.describe()}: controller in error state', 'bus_off')
        except Exception:  # noqa: BLE001  not every interface knows its state
            pass

    def send(self, msg):
        """Send one frame; False (counted) if the bus is down or the send failed."""
        bus = self._bus
        if bus is None:
            self.counters['tx_dropped'] += 1
            return False
        try:
            bus.send(msg)
        except Exception as error:  # noqa: BLE001
            self.counters['tx_errors'] += 1
            self._drop(f'send on {self.config.describe()} failed: {error}')
            return False
        self.counters['tx_frames'] += 1
        return True

    def close(self):
        """Shut the bus down for good."""
        with self._lock:
            self._closed = True
            bus, self._bus = self._bus, None
            self.state = 'closed'
            self._close_watch()
        if bus is not None:
            try:
                bus.shutdown()
            except Exception:  # noqa: BLE001
                pass
