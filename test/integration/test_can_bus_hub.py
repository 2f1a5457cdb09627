"""CanBus over the real CAN hub (TCP on 127.0.0.1): back-off without a server, a dead hub
detected (the connection watched through public API only) and reopened when it comes back.
"""
import socket
import time

import can

from bms_ros.core.can_bus import BusConfig, CanBus
from bms_ros.tools.can_hub import start_hub_thread


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def recv_until(bus, predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = bus.recv(0.05)
        if predicate(msg):
            return msg
    raise AssertionError(f'timeout: state {bus.state}, counters {bus.counters}')


def wait_live(hub, count, timeout_s=10.0):
    """Until ``count`` clients of the hub are live (past its rawmode grace)."""
    deadline = time.monotonic() + timeout_s
    while hub.stats()['live_clients'] < count:
        assert time.monotonic() < deadline, hub.stats()
        time.sleep(0.02)    # poll interval


def test_no_server_counts_failures_and_backs_off():
    bus = CanBus(BusConfig(port=free_port(), reconnect_min_s=0.05, reconnect_max_s=0.2))
    start = time.monotonic()
    for _ in range(10):
        assert bus.recv(0.05) is None
    assert time.monotonic() - start < 3.0               # no 10 s connect loop
    assert not bus.connected and bus.state == 'disconnected'
    assert 2 <= bus.counters['open_failures'] <= 6     # 0.05, 0.1, 0.2, 0.2 ... apart
    assert 'Connection refused' in bus.last_error or 'refused' in bus.last_error.lower()
    assert bus.send(can.Message(arbitration_id=1)) is False
    assert bus.counters['tx_dropped'] == 1
    bus.close()


def test_reconnects_when_the_hub_comes_back():
    port = free_port()
    hub = start_hub_thread(port=port, grace_s=0.05)
    config = BusConfig(port=port, reconnect_min_s=0.05, reconnect_max_s=0.2)
    bus, peer = CanBus(config), CanBus(config)
    try:
        assert bus.open() and peer.open()
        wait_live(hub, 2)
        assert peer.send(can.Message(arbitration_id=0x42, is_extended_id=False, data=[1]))
        assert recv_until(bus, lambda m: m is not None).data[0] == 1
        hub.stop()                                            # the hub dies
        recv_until(bus, lambda m: not bus.connected)
        assert bus.counters['connection_lost'] == 1 and bus.state == 'disconnected'
        hub = start_hub_thread(port=port, grace_s=0.05)      # and comes back
        recv_until(bus, lambda m: bus.connected)
        recv_until(peer, lambda m: peer.counters['opens'] == 2)   # peer notices and reopens
        wait_live(hub, 2)
        assert peer.send(can.Message(arbitration_id=0x42, is_extended_id=False, data=[2]))
        assert recv_until(bus, lambda m: m is not None and m.data[0] == 2)
        assert bus.counters['reconnects'] == 1 and bus.counters['opens'] == 2
    finally:
        bus.close()
        peer.close()
        hub.stop()
    assert bus.state == 'closed' and bus.recv(0.01) is None
