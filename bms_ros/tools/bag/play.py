"""play: publish a bag's messages on their topics with the recorded timing (and /clock).

Messages go out serialized as recorded (a message of an older definition of ours upgraded to
today's), at their recorded receive times divided by --rate.
With --clock, rosgraph_msgs/Clock is published on /clock at every message and at a fixed
wall rate in between, so nodes started with use_sim_time:=true follow the bag's time (and
the messages' header stamps, which are the recording's, are not stale for them).
"""
import sys
import time

from bms_ros.core import bag_schema
from bms_ros.core.bag_schema import BagError

from .bagio import Bag

DEFAULT_CLOCK_HZ = 40.0   # as ros2 bag play --clock
PLAY_DEPTH = 1000         # writer history of played volatile topics (see play())


def add_arguments(parser):
    """Add this command's arguments to ``parser``."""
    parser.add_argument('bag', help='bag folder (metadata.yaml + .mcap) or .mcap file')
    parser.add_argument('--rate', type=float, default=1.0, help='playback speed, 1 = real time')
    parser.add_argument('--clock', type=float, nargs='?', const=DEFAULT_CLOCK_HZ, default=0.0,
                        metavar='HZ', help=f'publish /clock (default {DEFAULT_CLOCK_HZ:g} Hz)')
    parser.add_argument('--namespace', default=None,
                        help='play into this namespace instead of the recorded one')
    parser.add_argument('--topics', nargs='+', metavar='TOPIC', help='relative names to play')
    parser.add_argument('--delay', type=float, default=1.0,
                        help='wall seconds between creating publishers and the first message '
                             '(lets subscribers discover them)')
    parser.add_argument('--wait-for-subscribers', type=float, default=0.0, metavar='S',
                        help='before the delay, wait up to S wall seconds until every played '
                             'topic has a subscriber (nothing published is then lost to '
                             'discovery); 0 = do not wait')
    parser.add_argument('--wait-for-all-acked', type=float, default=5.0, metavar='S',
                        help='after the last message, wait up to S wall seconds until every '
                             'reliable subscriber has acknowledged all messages (exiting '
                             'earlier drops what is still in flight); 0 = do not wait')


def plan(bag, namespace=None, topics=None):
    """{recorded topic: (played topic, msgtype, TopicSpec or None)} of the topics to play."""
    recorded_ns = bag.namespace
    out = {}
    for topic, msgtype in sorted(bag.topics.items()):
        name = bag_schema.relative(recorded_ns, topic)
        if topics and (name or topic).strip('/') not in [t.strip('/') for t in topics]:
            continue
        if name is not None and namespace is not None:
            target = bag_schema.resolve(namespace, name)
        else:
            target = topic
        out[topic] = (target, msgtype, bag_schema.TOPICS.get(name) if name else None)
    if topics and not out:
        raise BagError(f'{bag.path}: none of {", ".join(topics)} is in the bag')
    return out


def play(path, rate=1.0, clock_hz=0.0, namespace=None, topics=None, delay_s=1.0, ros_args=(),
         wait_subscribers_s=0.0, wait_acked_s=5.0):
    """Play the bag once; returns the number of messages published."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rosgraph_msgs.msg import Clock

    from bms_ros.core import contract
    from bms_ros.nodes import qos as contract_qos

    from . import ros_types

    if not rate > 0:
        raise BagError(f'--rate must be > 0, got {rate}')
    bag = Bag(path)
    routes = plan(bag, namespace, topics)
    rclpy.init(args=['bag_play', *ros_args])
    node = rclpy.create_node('bag_player')
    published = 0
    try:
        publishers = {}
        for topic, (target, msgtype, spec) in routes.items():
            latched = spec is not None and spec.kind == bag_schema.LATCHED
            depth = spec.depth if spec else 100
            if not latched:
                # a deeper writer history only gives a slow reliable reader more time to
                # acknowledge (KEEP_LAST drops the oldest unacknowledged sample when full); for
                # latched topics the depth is what late joiners get, so it stays as recorded
                depth = max(depth, PLAY_DEPTH)
            qos = contract_qos.profile(contract.QosSpec(depth, transient_local=latched))
            publishers[topic] = node.create_publisher(ros_types.message_class(msgtype), target,
                                                      qos)
        clock_pub = node.create_publisher(Clock, contract.CLOCK_TOPIC, contract_qos.CLOCK) \
            if clock_hz > 0 else None
        print(f'playing {bag.path} ({len(routes)} topics) at rate {rate:g}'
              + (f' with /clock at {clock_hz:g} Hz' if clock_pub else ''), file=sys.stderr)
        _wait_for_subscribers([*publishers.values(), *([clock_pub] if clock_pub else [])],
                              wait_subscribers_s)
        time.sleep(max(0.0, delay_s))
        wall0 = time.monotonic()
        bag0 = bag.start_ns
        clock_period_s = 1.0 / clock_hz if clock_pub else None
        next_clock = wall0

        last_clock = [0]

        def publish_clock(bag_ns):
            # never backwards: the wall-paced value can lead a message's own stamp by a hair
            last_clock[0] = max(last_clock[0], int(bag_ns))
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(last_clock[0], 10 ** 9)
            clock_pub.publish(msg)

        for topic, _, t_ns, data in bag.raw_messages(set(routes), current=True):
            due = wall0 + (t_ns - bag0) * 1e-9 / rate
            while True:
                now = time.monotonic()
                if clock_pub and now >= next_clock:
                    publish_clock(bag0 + int((now - wall0) * rate * 1e9))
                    next_clock += clock_period_s * max(1, int((now - next_clock)
                                                               / clock_period_s) + 1)
                if now >= due or not rclpy.ok():
                    break
                wake = due if clock_pub is None else min(due, next_clock)
                time.sleep(max(0.0, min(wake - now, 0.05)))
            if not rclpy.ok():
                break
            if clock_pub:
                publish_clock(t_ns)
            publishers[topic].publish(bytes(data))
            published += 1
        _wait_for_all_acked(list(publishers.values()), wait_acked_s)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        bag.close()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return published


def _wait_for_subscribers(publishers, timeout_s):
    """Until every publisher has a subscription or ``timeout_s`` has passed (then say which
    have none and play anyway).
    """
    deadline = time.monotonic() + timeout_s
    waiting = list(publishers)
    while timeout_s > 0 and waiting:
        waiting = [p for p in waiting if p.get_subscription_count() == 0]
        if waiting and time.monotonic() >= deadline:
            print('no subscriber after %g s on: %s' % (timeout_s, ', '.join(
                p.topic_name for p in waiting)), file=sys.stderr)
            break
        time.sleep(0.02)


def _wait_for_all_acked(publishers, timeout_s):
    """Until reliable subscribers have acknowledged everything published, or ``timeout_s``
    has passed in all (then say which topics may have lost messages).
    """
    from rclpy.duration import Duration

    deadline = time.monotonic() + timeout_s
    late = [p.topic_name for p in publishers if timeout_s > 0 and not p.wait_for_all_acked(
        Duration(nanoseconds=int(max(0.0, deadline - time.monotonic()) * 1e9)))]
    if late:
        print('not acknowledged after %g s on: %s' % (timeout_s, ', '.join(late)),
              file=sys.stderr)


def run(args):
    """Run the command of parsed ``args``; the exit code (0 on success)."""
    count = play(args.bag, args.rate, args.clock, args.namespace, args.topics, args.delay,
                 args.ros_args, args.wait_for_subscribers, args.wait_for_all_acked)
    print(f'published {count} messages')
    return 0
