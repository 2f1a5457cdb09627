"""A short-lived rclpy node for one bmsctl verb; clear errors when the suite is not running."""
import os
import signal
import sys
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from bms_ros.core.errors import BmsError


class SuiteNotRunning(BmsError, RuntimeError):
    """No node of the suite answered in time (a RuntimeError too, as callers caught it)."""


class Session:
    """rclpy context for one verb: call services and spin with bounded waits."""

    def __init__(self, namespace=''):
        # our own handlers (bms_ros.tools.bmsctl.main): SIGINT and SIGTERM end the verb with
        # KeyboardInterrupt and this context shuts down cleanly, no traceback
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node('bmsctl', namespace=namespace or '')
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown()

    def call(self, srv_type, name, request, timeout_s):
        """Call service ``name``; its response, SuiteNotRunning after ``timeout_s`` (s)."""
        client = self.node.create_client(srv_type, name)
        full = self.node.resolve_service_name(name)
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise SuiteNotRunning(
                f'no service {full} after {timeout_s:g} s: is the suite running '
                f'(ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")}, namespace '
                f'{self.node.get_namespace()})?')
        future = client.call_async(request)
        deadline = time.monotonic() + timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                raise SuiteNotRunning(f'{full} did not answer within {timeout_s:g} s')
            self.executor.spin_once(timeout_sec=0.05)
        return future.result()

    def spin(self, seconds):
        """Spin the session's node for ``seconds`` (s)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=max(0.0, end - time.monotonic()))


def stop_on_signals():
    """SIGINT and SIGTERM raise KeyboardInterrupt (how systemd, docker and Ctrl-C stop us)."""
    def stop(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def run_call(namespace, timeout_s, srv_type, name, request, describe):
    """Call one service and print ``describe(response)``; exit code 0 on success, 1 refused,
    3 when the suite is not running.
    """
    try:
        with Session(namespace) as session:
            response = session.call(srv_type, name, request, timeout_s)
    except SuiteNotRunning as error:
        print(f'bmsctl: {error}', file=sys.stderr)
        return 3
    ok, text = describe(response)
    print(text)
    return 0 if ok else 1
