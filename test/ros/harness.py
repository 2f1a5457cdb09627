"""Run bms_ros nodes in real separate processes and watch them from a probe node.

Every wait has a timeout and fails with the children's log tails instead of hanging.
"""
import itertools
import os
import signal
import subprocess
import sys
import threading
import time

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

from bms_ros.nodes import qos as contract_qos

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_domains = itertools.count()

# the probe's profiles (bms_ros.core.contract PROBE, PROBE_LATCHED): deep, so a busy probe
# loses none
RELIABLE = contract_qos.PROBE
LATCHED = contract_qos.PROBE_LATCHED


def next_domain_id():
    """A domain for one test: this process's block of 10, cycled."""
    block = int(os.environ.get('BMS_TEST_DOMAIN_BLOCK', '10'))
    return block + next(_domains) % 10


class NodeProcess:
    """A child process running one bms_ros module; its output goes to a log file."""

    def __init__(self, argv, env, log_path):
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, 'wb')
        self.popen = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                      cwd=REPO, start_new_session=True)

    def alive(self):
        return self.popen.poll() is None

    def log_tail(self, lines=30):
        if not self._log.closed:   # a stopped process's log is closed and complete
            self._log.flush()
        with open(self.log_path, 'rb') as stream:
            text = stream.read().decode(errors='replace')
        return '\n'.join(text.splitlines()[-lines:])

    def stop(self, timeout_s=5.0):
        """SIGINT, then SIGKILL after ``timeout_s``; returns the exit code."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGINT)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout_s)
        self._log.close()
        return self.popen.returncode

    def kill(self):
        """SIGKILL at once, as a crash would."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5.0)


class MessageLog:
    """Messages received on one topic, with a bounded wait for the one you need."""

    def __init__(self, env, topic):
        self.env = env
        self.topic = topic
        self.messages = []
        self._cond = threading.Condition()

    def _on_message(self, msg):
        with self._cond:
            self.messages.append((time.monotonic(), msg))
            self._cond.notify_all()

    def wait_for(self, predicate=lambda msg: True, timeout_s=10.0, what=None):
        """First message (old or new) matching ``predicate``; AssertionError on timeout."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        with self._cond:
            while True:
                for _, msg in self.messages[seen:]:
                    if predicate(msg):
                        return msg
                seen = len(self.messages)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.2))
        raise AssertionError(
            f'timeout after {timeout_s} s waiting on {self.topic!r} for {what or "a message"} '
            f'({len(self.messages)} messages seen)\n' + self.env.process_logs())

    def wait_count(self, count, timeout_s=10.0):
        """Wait until at least ``count`` messages have arrived; return them."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f'timeout after {timeout_s} s on {self.topic!r}: {len(self.messages)} of '
                        f'{count} messages\n' + self.env.process_logs())
                self._cond.wait(min(left, 0.2))
            return [msg for _, msg in self.messages]

    def latest(self):
        with self._cond:
            return self.messages[-1][1] if self.messages else None

    def clear(self):
        with self._cond:
            self.messages.clear()


class RosTestEnv:
    """One ROS domain for one test: child node processes plus a probe node in this process."""

    def __init__(self, log_dir, domain_id=None):
        self.domain_id = next_domain_id() if domain_id is None else domain_id
        self.log_dir = str(log_dir)
        self.env = dict(os.environ, ROS_DOMAIN_ID=str(self.domain_id),
                        ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', PYTHONUNBUFFERED='1')
        self.processes = []
        self._clients = {}
        self.context = Context()
        rclpy.init(context=self.context, domain_id=self.domain_id)
        self.node = rclpy.create_node('test_probe', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop_spinning = threading.Event()
        self._spinner = threading.Thread(target=self._spin, daemon=True)
        self._spinner.start()

    def _spin(self):
        while self.context.ok() and not self._stop_spinning.is_set():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # context shut down while spinning
                if self.context.ok():
                    raise
                return

    def start_module(self, module, *args, name=None, params=None, remaps=None, ros_args=True):
        """Start ``python -m module args... --ros-args -p k:=v ...`` in its own process."""
        argv = [sys.executable, '-m', module, *args]
        extra = []
        for key, value in (params or {}).items():
            if isinstance(value, bool):
                value = 'true' if value else 'false'
            extra += ['-p', f'{key}:={value}']
        for src, dst in (remaps or {}).items():
            extra += ['-r', f'{src}:={dst}']
        if ros_args and extra:
            argv += ['--ros-args', *extra]
        label = name or module.rsplit('.', 1)[-1]
        log_path = os.path.join(self.log_dir, f'{label}-{len(self.processes)}.log')
        process = NodeProcess(argv, self.env, log_path)
        process.label = label
        self.processes.append(process)
        return process

    def subscribe(self, msg_type, topic, qos=RELIABLE):
        log = MessageLog(self, topic)
        self.node.create_subscription(msg_type, topic, log._on_message, qos)
        return log

    def publisher(self, msg_type, topic, qos=RELIABLE):
        return self.node.create_publisher(msg_type, topic, qos)

    def wait_for_subscribers(self, publisher, count=1, timeout_s=10.0):
        deadline = time.monotonic() + timeout_s
        while publisher.get_subscription_count() < count:
            if time.monotonic() > deadline:
                raise AssertionError(f'no subscriber on {publisher.topic_name!r} after '
                                     f'{timeout_s} s\n' + self.process_logs())
            time.sleep(0.05)

    def wait_for_nodes(self, expected, timeout_s=10.0):
        """Wait until the graph shows every (name, namespace) of ``expected``; the names seen.

        A node that already publishes may show in the graph a moment later (discovery of
        its node entry is separate from its topics'), so a check right after the suite is
        ready must wait for it.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            names = set(self.node.get_node_names_and_namespaces())
            if set(expected) <= names:
                return names
            if time.monotonic() > deadline:
                raise AssertionError(f'nodes {sorted(set(expected) - names)} not in the graph '
                                     f'after {timeout_s} s: {sorted(names)}')
            time.sleep(0.05)

    def call(self, srv_type, name, request, timeout_s=10.0):
        """Call a service; AssertionError if it is not available or does not answer in time.

        One client per service is kept for the whole test: a client destroyed and re-created
        on the same service can be handed the previous client's late response (seen with
        Fast DDS), as a long-lived client in a real node never is.
        """
        key = (srv_type, name)
        if key not in self._clients:
            self._clients[key] = self.node.create_client(srv_type, name)
        client = self._clients[key]
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise AssertionError(f'service {name!r} not available after {timeout_s} s\n'
                                 + self.process_logs())
        future = client.call_async(request)
        deadline = time.monotonic() + timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                raise AssertionError(f'service {name!r} gave no answer in {timeout_s} s\n'
                                     + self.process_logs())
            time.sleep(0.01)
        return future.result()

    def process_logs(self, lines=25):
        parts = []
        for process in self.processes:
            state = 'running' if process.alive() else f'exited {process.popen.returncode}'
            parts.append(f'--- {process.label} ({state}) ---\n{process.log_tail(lines)}')
        return '\n'.join(parts)

    def close(self):
        for process in reversed(self.processes):
            process.stop()
        # the spinner leaves its wait first: a node destroyed under a waiting executor can
        # crash the whole test process (a segfault in rclpy's wait set was seen)
        self._stop_spinning.set()
        self._spinner.join(5.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
