"""The one `main()` of every node: init, build, spin, shut down; a ConfigError exits 2.

A bad configuration is raised by the node's constructor before it creates any publisher, so
printing it and exiting with code 2 leaves no half-started node in the graph.

Each node module names its node as ``COMPONENT = Component(NodeClass, 'name', on_shutdown)``:
its ``main()`` runs it alone in a process; bms_ros.tools.container builds several of them in
one process (the constructors take rclpy Node keywords and never call rclpy.init).

Before spinning, both drop rclpy's default QoS-event handlers (drop_qos_event_handlers): each
is a waitable the executor rebuilds into its wait set on every wake-up, the largest share of
its cost at rest (issue 18).
"""
import logging
import sys
from dataclasses import dataclass
from typing import Callable, Optional

import rclpy
from rclpy.executors import ExternalShutdownException

from bms_ros.core.errors import ConfigError

# core lines as rclpy's: level, wall time (epoch s), logger name
LOG_FORMAT = '[%(levelname)s] [%(created).9f] [%(name)s]: %(message)s'


def drop_qos_event_handlers(node):
    """Remove the default QoS-event handlers of every publisher and subscription of ``node``.

    rclpy gives each two (incompatible QoS, incompatible type: a warning in the log); with
    about 70 in a container they were most of the executor's per-wake-up work (py-spy, issue
    18). Our publishers and subscribers take their QoS from bms_ros.core.contract (checked by
    test_contract), and a foreign peer with an incompatible QoS still warns on its side.
    Returns the number removed.
    """
    removed = 0
    for entity in (*node.publishers, *node.subscriptions):
        for handler in entity.event_handlers:
            node.remove_waitable(handler)
            handler.destroy()
            removed += 1
        entity.event_handlers = []
    return removed


@dataclass(frozen=True)
class Component:
    """A node class, its default name and what runs before it is destroyed (persisting)."""

    node_class: type
    name: str
    on_shutdown: Optional[Callable] = None

    def main(self, args=None):
        """The node alone in this process (init, spin, shutdown; exit 2 on a ConfigError)."""
        run_node(self.node_class, self.name, args, self.on_shutdown)


def run_node(node_class, name, args=None, on_shutdown=None):
    """Run ``node_class()`` until Ctrl-C or shutdown; ``on_shutdown(node)`` runs before destroy."""
    # core modules log through `logging` (not rclpy): show their messages next to the node's
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    rclpy.init(args=args)
    try:
        node = node_class()
    except ConfigError as error:
        print(f'{name}: configuration error: {error}', file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(2)
    drop_qos_event_handlers(node)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:  # noqa: BLE001
        # Ctrl-C shut the context down under a running callback (its publish fails with
        # "publisher's context is invalid", rclpy's RCLError): a stop, not a crash. With the
        # context still up, any exception is a crash.
        if rclpy.ok():
            raise
    finally:
        if on_shutdown is not None:
            on_shutdown(node)
        node.destroy_node()
        rclpy.try_shutdown()
