"""Loopback virtual CAN bus: a socketcand-protocol TCP server on 127.0.0.1.

    python -m bms_ros.tools.can_hub --port 29536      # --port 0: any free port (printed)

Every process connects with python-can's built-in ``socketcand`` interface
(``can.Bus(interface='socketcand', host='127.0.0.1', port=N, channel='vcan0')``). The hub
forwards each frame a client sends to every other client opened on the same channel, never
back to the sender (as SocketCAN without loopback). Each client has a bounded send queue:
when a slow client has more than ``queue_bytes`` unsent (the kernel send buffer of its socket
is set to the same size), further frames to it are dropped and counted, as a real controller
drops on a full receive FIFO. Frames travel in batches (all frames of one TCP read of a
sender), so the bound is ``queue_bytes`` plus one batch.

Protocol (the subset python-can 4.6.1's socketcand client uses; socketcand's own docs):
server ``< hi >``; client ``< open vcan0 >``, server ``< ok >``; client ``< rawmode >``, server
``< ok >``; then client ``< send 123 2 11 22 >`` (id hex, length hex, bytes hex) and server
``< frame 123 1700000000.123456 1122 >`` (id: 3 hex digits = 11-bit, 8 = 29-bit; receive time;
data as one hex string). ``< echo >`` is answered with ``< echo >``. The python-can client
reads the two ``< ok >`` with a single recv() each and compares them exactly, so frames for a
new client are held back for ``grace_s`` after its ``< rawmode >``; they are queued, not lost.

Why not python-can-remote (``can_remote``, also in the venv)? It needs its own client
interface (``remote``, a websocket protocol of its own) while socketcand is served by real
servers on Linux hardware too (the same node parameters then reach a physical bus), and it
runs two threads per client plus a python-can ``virtual`` bus per client. Measured with
``bench/can_decode.py`` on the 2-core development machine (one sender process to one receiver
process through the server process, 40,000 11-bit 8-byte frames sent as fast as python-can
can, end to end from first send to last receive): this hub 160,000-250,000 frames/s,
can_remote (server on the ``virtual`` interface) about 45,000 frames/s, both without loss;
a saturated 1 Mbit/s bus is ~8,000 frames/s. At that rate the hub process uses ~5 % of a core.
"""
import argparse
import asyncio
import errno
import ipaddress
import signal
import socket
import sys
import threading
import time

from bms_ros.core.contract import CAN_HUB_PORT

DEFAULT_PORT = CAN_HUB_PORT
DEFAULT_QUEUE_BYTES = 256 * 1024     # ~6,000 frames of ~42 bytes: ~0.7 s of a saturated bus
DEFAULT_GRACE_S = 0.25
_HEX = frozenset(b'0123456789abcdefABCDEF')


def is_loopback(host):
    """True for localhost and 127.0.0.0/8 or ::1 addresses."""
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HubStats:
    """Counters of the whole hub (frames counted once per receiving client for frames_out)."""

    def __init__(self):
        self.clients = 0
        self.live_clients = 0    # clients that frames are forwarded to (after the grace)
        self.connections = 0
        self.frames_in = 0
        self.frames_out = 0
        self.frames_dropped = 0
        self.bad_commands = 0

    def as_dict(self):
        """The counters as a dict."""
        return dict(vars(self))

    def line(self):
        """The counters as one log line."""
        return ('clients {clients} (total {connections}) | frames in {frames_in} out {frames_out} '
                'dropped {frames_dropped} | bad commands {bad_commands}'.format(**vars(self)))


class _Client(asyncio.Protocol):
    """One TCP client of the hub."""

    def __init__(self, hub):
        self.hub = hub
        self.transport = None
        self.channel = None
        self.raw = False
        self.live = False        # frames are written to it (after the rawmode grace)
        self.pending = []        # frames held during the grace period
        self.pending_bytes = 0
        self.buffer = b''
        self.dropped = 0
        self.peer = ''

    def connection_made(self, transport):
        self.transport = transport
        self.peer = '%s:%s' % transport.get_extra_info('peername')[:2]
        sock = transport.get_extra_info('socket')
        if sock is not None:
            # bound the kernel's share of the backlog too (Linux autotunes it up to MBs)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.hub.queue_bytes)
        self.hub.stats.clients += 1
        self.hub.stats.connections += 1
        transport.write(b'< hi >')

    def connection_lost(self, exc):
        self.hub.stats.clients -= 1
        if self.live:
            self.hub.stats.live_clients -= 1
        if self.channel is not None:
            self.hub.channels.get(self.channel, set()).discard(self)

    def data_received(self, data):
        buffer = self.buffer + data
        parts = buffer.split(b'>')
        self.buffer = parts.pop()          # incomplete rest (b'' if the chunk ended on '>')
        if len(self.buffer) > 4096:        # no '>' in 4 KiB: garbage, not a command
            self.hub.stats.bad_commands += 1
            self.buffer = b''
        if self.raw:
            self._raw_commands(parts)
        else:
            for i, part in enumerate(parts):
                self._command(part)
                if self.raw:   # frames may follow rawmode in the same chunk
                    self._raw_commands(parts[i + 1:])
                    break

    def _command(self, part):
        start = part.find(b'<')
        tokens = part[start + 1:].split() if start >= 0 else []
        if not tokens:
            self.hub.stats.bad_commands += 1
            return
        word = tokens[0]
        if word == b'open' and len(tokens) == 2 and self.channel is None:
            self.channel = tokens[1].decode('ascii', 'replace')
            self.hub.channels.setdefault(self.channel, set()).add(self)
            self.transport.write(b'< ok >')
        elif word == b'rawmode' and self.channel is not None:
            self.raw = True
            self.transport.write(b'< ok >')
            asyncio.get_running_loop().call_later(self.hub.grace_s, self._go_live)
        elif word == b'echo':
            self.transport.write(b'< echo >')
        else:
            self.hub.stats.bad_commands += 1
            if not self.raw:
                self.transport.write(b'< error unsupported command >')

    def _raw_commands(self, parts):
        """Parse ``< send ... >`` commands into frame lines and forward them."""
        lines = []
        stamp = b'%.6f' % time.time()
        bad = 0
        for part in parts:
            tokens = part.split()
            # [b'<', b'send', id, len, byte...]
            if len(tokens) < 4 or tokens[0] != b'<' or tokens[1] != b'send':
                if tokens[1:2] == [b'echo']:
                    self.transport.write(b'< echo >')
                    continue
                bad += 1
                continue
            can_id = tokens[2]
            try:
                length = int(tokens[3], 16)
                data = bytes(int(b, 16) for b in tokens[4:])
                ident = int(can_id, 16)
            except ValueError:
                bad += 1
                continue
            if length != len(data) or length > 8 or not set(can_id) <= _HEX:
                bad += 1
                continue
            if len(can_id) == 3 and ident <= 0x7FF:
                id_text = can_id.upper()
            elif len(can_id) == 8 and ident <= 0x1FFFFFFF:
                id_text = can_id.upper()
            elif ident <= 0x7FF and len(can_id) < 3:
                id_text = b'%03X' % ident
            elif ident <= 0x1FFFFFFF:
                id_text = b'%08X' % ident
            else:
                bad += 1
                continue
            lines.append(b'< frame ' + id_text + b' ' + stamp + b' '
                         + data.hex().upper().encode() + b' >')
        if bad:
            self.hub.stats.bad_commands += bad
        if lines:
            self.hub.forward(self, b''.join(lines), len(lines))

    def _go_live(self):
        if self.transport.is_closing():
            return
        self.live = True
        self.hub.stats.live_clients += 1
        pending, self.pending, self.pending_bytes = self.pending, [], 0
        if pending and not self.transport.is_closing():
            self.transport.write(b''.join(pending))

    def deliver(self, payload, count):
        """Queue ``count`` frames for this client, or drop them if its queue is full."""
        stats = self.hub.stats
        if not self.live:
            if self.pending_bytes > self.hub.queue_bytes:
                self.dropped += count
                stats.frames_dropped += count
                return
            self.pending.append(payload)
            self.pending_bytes += len(payload)
            stats.frames_out += count
            return
        transport = self.transport
        if transport.is_closing():
            return
        # the backlog before this batch decides: a batch (one TCP read) is never cut in two
        if transport.get_write_buffer_size() > self.hub.queue_bytes:
            self.dropped += count
            stats.frames_dropped += count
            return
        transport.write(payload)
        stats.frames_out += count


class CanHub:
    """The hub's asyncio server; ``await start()`` then serve until ``stop()``."""

    def __init__(self, host='127.0.0.1', port=0, queue_bytes=DEFAULT_QUEUE_BYTES,
                 grace_s=DEFAULT_GRACE_S):
        if not is_loopback(host):
            raise ValueError(f'the CAN hub binds loopback addresses only, not {host!r}')
        self.host = host
        self.port = port
        self.queue_bytes = queue_bytes
        self.grace_s = grace_s
        self.stats = HubStats()
        self.channels = {}
        self.server = None

    async def start(self):
        """Listen on host:port (port 0: any free one); the port listened on."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Client(self), self.host, self.port,
                                               reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    def forward(self, sender, payload, count):
        """Send ``count`` frames (one payload) to every client on the sender's channel but it."""
        self.stats.frames_in += count
        for client in self.channels.get(sender.channel, ()):
            if client is not sender:
                client.deliver(payload, count)

    async def stop(self):
        """Stop listening and close every client."""
        if self.server is not None:
            self.server.close()
            for clients in self.channels.values():
                for client in list(clients):
                    client.transport.close()
            await self.server.wait_closed()


class HubThread:
    """A hub running its own event loop in a daemon thread (for tests and benchmarks)."""

    def __init__(self, port=0, host='127.0.0.1', **kwargs):
        self.hub = CanHub(host, port, **kwargs)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error = None
        self.thread = threading.Thread(target=self._run, name='can_hub', daemon=True)
        self.thread.start()
        if not self._ready.wait(10.0):
            raise RuntimeError('CAN hub thread did not start')
        if self._error is not None:
            raise self._error

    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.hub.start())
        except Exception as error:  # noqa: BLE001  reported to the starting thread
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.hub.stop())
        self.loop.close()

    @property
    def port(self):
        """The port the hub listens on."""
        return self.hub.port

    def stats(self):
        """A copy of the counters (read from the hub's thread)."""
        future = asyncio.run_coroutine_threadsafe(self._stats(), self.loop)
        return future.result(5.0)

    async def _stats(self):
        return self.hub.stats.as_dict()

    def stop(self):
        """Stop the hub's event loop and join its thread (up to 5 s)."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5.0)


def start_hub_thread(port=0, host='127.0.0.1', **kwargs):
    """Start a hub in a background thread; returns the HubThread (``.port``, ``.stop()``)."""
    return HubThread(port=port, host=host, **kwargs)


async def _serve(args):
    hub = CanHub(args.host, args.port, queue_bytes=args.queue_bytes, grace_s=args.grace_s)
    try:
        port = await hub.start()
    except OSError as error:
        hint = ''
        if error.errno == errno.EADDRINUSE:
            # most often a second pack's suite on the default port
            hint = ('; another suite\'s hub holds it? Give each pack its own port: '
                    'bringup --can-port N (it picks a free one when none is given), '
                    'ros2 launch ... can_port:=N, or the profile\'s can.port')
        print(f'can_hub: cannot listen on {args.host}:{args.port}: {error.strerror}{hint}',
              file=sys.stderr, flush=True)
        return 1
    print(f'can_hub: listening on {args.host}:{port} (socketcand protocol)', flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), args.stats_period_s or None)
        except asyncio.TimeoutError:
            print(f'can_hub: {hub.stats.line()}', flush=True)
    await hub.stop()
    print(f'can_hub: stopped | {hub.stats.line()}', flush=True)
    return 0


def main(argv=None):
    """The can_hub command line: serve until Ctrl-C; the exit code."""
    parser = argparse.ArgumentParser(prog='can_hub', description=__doc__.split('\n')[0])
    parser.add_argument('--host', default='127.0.0.1', help='loopback address to bind')
    parser.add_argument('--port', type=int, default=DEFAULT_PORT,
                        help=f'TCP port (default {DEFAULT_PORT}; 0 = any free port)')
    parser.add_argument('--queue-bytes', type=int, default=DEFAULT_QUEUE_BYTES,
                        help='unsent bytes per client before frames to it are dropped')
    parser.add_argument('--grace-s', type=float, default=DEFAULT_GRACE_S,
                        help='hold frames for a new client this long after its rawmode')
    parser.add_argument('--stats-period-s', type=float, default=10.0,
                        help='print the counters this often (0 = only at exit)')
    args = parser.parse_args(argv)
    if not is_loopback(args.host):
        print(f'can_hub: --host must be a loopback address, got {args.host!r}', file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535 or args.queue_bytes < 1024 or args.grace_s < 0:
        print('can_hub: --port 0..65535, --queue-bytes >= 1024, --grace-s >= 0', file=sys.stderr)
        return 2
    # Ctrl-C (bringup's stop) works even if SIGINT came in ignored (a background job's SIG_IGN)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 0


if __name__ == '__main__':
    sys.exit(main())
