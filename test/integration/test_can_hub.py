"""The socketcand-protocol hub: fan-out without echo, across threads and processes, overflow."""
import os
import re
import socket
import subprocess
import sys
import threading
import time

import can
import pytest

from bms_ros.core.can_bus import quiet_socketcand_logging
from bms_ros.tools import can_hub
from bms_ros.tools.can_hub import start_hub_thread

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GRACE_S = 0.05

quiet_socketcand_logging()


@pytest.fixture
def hub():
    thread = start_hub_thread(grace_s=GRACE_S)
    try:
        yield thread
    finally:
        thread.stop()


def client(port, channel='vcan0'):
    return can.Bus(interface='socketcand', host='127.0.0.1', port=port, channel=channel)


def drain(bus, idle_s=0.5, limit=100000):
    """Frames until none arrives for ``idle_s``."""
    frames = []
    while len(frames) < limit:
        msg = bus.recv(idle_s)
        if msg is None:
            break
        frames.append(msg)
    return frames


def wait_clients(hub, count, timeout_s=10.0):
    """Until ``count`` clients are live (past the rawmode grace: frames reach them)."""
    deadline = time.monotonic() + timeout_s
    while hub.stats()['live_clients'] < count:
        assert time.monotonic() < deadline, hub.stats()
        time.sleep(0.02)    # poll interval


PING_ID = 0x7FE


def wait_linked(a, b, timeout_s=10.0):
    """Until a frame of ``a`` reaches ``b`` and one of ``b`` reaches ``a`` (both live)."""
    for sender, receiver in ((a, b), (b, a)):
        deadline = time.monotonic() + timeout_s
        while True:
            assert time.monotonic() < deadline, 'no frame crossed the hub'
            sender.send(can.Message(arbitration_id=PING_ID, is_extended_id=False, data=b''))
            msg = receiver.recv(0.05)
            if msg is not None and msg.arbitration_id == PING_ID:
                break


def test_three_clients_in_threads_see_each_other_without_echo(hub):
    ready = threading.Barrier(3, timeout=10.0)
    results = {}

    def run(k):
        bus = client(hub.port)
        try:
            ready.wait()
            wait_clients(hub, 3)
            ready.wait()
            ext = k == 2                     # one client uses 29-bit ids
            for i in range(50):
                bus.send(can.Message(arbitration_id=(0x18FF0000 if ext else 0x100) + k,
                                     is_extended_id=ext, data=bytes([k, i, 0, 255][:1 + i % 4])))
            results[k] = drain(bus)
        finally:
            bus.shutdown()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20.0)
    for k in range(3):
        senders = sorted({m.data[0] for m in results[k]})
        assert senders == [j for j in range(3) if j != k]          # everyone else, not itself
        assert len(results[k]) == 100
        for j in senders:
            got = [m for m in results[k] if m.data[0] == j]
            assert [m.data[1] for m in got if len(m.data) > 1] == \
                [i for i in range(50) if i % 4 >= 1]                # order kept per sender
            assert all(m.is_extended_id == (j == 2) for m in got)
            assert {m.arbitration_id for m in got} == {(0x18FF0000 if j == 2 else 0x100) + j}
    stats = hub.stats()
    assert stats['frames_in'] == 150 and stats['frames_out'] == 300
    assert stats['frames_dropped'] == 0 and stats['bad_commands'] == 0


def test_empty_frame_and_channels_are_separate(hub):
    a, b, other = client(hub.port), client(hub.port), client(hub.port, 'vcan1')
    try:
        wait_clients(hub, 3)
        a.send(can.Message(arbitration_id=0x7FF, is_extended_id=False, data=b''))
        got = drain(b, 0.3)
        assert len(got) == 1 and got[0].dlc == 0 and got[0].arbitration_id == 0x7FF
        assert drain(other, 0.3) == []
    finally:
        for bus in (a, b, other):
            bus.shutdown()


PEER = r'''
import sys, can, logging
logging.getLogger('can.interfaces.socketcand.socketcand').setLevel(logging.ERROR)
bus = can.Bus(interface='socketcand', host='127.0.0.1', port=int(sys.argv[1]), channel='vcan0')
print('ready', flush=True)
sys.stdin.readline()
for i in range(20):
    bus.send(can.Message(arbitration_id=0x321, is_extended_id=False, data=[i]))
got = []
while True:
    m = bus.recv(1.0)
    if m is None:
        break
    if m.arbitration_id != 0x7FE:    # PING_ID: the test's link check
        got.append(m.data[0])
print('got', ' '.join(map(str, got)), flush=True)
bus.shutdown()
'''


def test_hub_process_and_a_client_process():
    """The hub as `python -m`, one client in another process, two in this one."""
    hub = subprocess.Popen([sys.executable, '-m', 'bms_ros.tools.can_hub', '--port', '0',
                            '--grace-s', str(GRACE_S), '--stats-period-s', '0'],
                           stdout=subprocess.PIPE, text=True, cwd=REPO)
    peer = None
    try:
        line = hub.stdout.readline()
        assert 'listening on 127.0.0.1:' in line, line
        port = int(line.split('127.0.0.1:')[1].split()[0])
        peer = subprocess.Popen([sys.executable, '-c', PEER, str(port)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert peer.stdout.readline().strip() == 'ready'
        a, b = client(port), client(port)
        try:
            # a and b are live once frames cross; the peer opened first, its grace ended first
            wait_linked(a, b)
            drain(a, 0.3)
            drain(b, 0.3)
            peer.stdin.write('go\n')
            peer.stdin.flush()
            for i in range(10):
                a.send(can.Message(arbitration_id=0x123, is_extended_id=False, data=[100 + i]))
            got_b = [m for m in drain(b, 1.0) if m.arbitration_id != PING_ID]
            got_a = [m for m in drain(a, 0.3) if m.arbitration_id != PING_ID]
        finally:
            a.shutdown()
            b.shutdown()
        out, _ = peer.communicate(timeout=20)
        assert out.split() == ['got'] + [str(100 + i) for i in range(10)]
        assert sorted(m.data[0] for m in got_b) == list(range(20)) + [100 + i for i in range(10)]
        assert [m.data[0] for m in got_a] == list(range(20))     # the peer's, not its own
    finally:
        if peer is not None and peer.poll() is None:
            peer.kill()
        hub.terminate()
        out, _ = hub.communicate(timeout=10)
    assert hub.returncode == 0
    counts = re.search(r'stopped \| clients 0 \(total 3\) \| frames in (\d+) out (\d+) '
                       r'dropped 0', out)
    assert counts, out
    frames_in, frames_out = int(counts[1]), int(counts[2])
    assert frames_in >= 30 and frames_out == 2 * frames_in   # 30 + the pings, each to two


def _raw_client(port, channel=b'vcan0', rcvbuf=None):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(('127.0.0.1', port))
    assert sock.recv(16) == b'< hi >'
    sock.sendall(b'< open ' + channel + b' >')
    assert sock.recv(16) == b'< ok >'
    sock.sendall(b'< rawmode >')
    assert sock.recv(16) == b'< ok >'
    return sock


def test_bad_commands_are_counted_and_the_hub_keeps_serving(hub):
    sender = _raw_client(hub.port)
    receiver = client(hub.port)
    try:
        wait_clients(hub, 2)
        sender.sendall(b'< send 12G 1 00 >< send 123 3 01 02 >< bogus >< send 123 9 '
                       + b'00 ' * 9 + b'>< send 123 2 0a 0b >< echo >')
        got = drain(receiver, 0.5)
        assert [(m.arbitration_id, bytes(m.data)) for m in got] == [(0x123, b'\x0a\x0b')]
        assert sender.recv(16) == b'< echo >'
        assert hub.stats()['bad_commands'] == 4
    finally:
        sender.close()
        receiver.shutdown()


def test_a_client_that_does_not_read_loses_frames_not_the_others():
    hub = start_hub_thread(grace_s=GRACE_S, queue_bytes=64 * 1024)
    frames = 20000
    try:
        stuck = _raw_client(hub.port, rcvbuf=4096)
        sender = _raw_client(hub.port)
        reader = client(hub.port)
        wait_clients(hub, 3)
        got = []
        drainer = threading.Thread(target=lambda: got.extend(drain(reader, 1.0, limit=frames)))
        drainer.start()
        chunk = b'< send 120 8 1 2 3 4 5 6 7 8 >' * 500
        for _ in range(frames // 500):      # ~25,000 frames/s: the reader keeps up
            sender.sendall(chunk)
            time.sleep(0.02)    # pacing the sender, not a wait
        drainer.join(30.0)
        stats = hub.stats()
        assert len(got) == frames                        # the reading client loses nothing
        assert stats['frames_in'] == frames
        assert stats['frames_dropped'] > frames // 2     # the stuck one overflowed
        assert stats['frames_out'] + stats['frames_dropped'] == 2 * frames
        stuck.close()
        sender.close()
        reader.shutdown()
    finally:
        hub.stop()


def test_only_loopback_addresses():
    assert can_hub.main(['--host', '0.0.0.0', '--port', '0']) == 2
    with pytest.raises(ValueError, match='loopback addresses only'):
        can_hub.CanHub(host='192.168.1.10')
    assert can_hub.is_loopback('127.0.0.1') and can_hub.is_loopback('::1')
