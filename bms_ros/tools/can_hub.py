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
import errno
import heapq
import ipaddress
import math
import selectors
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


class _Client:
    """One TCP client of the hub (a non-blocking socket served by the hub's selector)."""

    def __init__(self, hub, sock, peer):
        self.hub = hub
        self.sock = sock
        self.peer = '%s:%s' % peer[:2]
        self.channel = None
        self.raw = False
        self.live = False        # frames are written to it (after the rawmode grace)
        self.closed = False
        self.pending = []        # frames held during the grace period
        self.pending_bytes = 0
        self.out = bytearray()   # written but not yet taken by the kernel
        self.buffer = b''
        self.dropped = 0

    def write(self, data):
        """Send ``data`` now as far as the kernel takes it; keep the rest for the selector."""
        if self.closed:
            return
        if self.out:
            self.out += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.hub.close_client(self)
            return
        if sent < len(data):
            self.out += data[sent:]
            self.hub.want_write(self, True)

    def flush(self):
        """The socket is writable: send what is kept."""
        try:
            sent = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.hub.close_client(self)
            return
        del self.out[:sent]
        if not self.out:
            self.hub.want_write(self, False)

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
            self.write(b'< ok >')
        elif word == b'rawmode' and self.channel is not None:
            self.raw = True
            self.write(b'< ok >')
            self.hub.call_later(self.hub.grace_s, self._go_live)
        elif word == b'echo':
            self.write(b'< echo >')
        else:
            self.hub.stats.bad_commands += 1
            if not self.raw:
                self.write(b'< error unsupported command >')

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
                    self.write(b'< echo >')
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
        if self.closed:
            return
        self.live = True
        self.hub.stats.live_clients += 1
        pending, self.pending, self.pending_bytes = self.pending, [], 0
        if pending:
            self.write(b''.join(pending))

    def deliver(self, payload, count):
        """Queue ``count`` frames for this client, or drop them if its queue is full."""
        stats = self.hub.stats
        if self.closed:
            return
        if not self.live:
            if self.pending_bytes > self.hub.queue_bytes:
                self.dropped += count
                stats.frames_dropped += count
                return
            self.pending.append(payload)
            self.pending_bytes += len(payload)
            stats.frames_out += count
            return
        # the backlog before this batch decides: a batch (one TCP read) is never cut in two
        if len(self.out) > self.hub.queue_bytes:
            self.dropped += count
            stats.frames_dropped += count
            return
        self.write(payload)
        stats.frames_out += count


class CanHub:
    """The hub: ``start()`` listens, ``serve()`` runs its selector loop until ``request_stop()``.

    One thread, one ``selectors`` loop over non-blocking sockets: no asyncio (which with its
    ssl import costs ~9 MiB of the hub's ~22 MiB RSS, and a process per suite runs it).
    """

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
        self._selector = selectors.DefaultSelector()
        self._timers = []                  # heap of (due monotonic s, sequence, callback)
        self._sequence = 0
        self._stopping = False
        self._wake_r, self._wake_w = socket.socketpair()
        for end in (self._wake_r, self._wake_w):
            end.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)

    def start(self):
        """Listen on host:port (port 0: any free one); the port listened on."""
        family, kind, proto, _, address = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        server = socket.socket(family, kind, proto)
        try:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(address)
            server.listen(64)
        except OSError:
            server.close()
            raise
        server.setblocking(False)
        self.server = server
        self.port = server.getsockname()[1]
        self._selector.register(server, selectors.EVENT_READ, None)
        return self.port

    def wake_fd(self):
        """A file descriptor whose write wakes the loop (for signal.set_wakeup_fd)."""
        return self._wake_w.fileno()

    def request_stop(self):
        """Stop ``serve()`` from another thread or a signal handler."""
        self._stopping = True
        try:
            self._wake_w.send(b'\0')
        except OSError:      # full (already woken) or closed
            pass

    def call_later(self, delay_s, callback):
        """Run ``callback()`` in the loop ``delay_s`` from now."""
        self._sequence += 1
        heapq.heappush(self._timers, (time.monotonic() + delay_s, self._sequence, callback))

    def want_write(self, client, on):
        """Watch ``client``'s socket for writability (it has unsent bytes) or stop watching."""
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0)
        self._selector.modify(client.sock, events, client)

    def forward(self, sender, payload, count):
        """Send ``count`` frames (one payload) to every client on the sender's channel but it."""
        self.stats.frames_in += count
        for client in list(self.channels.get(sender.channel, ())):
            if client is not sender:
                client.deliver(payload, count)

    def close_client(self, client):
        """Forget a client whose connection ended (or failed) and close its socket."""
        if client.closed:
            return
        client.closed = True
        self.stats.clients -= 1
        if client.live:
            self.stats.live_clients -= 1
        if client.channel is not None:
            self.channels.get(client.channel, set()).discard(client)
        try:
            self._selector.unregister(client.sock)
        except (KeyError, ValueError):
            pass
        client.sock.close()

    def _accept(self):
        while True:
            try:
                sock, peer = self.server.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:      # e.g. out of file descriptors: try again on the next event
                return
            sock.setblocking(False)
            # bound the kernel's share of the backlog too (Linux autotunes it up to MBs)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.queue_bytes)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = _Client(self, sock, peer)
            self._selector.register(sock, selectors.EVENT_READ, client)
            self.stats.clients += 1
            self.stats.connections += 1
            client.write(b'< hi >')

    def _read(self, client):
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b''
        if not data:
            self.close_client(client)
            return
        client.data_received(data)

    def _run_timers(self):
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            heapq.heappop(self._timers)[2]()

    def serve(self, period_s=None, on_period=None):
        """Serve until ``request_stop()``; ``on_period()`` every ``period_s`` if given."""
        next_period = time.monotonic() + period_s if period_s else math.inf
        while not self._stopping:
            now = time.monotonic()
            due = min(self._timers[0][0] if self._timers else math.inf, next_period)
            timeout = None if due == math.inf else max(0.0, due - now)
            for key, events in self._selector.select(timeout):
                client = key.data
                if key.fileobj is self._wake_r:
                    try:
                        self._wake_r.recv(4096)
                    except OSError:
                        pass
                elif key.fileobj is self.server:
                    self._accept()
                elif not client.closed:
                    if events & selectors.EVENT_WRITE:
                        client.flush()
                    if events & selectors.EVENT_READ and not client.closed:
                        self._read(client)
            self._run_timers()
            if on_period is not None and time.monotonic() >= next_period:
                next_period += period_s
                on_period()

    def stop(self):
        """Stop listening and close every client (after ``serve()`` returned)."""
        for key in list(self._selector.get_map().values()):
            if isinstance(key.data, _Client):
                self.close_client(key.data)
        if self.server is not None:
            self._selector.unregister(self.server)
            self.server.close()
            self.server = None
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()


class HubThread:
    """A hub serving in a daemon thread (for tests and benchmarks)."""

    def __init__(self, port=0, host='127.0.0.1', **kwargs):
        self.hub = CanHub(host, port, **kwargs)
        self.hub.start()                     # a bind error is raised here, in the caller
        self.thread = threading.Thread(target=self._run, name='can_hub', daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.hub.serve()
        finally:
            self.hub.stop()

    @property
    def port(self):
        """The port the hub listens on."""
        return self.hub.port

    def stats(self):
        """A copy of the counters."""
        return self.hub.stats.as_dict()

    def stop(self):
        """Stop the hub's loop and join its thread (up to 5 s)."""
        if self.thread.is_alive():
            self.hub.request_stop()
        self.thread.join(5.0)


def start_hub_thread(port=0, host='127.0.0.1', **kwargs):
    """Start a hub in a background thread; returns the HubThread (``.port``, ``.stop()``)."""
    return HubThread(port=port, host=host, **kwargs)


def _serve(args):
    hub = CanHub(args.host, args.port, queue_bytes=args.queue_bytes, grace_s=args.grace_s)
    try:
        port = hub.start()
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
    # a signal sets the flag and wakes the selector through the wake-up fd
    signal.set_wakeup_fd(hub.wake_fd(), warn_on_full_buffer=False)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: hub.request_stop())
    try:
        hub.serve(args.stats_period_s or None,
                  lambda: print(f'can_hub: {hub.stats.line()}', flush=True))
    finally:
        signal.set_wakeup_fd(-1)
        hub.stop()
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
    # SIGINT (bringup's stop) and SIGTERM stop the loop, even if SIGINT came in ignored (a
    # background job's SIG_IGN): _serve installs its own handlers
    return _serve(args)


if __name__ == '__main__':
    sys.exit(main())
