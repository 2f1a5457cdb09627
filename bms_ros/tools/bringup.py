"""Start the whole suite from bms_ros.graph, the description launch/bms.launch.py uses too.

    python -m bms_ros.tools.bringup [--profile P] [--namespace NS] [--no-simulate] [--status]

One process per node (as `ros2 launch` would), each with its log in --log-dir; a live status
line with --status; Ctrl-C stops everything. Exits non-zero if a node dies.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import time

from bms_ros.graph import ARGUMENTS, suite


def ros_arguments(node, namespace):
    """--ros-args for one node: its name, namespace and parameters."""
    argv = ['--ros-args', '-r', f'__node:={node.name}']
    if namespace:
        argv += ['-r', f'__ns:=/{namespace.strip("/")}']
    for key, value in node.parameters.items():
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        argv += ['-p', f'{key}:={value}']
    return argv


def command_lines(namespace='', **arguments):
    """(name, argv) of every process bringup starts, in start order."""
    processes, nodes = suite(namespace=namespace, **arguments)
    lines = [(p.name, [sys.executable, '-m', p.module, *p.arguments]) for p in processes]
    lines += [(n.name, [sys.executable, '-m', n.module, *ros_arguments(n, namespace)])
              for n in nodes]
    return lines


def wait_for_port(host, port, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Bringup:
    """The started processes, stopped together."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        os.makedirs(log_dir, exist_ok=True)
        self.children = []

    def start(self, name, argv):
        log = open(os.path.join(self.log_dir, f'{name}.log'), 'wb')
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        self.children.append((name, child, log))
        return child

    def dead(self):
        return [(name, child.returncode) for name, child, _ in self.children
                if child.poll() is not None]

    def log_tail(self, name, lines=15):
        with open(os.path.join(self.log_dir, f'{name}.log'), 'rb') as stream:
            return '\n'.join(stream.read().decode(errors='replace').splitlines()[-lines:])

    def stop(self, timeout_s=5.0):
        for _, child, _ in reversed(self.children):
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        for _, child, log in reversed(self.children):
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
            log.close()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, (default, description) in ARGUMENTS.items():
        parser.add_argument('--' + name.replace('_', '-'), dest=name, default=None,
                            help=f'{description} (default: {default})')
    parser.add_argument('--no-simulate', dest='simulate', action='store_const', const='false',
                        help='talk to real hardware (same as --simulate false)')
    parser.add_argument('--status', action='store_true', help='print a live status line')
    parser.add_argument('--request-state', choices=('standby', 'drive', 'charge'),
                        help='ask the pack supervisor for this state once the suite is up')
    parser.add_argument('--duration', type=float, default=0.0,
                        help='stop after this many seconds (0 = until Ctrl-C)')
    parser.add_argument('--log-dir', default=os.path.join('log', 'bringup'),
                        help='one log file per process')
    parser.add_argument('--print-graph', action='store_true',
                        help='print the command lines and exit')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    launch_args = {name: getattr(args, name) for name in ARGUMENTS
                   if getattr(args, name) is not None and name != 'namespace'}
    namespace = args.namespace or ''
    try:
        lines = command_lines(namespace, **launch_args)
    except (ValueError, OSError) as error:
        print(f'bringup: {error}', file=sys.stderr)
        return 2
    if args.print_graph:
        for name, argv in lines:
            print(f'{name}: {" ".join(argv)}')
        return 0

    stop = {'now': False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    bringup = Bringup(args.log_dir)
    code = 0
    monitor = None
    try:
        for name, argv in lines:
            bringup.start(name, argv)
            if name == 'can_hub':
                host = argv[argv.index('--host') + 1]
                port = int(argv[argv.index('--port') + 1])
                if not wait_for_port(host, port, 10.0):
                    print(f'bringup: CAN hub did not open {host}:{port}\n'
                          + bringup.log_tail('can_hub'), file=sys.stderr)
                    return 1
        print(f'bringup: started {", ".join(name for name, _ in lines)}; logs in {args.log_dir}',
              file=sys.stderr)
        if args.status or args.request_state:
            monitor = _Monitor(namespace, args.request_state)
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        while not stop['now'] and (deadline is None or time.monotonic() < deadline):
            dead = bringup.dead()
            if dead:
                for name, returncode in dead:
                    print(f'\nbringup: {name} exited with code {returncode}:\n'
                          + bringup.log_tail(name), file=sys.stderr)
                code = 1
                break
            if monitor is not None:
                monitor.spin(0.5)
                if args.status:
                    line = monitor.line()
                    if sys.stdout.isatty():
                        sys.stdout.write('\r\033[K' + line)
                    else:
                        sys.stdout.write(line + '\n')
                    sys.stdout.flush()
            else:
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        if monitor is not None:
            monitor.close()
        if sys.stdout.isatty():
            sys.stdout.write('\n')
        bringup.stop()
    return code


class _Monitor:
    """rclpy side of bringup: the status subscriber and the optional state request."""

    def __init__(self, namespace, request_state):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from bms_interfaces.msg import PackState
        from bms_interfaces.srv import RequestState
        from bms_ros.tools.status import StatusMonitor

        self.rclpy = rclpy
        rclpy.init()
        self.node = StatusMonitor(namespace)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.request = None
        if request_state:
            state = getattr(PackState, f'STATE_{request_state.upper()}')
            self.client = self.node.create_client(RequestState, 'request_state')
            self.request = RequestState.Request(state=state, requester='bringup')
        self.future = None
        self.tries = 0
        self.next_try = 0.0

    def spin(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=max(0.0, end - time.monotonic()))
            # ask once the supervisor says it is ready (out of OFF), not merely reachable
            state = self.node.latest.get('pack_state')
            ready = state is not None and state.state != state.STATE_OFF \
                and self.node.latest.get('estimate') is not None
            if self.request is not None and self.future is None and ready \
                    and time.monotonic() >= self.next_try and self.client.service_is_ready():
                self.future = self.client.call_async(self.request)
            if self.request is not None and self.future is not None and self.future.done():
                result = self.future.result()
                self.tries += 1
                if result.accepted or self.tries >= 5:
                    print(f'\nbringup: request {"accepted" if result.accepted else "refused"}: '
                          f'{result.reason}', file=sys.stderr)
                    self.request = None
                else:  # the suite may still be settling: try again shortly
                    self.future = None
                    self.next_try = time.monotonic() + 2.0

    def line(self):
        return self.node.line()

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
