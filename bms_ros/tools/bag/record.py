"""record: subscribe to the suite's topics and write them to a rosbag2 (MCAP) bag.

Messages are taken serialized (CDR, as they travel) and written as they are, stamped with the
recorder's clock at reception (ROS time: /clock with --use-sim-time). Each topic is declared
in the bag at its first message with the QoS its publishers offer (as ros2 bag record does).
Stops after --duration seconds of wall time, or on Ctrl-C; the bag is always closed properly.
"""
import os
import signal
import sys
import time

from bms_ros.core import bag_schema
from bms_ros.core.bag_schema import BagError

from .bagio import BagWriter


def add_arguments(parser):
    """Add this command's arguments to ``parser``."""
    parser.add_argument('out_dir', help='bag folder to create (must not exist)')
    parser.add_argument('--namespace', default='', help='namespace of the pack, e.g. pack_a')
    parser.add_argument('--duration', type=float, default=0.0,
                        help='seconds of wall time, 0 = until Ctrl-C')
    parser.add_argument('--topics', nargs='+', metavar='TOPIC',
                        help=f'relative names (default: all of {", ".join(bag_schema.TOPICS)})')
    parser.add_argument('--profile', default='',
                        help='profile the suite runs with (noted in the bag for offline replay)')
    parser.add_argument('--use-sim-time', action='store_true',
                        help='stamp messages with /clock (Gazebo, bag replay)')


def offered_qos(profile):
    """rosbag2 v9 QoS fields of an rclpy QoSProfile (as offered by one publisher)."""
    def duration(d):
        ns = int(d.nanoseconds)
        if ns <= 0 or ns >= bag_schema.INFINITE_SEC * 10 ** 9:
            # rmw reports "default"/"infinite" as 0 or a huge value: rosbag2 writes infinite
            return {'sec': bag_schema.INFINITE_SEC, 'nsec': bag_schema.INFINITE_NSEC}
        return {'sec': ns // 10 ** 9, 'nsec': ns % 10 ** 9}

    def name(policy, allowed):
        text = getattr(policy, 'name', str(policy)).lower()
        return text if text in allowed else 'unknown'

    return {
        'history': name(profile.history, ('keep_last', 'keep_all', 'system_default')),
        'depth': int(profile.depth),
        'reliability': name(profile.reliability,
                            ('reliable', 'best_effort', 'system_default', 'best_available')),
        'durability': name(profile.durability,
                           ('volatile', 'transient_local', 'system_default', 'best_available')),
        'deadline': duration(profile.deadline), 'lifespan': duration(profile.lifespan),
        'liveliness': name(profile.liveliness,
                           ('automatic', 'manual_by_topic', 'system_default', 'best_available')),
        'liveliness_lease_duration': duration(profile.liveliness_lease_duration),
        'avoid_ros_namespace_conventions': bool(profile.avoid_ros_namespace_conventions)}


def make_recorder(writer, specs, namespace, node_args):
    """A Node subscribing (raw) to each spec's topic and appending to ``writer``."""
    from rclpy.node import Node

    from bms_ros.core import contract
    from bms_ros.nodes import qos as contract_qos

    from . import ros_types

    class BagRecorder(Node):
        """Raw subscriptions to the suite's topics, written to the bag in arrival order."""

        def __init__(self):
            super().__init__('bag_recorder', **node_args)
            self.received = 0
            self.subs = []
            for spec in specs:
                topic = bag_schema.resolve(namespace, spec.name)
                qos = contract_qos.profile(contract.QosSpec(
                    max(spec.depth, contract.PROBE.depth),
                    transient_local=spec.kind == bag_schema.LATCHED))
                self.subs.append(self.create_subscription(
                    ros_types.message_class(spec.msgtype), topic,
                    lambda data, topic=topic, spec=spec: self.on_message(topic, spec, data),
                    qos, raw=True))

        def on_message(self, topic, spec, data):
            now_ns = self.get_clock().now().nanoseconds
            if not writer.has_topic(topic):
                infos = self.get_publishers_info_by_topic(topic)
                qos = [offered_qos(info.qos_profile) for info in infos] or \
                    [bag_schema.qos_fields(spec.kind, spec.depth)]
                writer.add_topic(topic, spec.msgtype, qos)
            writer.write(topic, now_ns, data)
            self.received += 1

    return BagRecorder()


def record(out_dir, namespace='', topics=None, duration_s=0.0, profile='', use_sim_time=False,
           ros_args=()):
    """Record until ``duration_s`` of wall time has passed (0: until SIGINT/SIGTERM).

    Returns {topic: message count}.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions

    specs = bag_schema.select(topics)
    custom = {'bms_ros.namespace': namespace.strip('/'), 'bms_ros.recorder': 'bms_ros.tools.bag'}
    if profile:
        custom['bms_ros.profile'] = os.path.abspath(profile)
    writer = BagWriter(out_dir, custom)
    # Ctrl-C and SIGTERM end the loop, not the context: what already arrived is then taken
    # and written (drain) before the bag is closed
    rclpy.init(args=['bag_record', *ros_args], signal_handler_options=SignalHandlerOptions.NO)
    node = None
    stop = []
    previous = {number: signal.signal(number, lambda *_: stop.append(True))
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        overrides = [Parameter('use_sim_time', Parameter.Type.BOOL, True)] if use_sim_time else []
        node = make_recorder(writer, specs, namespace, {'parameter_overrides': overrides})
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        print(f'recording {len(specs)} topics in namespace {namespace or "/"} to {out_dir}'
              + (f' for {duration_s:g} s' if duration_s > 0 else ' (Ctrl-C to stop)'),
              file=sys.stderr)
        deadline = time.monotonic() + duration_s if duration_s > 0 else None
        while rclpy.ok() and not stop and (deadline is None or time.monotonic() < deadline):
            executor.spin_once(timeout_sec=0.05)
        if rclpy.ok():
            _drain(executor, writer)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        writer.close()
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return dict(writer.counts)


def _drain(executor, writer, max_rounds=10000):
    """Take the messages that already arrived: spin without waiting until two rounds in a
    row record nothing.
    """
    idle = 0
    for _ in range(max_rounds):
        before = sum(writer.counts.values())
        executor.spin_once(timeout_sec=0.0)
        idle = idle + 1 if sum(writer.counts.values()) == before else 0
        if idle >= 2:
            return


def run(args):
    """Run the command of parsed ``args``; the exit code (0 on success)."""
    if args.duration < 0:
        raise BagError(f'--duration must be >= 0, got {args.duration}')
    counts = record(args.out_dir, args.namespace, args.topics, args.duration, args.profile,
                    args.use_sim_time, args.ros_args)
    total = sum(counts.values())
    print(f'wrote {total} messages on {len(counts)} topics to {args.out_dir}'
          + ''.join(f'\n  {topic}: {n}' for topic, n in sorted(counts.items())))
    return 0
