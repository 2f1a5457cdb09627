"""A python-can bus that reopens itself: :class:`CanBus`, shared by the driver and the simulator.

The same code opens the loopback hub (``interface: socketcand``, host, port, channel) and real
hardware (``socketcan`` / ``can0``, ``pcan``, ``kvaser``, ...). :class:`CanBus` never raises
from ``recv`` / ``send``: a lost device, a closed TCP connection or bus-off closes the bus,
counts it, and reopens it after a back-off that doubles from ``reconnect_min_s`` up to
``reconnect_max_s`` (core/can_backoff.py). A socketcand connection closed by the server is
seen by watching its socket (core/can_socket_watch.py).

The profile's ``can:`` section is read in core/can_settings.py; its names
(``load_can_settings``, ``BusConfig``, ``CanSettings``, ``CAN_SECTION_FIELDS``) and
``quiet_socketcand_logging`` are re-exported here, their import path before the split.
"""
from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import can

from .can_backoff import Backoff
from .can_settings import CAN_SECTION_FIELDS, BusConfig, CanSettings, load_can_settings
from .can_socket_watch import connection_lost, open_socketcand, quiet_socketcand_logging

__all__ = ['CAN_ERR_BUSOFF', 'CAN_SECTION_FIELDS', 'BusConfig', 'CanBus', 'CanSettings',
           'load_can_settings', 'quiet_socketcand_logging']

log = logging.getLogger(__name__)

CAN_ERR_BUSOFF = 0x40      # SocketCAN error class bit in the id of an error frame
ALIVE_CHECK_S = 0.05       # s between link checks of a polling receiver (timeout 0)

Opener = Callable[[BusConfig], can.BusABC]


def _open_bus(cfg: BusConfig) -> can.BusABC:
    """python-can's bus for ``cfg``."""
    return can.Bus(**cfg.bus_kwargs())


class CanBus:
    """A python-can bus that reopens itself; ``recv`` and ``send`` never raise."""

    def __init__(self, config: BusConfig, opener: Opener | None = None) -> None:
        self.config = config
        self._opener: Opener = opener or _open_bus
        self._bus: can.BusABC | None = None
        self._watch: socket.socket | None = None   # socketcand: our duplicate of its socket
        self._lock = threading.Lock()          # guards opening / closing, not each frame
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s)
        self._ever_connected = False
        self._closed = False
        self._alive_checked_s = -math.inf      # monotonic s of the last link check
        self.state = 'disconnected'            # 'connected', 'disconnected', 'closed'
        self.last_error = ''
        self.counters = dict(opens=0, reconnects=0, open_failures=0, connection_lost=0,
                             bus_off=0, error_frames=0, rx_frames=0, tx_frames=0,
                             tx_dropped=0, tx_errors=0)
        if config.interface == 'socketcand':
            quiet_socketcand_logging()

    @property
    def connected(self) -> bool:
        """True while the bus is open."""
        return self._bus is not None

    def open(self) -> bool:
        """Try to open the bus once now; True on success (failures are counted, not raised)."""
        with self._lock:
            return self._open_locked()

    def _open_locked(self) -> bool:
        if self._bus is not None:
            return True
        if self._closed:
            return False
        cfg = self.config
        try:
            if cfg.interface == 'socketcand':
                bus, self._watch = open_socketcand(self._opener, cfg)
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
        self._backoff.succeeded()
        return True

    def _fail(self, reason: str) -> None:
        """Note a failure and schedule the next attempt with exponential back-off."""
        if reason != self.last_error:
            log.warning('%s; retrying in %.2f s', reason, self._backoff.delay_s)
        self.last_error = reason
        self.state = 'closed' if self._closed else 'disconnected'
        self._backoff.failed()

    def _drop(self, reason: str, counter: str = 'connection_lost') -> None:
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

    def _close_watch(self) -> None:
        """Close our duplicate of the socketcand socket (else the connection would stay up)."""
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()

    def _ensure(self, timeout_s: float) -> can.BusABC | None:
        """The open bus, reopening it when due; None (after sleeping up to timeout_s) if down."""
        bus = self._bus
        if bus is not None:
            return bus
        wait = self._backoff.wait_s()
        if wait > 0:
            time.sleep(max(0.0, min(wait, timeout_s)))
            if self._backoff.wait_s() > 0:
                return None
        with self._lock:
            self._open_locked()
        return self._bus

    def recv(self, timeout_s: float) -> can.Message | None:
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
            now_s = time.monotonic()
            # a poll (timeout 0, the simulator's 100 ticks/s) checks the link at most every
            # ALIVE_CHECK_S: the check is a system call, and a lost link is found soon enough
            if timeout_s > 0.0 or now_s - self._alive_checked_s >= ALIVE_CHECK_S:
                self._alive_checked_s = now_s
                self._check_alive(bus)
            return None
        self.counters['rx_frames'] += 1
        if msg.is_error_frame:
            self.counters['error_frames'] += 1
            if msg.arbitration_id & CAN_ERR_BUSOFF:
                self._drop(f'{self.config.describe()}: bus-off', counter='bus_off')
        return msg

    def recv_batch(self, timeout_s: float, max_frames: int = 256) -> list[can.Message]:
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

    def _check_alive(self, bus: Any) -> None:
        """Detect a dead link that the interface reports only as silence."""
        if self.config.interface == 'socketcand':
            sock = self._watch
            if sock is None:
                return
            lost = connection_lost(sock)
            if lost is not None:
                self._drop(f'{self.config.describe()}: {lost}')
            return
        try:
            if bus.state == can.BusState.ERROR:
                self._drop(f'{self.config.describe()}: controller in error state', 'bus_off')
        except Exception:  # noqa: BLE001  not every interface knows its state
            pass

    def send(self, msg: can.Message) -> bool:
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

    def close(self) -> None:
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
