"""Every bms_interfaces message and service survives a real DDS round trip between processes."""
import random
import time

import pytest

from .echo_peer import response_seed
from .interface_fill import all_interfaces, fill

pytestmark = pytest.mark.ros

INTERFACES = all_interfaces()
MESSAGES = [(name, cls) for kind, name, cls in INTERFACES if kind == 'msg']
SERVICES = [(name, cls) for kind, name, cls in INTERFACES if kind == 'srv']


def test_every_interface_is_covered():
    # the list is built by introspection: make sure it found the package's interfaces at all
    assert {'PackMeasurement', 'BatteryEstimate', 'ProtectionEvent', 'CanFrame'} <= \
        {name for name, _ in MESSAGES}
    assert {'ResetTrips', 'SetSoc', 'RequestState', 'SetBalancingMode'} <= \
        {name for name, _ in SERVICES}


def test_fill_is_deterministic_and_not_default():
    for name, cls in MESSAGES:
        a, b = fill(cls(), 7), fill(cls(), 7)
        assert a == b, name
        assert any(fill(cls(), seed) != cls() for seed in range(5)), name


def test_round_trip_through_separate_process(ros_env):
    ros_env.start_module('test.ros.echo_peer', name='echo_peer')
    rng = random.Random(42)
    for name, cls in MESSAGES:
        log = ros_env.subscribe(cls, f'out/{name}')
        pub = ros_env.publisher(cls, f'in/{name}')
        ros_env.wait_for_subscribers(pub, timeout_s=20.0)
        # wait until the peer's publisher matched our subscription too, then send three
        # distinct messages
        _wait_matched_publisher(ros_env.node, f'out/{name}', timeout_s=20.0)
        sent = [fill(cls(), rng) for _ in range(3)]
        for msg in sent:
            pub.publish(msg)
        for msg in sent:
            got = log.wait_for(lambda m, msg=msg: m == msg, timeout_s=10.0, what=f'{name} echo')
            assert got == msg
    for name, cls in SERVICES:
        request = fill(cls.Request(), rng)
        response = ros_env.call(cls, f'srv/{name}', request, timeout_s=20.0)
        expected = fill(cls.Response(), response_seed(request))
        assert response == expected, name


def _wait_matched_publisher(node, topic, timeout_s):
    """Until a subscription of ``node`` on ``topic`` has a matched publisher (DDS matched)."""
    resolved = node.resolve_topic_name(topic)
    deadline = time.monotonic() + timeout_s
    while not any(sub.topic_name == resolved and sub.get_publisher_count() > 0
                  for sub in node.subscriptions):
        assert time.monotonic() < deadline, f'no publisher matched {resolved} in {timeout_s} s'
        time.sleep(0.05)    # poll interval
