"""Every BMS node of one pack in one process, as a ROS component container does.

    python -m bms_ros.tools.container [--profile P] [--namespace NS] [--state-dir DIR] ...

Takes bringup's launch arguments and builds the nodes of bms_ros.graph (the same names,
namespace and parameters as one process per node; the simulated pack and the CAN hub, which
stand for hardware, are left to their own processes), each from its module's COMPONENT with
its own --ros-args (so no node sees another's parameters or remaps), all in one rclpy context.
By default each node spins on its own single-threaded executor in its own thread, as rclcpp's
component_container_isolated does (bms_ros.tools.isolated_executor): its callbacks never run
concurrently, as in its own process, and another node's callbacks run beside them. A wake-up
rebuilds only that node's wait set, which is what makes it cheaper at rest than one
MultiThreadedExecutor over all nodes (``--executor multi``, as component_container_mt).

Configuration first: every node's constructor is run once up to its first publisher (all its
parameters and profile sections; nothing is published, no /rosout, no parameter services) and
the node destroyed; a ConfigError in any of them prints it and exits 2 before any node of the
container has a publisher. Then the nodes are built for real and spun.

A node that raises out of a callback (or the CAN driver's exit 1 when its reader's restart
budget is spent) stops the whole container with code 1: bringup respawns it, with every node.
Exit codes: 0 on Ctrl-C / SIGTERM, 1 a node failed, 2 a configuration error.
"""
import argparse
import importlib
import logging
import os
import sys

from bms_ros.core.errors import BmsError, ConfigError
from bms_ros.graph import ARGUMENTS, CONFIG_ERROR_EXIT, suite

HARDWARE = ('pack_simulator',)   # the simulated pack stands for hardware: its own process
# isolated: a thread and an executor per node (the default); multi: one MultiThreadedExecutor,
# by default with a thread per node, so that a node's timer never waits for a free thread
# while other nodes' callbacks run; single: every callback on one thread. All share the GIL
EXECUTORS = ('isolated', 'multi', 'single', 'events')
# rclpy's experimental EventsExecutor (Jazzy) fires none of this suite's timers: with it the
# container published no measurement, status or command (STANDBY, 8 s probed: only the latched
# pack_state of the start), the simulated pack's command timeout opened the contactors. A
# BMS that stops is refused at start, not run (issue 18)
REFUSED_EXECUTORS = {'events': 'rclpy\'s experimental EventsExecutor does not fire this '
                               'suite\'s timers (no measurement, status or command would be '
                               'published): use multi or single'}


class _ConfigChecked(BmsError):
    """Raised at a node's first publisher during the configuration pass (a signal, caught by
    check_configuration; no node constructor catches BmsError, so it reaches it unchanged).
    """


def bms_nodes(namespace='', **arguments):
    """The NodeSpecs the container runs: bms_ros.graph's nodes without the simulated pack."""
    _, nodes = suite(namespace=namespace, **arguments)
    return [node for node in nodes if node.name not in HARDWARE]


def component(spec):
    """The Component (bms_ros.nodes.runner) of a NodeSpec's module."""
    found = getattr(importlib.import_module(spec.module), 'COMPONENT', None)
    if found is None:
        raise ValueError(f'{spec.module} names no COMPONENT: it cannot run in the container')
    return found


def node_options(spec, namespace):
    """rclpy Node keywords of one spec: its own --ros-args (name, namespace, parameters)."""
    from bms_ros.tools.bringup import ros_arguments
    return {'cli_args': ros_arguments(spec, namespace), 'use_global_arguments': False}


def check_configuration(comp, options):
    """Run the constructor of ``comp`` up to its first publisher, then destroy the node.
    Raises the ConfigError the node would raise; returns None.
    """
    import rclpy.logging

    quiet = rclpy.logging.get_logger(f'{comp.name}.configuration_check')
    quiet.set_level(rclpy.logging.LoggingSeverity.ERROR)   # its info is the real run's to say

    class Checked(comp.node_class):
        def get_logger(self):
            return quiet

        def create_publisher(self, msg_type, topic, *args, **kwargs):
            if topic == '/parameter_events':   # rclpy's own, in Node.__init__
                return super().create_publisher(msg_type, topic, *args, **kwargs)
            raise _ConfigChecked(self)

    Checked.__name__ = comp.node_class.__name__
    try:
        node = Checked(**options, enable_rosout=False, start_parameter_services=False)
    except _ConfigChecked as checked:
        node = checked.args[0]
    node.destroy_node()


def make_executor(kind, threads):
    """The executor that spins every node of the container."""
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    if kind == 'isolated':
        from bms_ros.tools.isolated_executor import IsolatedExecutor
        return IsolatedExecutor()
    if kind == 'multi':
        return MultiThreadedExecutor(num_threads=threads)
    if kind == 'single':
        return SingleThreadedExecutor()
    from rclpy.experimental import EventsExecutor
    return EventsExecutor()


def parse_args(argv=None):
    """The parsed command line (``argv``: default sys.argv[1:])."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    for name, (default, description) in ARGUMENTS.items():
        parser.add_argument('--' + name.replace('_', '-'), dest=name, default=None,
                            help=f'{description} (default: {default or "none"})')
    parser.add_argument('--executor', choices=EXECUTORS, default=EXECUTORS[0],
                        help='isolated: a SingleThreadedExecutor and a thread per node (as '
                             'component_container_isolated); multi: one MultiThreadedExecutor '
                             '(as component_container_mt); single: one SingleThreadedExecutor; '
                             'events: rclpy\'s experimental EventsExecutor, refused (it fires '
                             'no timer of this suite) (default isolated)')
    parser.add_argument('--threads', type=int, default=0,
                        help='threads of the multi executor (default 0: one per node)')
    return parser.parse_args(argv)


def main(argv=None):
    """The container command line: the nodes in one process; the exit code."""
    args = parse_args(argv)
    if args.threads < 0:
        print('container: --threads must be >= 0', file=sys.stderr)
        return CONFIG_ERROR_EXIT
    if args.executor in REFUSED_EXECUTORS:
        print(f'container: --executor {args.executor}: {REFUSED_EXECUTORS[args.executor]}',
              file=sys.stderr)
        return CONFIG_ERROR_EXIT
    arguments = {name: getattr(args, name) for name in ARGUMENTS
                 if getattr(args, name) is not None and name != 'namespace'}
    namespace = args.namespace or ''
    try:
        specs = bms_nodes(namespace, **arguments)
        components = [component(spec) for spec in specs]
    except (ValueError, OSError, ConfigError) as error:
        print(f'container: {error}', file=sys.stderr)
        return CONFIG_ERROR_EXIT

    import rclpy
    from rclpy.executors import ExternalShutdownException

    from bms_ros.nodes.runner import LOG_FORMAT, drop_qos_event_handlers

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # rclpy's signal handlers turn SIGINT and SIGTERM into a shutdown of the context: the
    # spin ends and every node is persisted and destroyed below
    rclpy.init(args=None)
    nodes = []            # (component, node), in start order
    code = 0
    try:
        options = [node_options(spec, namespace) for spec in specs]
        for spec, comp, opts in zip(specs, components, options):
            try:
                check_configuration(comp, opts)
            except ConfigError as error:
                print(f'{spec.name}: configuration error: {error}', file=sys.stderr)
                return CONFIG_ERROR_EXIT
        for spec, comp, opts in zip(specs, components, options):
            try:
                nodes.append((comp, comp.node_class(**opts)))
            except ConfigError as error:   # changed on disk since the check
                print(f'{spec.name}: configuration error: {error}', file=sys.stderr)
                return CONFIG_ERROR_EXIT
        threads = args.threads or len(nodes)
        executor = make_executor(args.executor, threads)
        for _, node in nodes:
            drop_qos_event_handlers(node)
            executor.add_node(node)
        names = ', '.join(node.get_fully_qualified_name() for _, node in nodes)
        threads = {'multi': f'{threads} threads', 'isolated': 'a thread per node'}.get(
            args.executor, 'one thread')
        nodes[0][1].get_logger().info(f'container (pid {os.getpid()}): {names}; '
                                      f'{args.executor} executor, {threads}')
        try:
            executor.spin()
        finally:
            executor.shutdown(timeout_sec=2.0)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except SystemExit as exit_:       # a node's own exit (the CAN driver's reader budget)
        code = exit_.code if isinstance(exit_.code, int) else 1
    except Exception:                 # a node's callback failed: the whole container goes
        if rclpy.ok():                # (not a publish cut short by Ctrl-C's shutdown)
            logging.getLogger('container').exception('a node failed: stopping every node')
            code = 1
    finally:
        for comp, node in reversed(nodes):
            try:
                if comp.on_shutdown is not None:
                    comp.on_shutdown(node)
            finally:
                node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())
