"""Watching a socketcand bus's TCP connection, which python-can does not report as lost.

python-can 4.6.1's socketcand client treats a closed TCP connection as "no data" and has no
public way to reach its socket: :func:`open_socketcand` finds the connection the client opened
among this process's own (psutil) and keeps a duplicate of it (its own descriptor), which
:func:`connection_lost` peeks at without reading.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    import can

    from .can_settings import BusConfig

log = logging.getLogger(__name__)

_SOCKETCAND_LOGGER = 'can.interfaces.socketcand.socketcand'
# opening a socketcand bus and finding its connection among this process's sockets happen
# under one lock, so two buses opened at once in one process cannot take each other's socket
_SOCKETCAND_OPEN_LOCK = threading.Lock()


def quiet_socketcand_logging() -> None:
    """python-can 4.6.1's socketcand client logs a warning whenever a TCP read ends inside a
    frame, which is normal at high rates; keep only its errors.
    """
    logging.getLogger(_SOCKETCAND_LOGGER).setLevel(logging.ERROR)


def open_socketcand(opener: Callable[[BusConfig], can.BusABC], cfg: BusConfig
                    ) -> tuple[can.BusABC, socket.socket | None]:
    """Open a socketcand bus with ``opener`` and a duplicate of its connection's socket (None
    if it cannot be told apart); raises what the probe or the opener raises.
    """
    with _SOCKETCAND_OPEN_LOCK:
        # python-can's socketcand client retries connect() in a busy loop for 10 s; probe
        # first so a missing hub costs one refused connect
        with socket.create_connection((cfg.host, cfg.port), timeout=1.0):
            pass
        before = _connection_fds(cfg.host, cfg.port)
        bus = opener(cfg)
        watch = _watch_socket(_connection_fds(cfg.host, cfg.port) - before, cfg.describe())
    return bus, watch


def connection_lost(sock: socket.socket) -> str | None:
    """Why the watched connection is down ('connection closed by the server', or the socket
    error), None while it is up; never blocks and never consumes data.
    """
    try:
        if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b'':
            return 'connection closed by the server'
    except (BlockingIOError, InterruptedError):
        pass
    except OSError as error:
        return str(error)
    return None


def _connection_fds(host: str, port: int) -> set[int]:
    """File descriptors of this process's TCP connections to ``host``:``port``."""
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, port,
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


def _watch_socket(new_fds: set[int], where: str) -> socket.socket | None:
    """A duplicate of the one new connection's socket, to peek at (None if not exactly one)."""
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
