"""The one `main()` of every node: init, build, spin, shut down; a ConfigError exits 2.

A bad configuration is raised by the node's constructor before it creates any publisher, so
printing it and exiting with code 2 leaves no half-started node in the graph.
"""
import logging
import sys

import rclpy
from rclpy.executors import ExternalShutdownException

from bms_ros.core.errors import ConfigError


def run_node(node_class, name, args=None, on_shutdown=None):
    """Run ``node_class()`` until Ctrl-C or shutdown; ``on_shutdown(node)`` runs before destroy."""
    # core modules log through `logging` (not rclpy): show their messages next to the node's
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] [%(name)s]: %(message)s')
    rclpy.init(args=args)
    try:
        node = node_class()
    except ConfigError as error:
        print(f'{name}: configuration error: {error}', file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(2)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if on_shutdown is not None:
            on_shutdown(node)
        node.destroy_node()
        rclpy.try_shutdown()
