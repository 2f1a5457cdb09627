"""Start the whole suite from bms_ros.graph, the description launch/bms.launch.py uses too.

    python -m bms_ros.tools.bringup [--profile P] [--namespace NS] [--no-simulate] [--status]
                                    [--state-dir DIR]

One process per node (as `ros2 launch` would), each with its log in --log-dir; a live status
line with --status; Ctrl-C (or SIGTERM) stops everything, the BMS nodes first, then the
simulated pack and the CAN hub.

A process that dies is respawned, as launch's respawn does, with each spec's RespawnPolicy
(bms_ros.graph: back-off 1 s doubling to 8 s, at most 5 respawns per 60 s); the simulated pack
and the hub stay up meanwhile, as a real pack would. Every death and respawn is reported on
stderr. Exit codes: 0 stopped on request; 2 a process exited with code 2 (configuration error:
never respawned) or a bad argument; 1 a process used up its respawns, or the hub did not start.
"""
import argparse
import ctypes
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

from bms_ros.core import contract
from bms_ros.core.errors import ConfigError
from bms_ros.graph import ARGUMENTS, CONFIG_ERROR_EXIT, RESPAWN, RespawnBudget, RespawnPolicy, suite

_SPECS_FLAG = '--specs-json'   # internal: bringup's spec child (_specs_in_child)

POLL_S = 0.1             # s between checks of the children (a death is seen this fast)
STATUS_PERIOD_S = 0.5    # s between status lines
SIMULATED_HARDWARE = ('pack_simulator', 'can_hub')   # stopped last: the pack outlives the BMS
_PR_SET_PDEATHSIG = 1    # prctl(2) option: a signal for the child when its parent dies


def _die_with_parent(parent_pid):
    """A preexec_fn: the child gets SIGTERM when bringup dies, even by SIGKILL.

    The children run in their own sessions (a Ctrl-C reaches bringup only, which stops them in
    order); without this link a bringup killed outright would leave every node running.
    """
    if not sys.platform.startswith('linux'):
        return None
    # prctl resolved here, in bringup: between fork and exec the child only calls it (a library
    # lookup there would run ldconfig in a half-made process)
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def link():
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:   # bringup died before the link was made
            os._exit(1)
    return link


def ros_arguments(node, namespace):
    """--ros-args for one node: its name, namespace and parameters."""
    argv = ['--ros-args', '-r', f'__node:={node.name}']
    if namespace:
        argv += ['-r', f'__ns:=/{namespace.strip("/")}']
    for key, value in node.parameters.items():
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        argv += ['-p', f'{key}:={value}']
    for source, target in getattr(node, 'remappings', ()):
        argv += ['-r', f'{source}:={target}']
    return argv


def command_lines(namespace='', single_process=False, container_args=(), **arguments):
    """(name, argv) of every process bringup starts, in start order."""
    return [(name, argv) for name, argv, _
            in _specs(namespace, single_process, container_args, **arguments)]


def _specs(namespace='', single_process=False, container_args=(), **arguments):
    """(name, argv, respawn policy) of every process, in start order. ``single_process``: the
    BMS nodes in one bms_ros.tools.container process (named 'container'), built from the same
    arguments (and ``container_args``); the simulated pack and the hub keep their own
    processes.
    """
    processes, nodes = suite(namespace=namespace, **arguments)
    lines = [(p.name, [sys.executable, '-m', p.module, *p.arguments], p.respawn)
             for p in processes]
    if single_process:
        from bms_ros.tools.container import HARDWARE
        lines += [(n.name, [sys.executable, '-m', n.module, *ros_arguments(n, namespace)],
                   n.respawn) for n in nodes if n.name in HARDWARE]
        argv = [sys.executable, '-m', 'bms_ros.tools.container']
        for name, value in arguments.items():
            if value is not None:
                argv += ['--' + name.replace('_', '-'), str(value)]
        if namespace:
            argv += ['--namespace', namespace]
        lines.append(('container', [*argv, *container_args], RESPAWN))
        return lines
    lines += [(n.name, [sys.executable, '-m', n.module, *ros_arguments(n, namespace)], n.respawn)
              for n in nodes]
    return lines


def _specs_in_child(namespace='', single_process=False, container_args=(), **arguments):
    """:func:`_specs` computed by a short-lived child process: reading the profile imports
    numpy, python-can and cantools (~20 MiB), which this supervising process then never holds.
    A bad argument or profile raises ValueError with the child's message.
    """
    request = json.dumps({'namespace': namespace, 'single_process': single_process,
                          'container_args': list(container_args), 'arguments': arguments})
    done = subprocess.run([sys.executable, '-m', 'bms_ros.tools.bringup', _SPECS_FLAG],
                          input=request, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ValueError(done.stderr.strip() or f'bringup spec child exited {done.returncode}')
    return [(name, argv, RespawnPolicy(**{**policy, 'never_codes': tuple(policy['never_codes'])}))
            for name, argv, policy in json.loads(done.stdout)]


def _print_specs():
    """The child's side of :func:`_specs_in_child`: request on stdin, specs as JSON on stdout."""
    request = json.load(sys.stdin)
    try:
        specs = _specs(request['namespace'], request['single_process'],
                       tuple(request['container_args']), **request['arguments'])
    except (ValueError, OSError, ConfigError) as error:
        print(error, file=sys.stderr)
        return 2
    json.dump([(name, argv, dataclasses.asdict(policy)) for name, argv, policy in specs],
              sys.stdout)
    return 0


def dashboard_spec(profile=None):
    """(name, argv, respawn policy) of the web dashboard: in the root namespace, it finds every
    pack of the graph; its settings are the profile's dashboard: section.
    """
    profile = os.path.abspath(profile or ARGUMENTS['profile'][0])
    return ('dashboard', [sys.executable, '-m', 'bms_ros.nodes.dashboard', '--ros-args',
                          '-r', '__node:=dashboard', '-p', f'profile:={profile}'], RESPAWN)


def wait_for_port(host, port, timeout_s, child=None):
    """True once ``host:port`` accepts connections (False if ``child`` exits meanwhile)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def port_in_use(host, port):
    """The error text if ``host:port`` cannot be bound now (another suite's hub?), else ''."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the hub binds
        try:
            sock.bind((host, port))
        except OSError as error:
            return error.strerror or str(error)
    return ''


def free_port(host):
    """A TCP port on ``host`` that nobody holds now (the OS's choice)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def log_folder(base, namespace):
    """The log folder of one pack: <base>/<namespace or _> (two packs never share one)."""
    return os.path.join(base, namespace.strip('/').replace('/', '.') or '_')


LOG_ROTATE_BYTES = 10_000_000   # a log larger than this at a start is moved to <name>.log.1


def describe_exit(returncode):
    """'code 2' or 'signal SIGKILL' for a Popen return code."""
    if returncode is not None and returncode < 0:
        try:
            return f'signal {signal.Signals(-returncode).name}'
        except ValueError:
            return f'signal {-returncode}'
    return f'code {returncode}'


class Child:
    """One process of the suite: its command line, log, respawn budget and current Popen."""

    def __init__(self, name, argv, policy, log_dir):
        self.name, self.argv = name, argv
        self.budget = RespawnBudget(policy)
        self.log_path = os.path.join(log_dir, f'{name}.log')
        self.popen = None
        self.log = None
        self.starts = 0
        self.respawn_at = None   # monotonic s of a scheduled respawn, None if none

    @property
    def pid(self):
        """The child's process id, None before it started."""
        return self.popen.pid if self.popen is not None else None

    def start(self):
        """Start (or restart) the child process, its output appended to its log."""
        if self.log is not None:
            self.log.close()
        # every run appends with a dated header (a respawn too, so the tail shows the crash);
        # a log grown past LOG_ROTATE_BYTES is moved aside to <name>.log.1 at a first start
        if not self.starts:
            try:
                if os.path.getsize(self.log_path) > LOG_ROTATE_BYTES:
                    os.replace(self.log_path, self.log_path + '.1')
            except OSError:
                pass
        self.log = open(self.log_path, 'ab')
        what = f'respawn {self.starts}' if self.starts else 'start'
        self.log.write(f'--- bringup: {what} at {time.strftime("%Y-%m-%d %H:%M:%S %z")} '
                       '---\n'.encode())
        self.log.flush()
        self.popen = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                      start_new_session=True,
                                      preexec_fn=_die_with_parent(os.getpid()))
        self.starts += 1
        self.respawn_at = None
        return self.popen

    def running(self):
        """True while the child process runs."""
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines=15):
        """The last ``lines`` lines of the child's log ('' if none)."""
        try:
            with open(self.log_path, 'rb') as stream:
                text = stream.read().decode(errors='replace')
        except OSError:
            return ''
        return '\n'.join(text.splitlines()[-lines:])


class Bringup:
    """The started processes: respawned on death by their policy, stopped together."""

    def __init__(self, log_dir, report=None):
        self.log_dir = log_dir
        os.makedirs(log_dir, exist_ok=True)
        self.children = {}
        self.report = report or (lambda text: print(text, file=sys.stderr, flush=True))
        self.respawns = {}       # name -> respawns so far (for the status line)

    def start(self, name, argv, policy):
        """Start child ``name`` (command ``argv``, respawn ``policy``); the Child."""
        child = Child(name, argv, policy, self.log_dir)
        self.children[name] = child
        child.start()
        return child

    def poll(self, now_s):
        """Respawn what is due, decide about what died. Returns (name, exit code, reason) of a
        death that stops the suite, else None.
        """
        for child in self.children.values():
            if child.respawn_at is not None and now_s >= child.respawn_at:
                child.start()
                self.respawns[child.name] = self.respawns.get(child.name, 0) + 1
                self.report(f'bringup: {child.name} respawned (pid {child.pid})')
        for child in self.children.values():
            if child.respawn_at is not None or child.running():
                continue
            code = child.popen.returncode
            decision = child.budget.on_exit(code, now_s)
            tail = child.log_tail(5)
            self.report(f'bringup: {child.name} (pid {child.pid}) exited with '
                        f'{describe_exit(code)}; {decision.reason}'
                        + (f'\n{_indent(tail)}' if tail and decision.respawn else ''))
            if not decision.respawn:
                return child.name, code, decision.reason
            child.respawn_at = now_s + decision.delay_s
        return None

    def status_note(self):
        """Short status-line suffix naming the respawned processes ('' if none)."""
        if not self.respawns:
            return ''
        return ' | respawns: ' + ', '.join(f'{name} {count}'
                                           for name, count in self.respawns.items())

    def stop(self, timeout_s=5.0):
        """SIGINT the BMS nodes, then the simulated pack and hub; SIGKILL what stays.

        Reports what it took. (main() ignores Ctrl-C and SIGTERM from here on.)
        """
        started = time.monotonic()
        killed = []
        bms = [c for c in self.children.values() if c.name not in SIMULATED_HARDWARE]
        hardware = [c for c in self.children.values() if c.name in SIMULATED_HARDWARE]
        for group in (bms, hardware):
            killed += self._stop_group(group, timeout_s)
        for child in self.children.values():
            if child.log is not None:
                child.log.close()
        if self.children:
            self.report(f'bringup: stopped in {time.monotonic() - started:.1f} s'
                        + (f'; SIGKILLed after {timeout_s:g} s: {", ".join(killed)}'
                           if killed else ''))

    @staticmethod
    def _stop_group(group, timeout_s):
        """SIGINT every child of ``group``, SIGKILL those alive after ``timeout_s``; their names."""
        killed = []
        for child in reversed(group):
            child.respawn_at = None
            if child.running():
                try:
                    os.killpg(child.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout_s
        for child in reversed(group):
            if child.popen is None:
                continue
            try:
                child.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                killed.append(child.name)
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except ProcessLookupError:  # it exited just now
                    pass
                child.popen.wait()
        return killed


def _indent(text):
    return '\n'.join('    ' + line for line in text.splitlines())


def _hub_address(specs):
    """(host, port) of the loopback hub among the specs, None if none is started."""
    for name, argv, _ in specs:
        if name == 'can_hub':
            return argv[argv.index('--host') + 1], int(argv[argv.index('--port') + 1])
    return None


def parse_args(argv=None):
    """The parsed command line (``argv``: default sys.argv[1:])."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, (default, description) in ARGUMENTS.items():
        parser.add_argument('--' + name.replace('_', '-'), dest=name, default=None,
                            help=f'{description} (default: {default or "none"})')
    parser.add_argument('--no-simulate', dest='simulate', action='store_const', const='false',
                        help='talk to real hardware (same as --simulate false)')
    parser.add_argument('--status', action='store_true', help='print a live status line')
    parser.add_argument('--request-state', choices=('standby', 'drive', 'charge'),
                        help='ask the pack supervisor for this state once the suite is up')
    parser.add_argument('--duration', type=float, default=0.0,
                        help='stop after this many seconds (0 = until Ctrl-C)')
    parser.add_argument('--log-dir', default=None,
                        help='one log file per process, appended with a dated header per start '
                             '(default: log/bringup/<namespace or _>)')
    parser.add_argument('--print-graph', action='store_true',
                        help='print the command lines and exit')
    parser.add_argument('--single-process', action='store_true',
                        help='every BMS node in one process (bms_ros.tools.container, a '
                             'thread and an executor per node); the simulated pack and hub '
                             'apart')
    parser.add_argument('--dashboard', action='store_true',
                        help='also start the web dashboard (bms_ros.nodes.dashboard; the '
                             'profile\'s dashboard: section, default '
                             f'http://127.0.0.1:{contract.DASHBOARD_PORT}/)')
    parser.add_argument('--executor', choices=('multi', 'single', 'events'), default=None,
                        help='with --single-process: the container\'s executor (default multi)')
    return parser.parse_args(argv)


def main(argv=None):
    """The bms-bringup command line; the exit code."""
    if (sys.argv[1:] if argv is None else argv) == [_SPECS_FLAG]:
        return _print_specs()
    args = parse_args(argv)
    launch_args = {name: getattr(args, name) for name in ARGUMENTS
                   if getattr(args, name) is not None and name != 'namespace'}
    namespace = args.namespace or ''
    container_args = ('--executor', args.executor) if args.executor else ()
    if args.log_dir is None:
        args.log_dir = log_folder(os.path.join('log', 'bringup'), namespace)
    try:
        specs = _specs_in_child(namespace, args.single_process, container_args,
                                **launch_args)
    except (ValueError, OSError, ConfigError) as error:
        print(f'bringup: {error}', file=sys.stderr)
        return 2
    hub = _hub_address(specs)
    if hub is not None and args.can_port is None and port_in_use(*hub):
        # a second pack on this machine: its own hub on a free port, passed to every node
        port = free_port(hub[0])
        print(f'bringup: CAN hub port {hub[0]}:{hub[1]} is taken (another suite?); using '
              f'{hub[0]}:{port} (--can-port N to choose)', file=sys.stderr)
        launch_args['can_port'] = str(port)
        specs = _specs_in_child(namespace, args.single_process, container_args,
                                **launch_args)
    if args.dashboard:
        specs.append(dashboard_spec(launch_args.get('profile')))
    if args.print_graph:
        for name, argv, _ in specs:
            print(f'{name}: {" ".join(argv)}')
        return 0

    stop = {'now': False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    # Ctrl-C stops the suite even when SIGINT came in ignored (a background job of a
    # non-interactive shell inherits SIG_IGN, and Python then installs no handler): else the
    # only way to stop bringup would be SIGKILL, which leaves the ordered stop undone
    signal.signal(signal.SIGINT, signal.default_int_handler)
    bringup = Bringup(args.log_dir)
    code = 0
    monitor = None
    try:
        for name, argv, policy in specs:
            if name == 'can_hub':
                host = argv[argv.index('--host') + 1]
                port = int(argv[argv.index('--port') + 1])
                # another suite's hub on this port would carry both packs' frames on one bus
                problem = port_in_use(host, port)
                if problem:
                    print(f'bringup: CAN hub port {host}:{port} is not free ({problem}); another '
                          'suite runs there? Choose a free one with --can-port', file=sys.stderr)
                    return 2
            child = bringup.start(name, argv, policy)
            if name == 'can_hub' and not wait_for_port(host, port, 10.0, child.popen):
                print(f'bringup: CAN hub did not open {host}:{port}\n'
                      + child.log_tail(), file=sys.stderr)
                return CONFIG_ERROR_EXIT if child.popen.poll() == CONFIG_ERROR_EXIT else 1
        started = ', '.join(f'{c.name} (pid {c.pid})' for c in bringup.children.values())
        print(f'bringup: started {started}; logs in {args.log_dir}', file=sys.stderr, flush=True)
        if args.status or args.request_state:
            monitor = _Monitor(namespace, args.request_state)
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        next_status = time.monotonic()
        while not stop['now'] and (deadline is None or time.monotonic() < deadline):
            fatal = bringup.poll(time.monotonic())
            if fatal is not None:
                name, returncode, reason = fatal
                print(f'\nbringup: stopping the suite: {name} exited with '
                      f'{describe_exit(returncode)} ({reason}):\n'
                      + bringup.children[name].log_tail(), file=sys.stderr)
                code = CONFIG_ERROR_EXIT if returncode == CONFIG_ERROR_EXIT else 1
                break
            if monitor is not None:
                monitor.spin(POLL_S)
                if args.status and time.monotonic() >= next_status:
                    next_status = time.monotonic() + STATUS_PERIOD_S
                    note = bringup.status_note()     # the line stays within 80 columns
                    line = monitor.line(max(40, 80 - len(note))) + note
                    if sys.stdout.isatty():
                        sys.stdout.write('\r\033[K' + line)
                    else:
                        sys.stdout.write(line + '\n')
                    sys.stdout.flush()
            else:
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        pass
    finally:
        if sys.stdout.isatty():
            sys.stdout.write('\n')
        # a second Ctrl-C or a SIGTERM from here to the end is ignored: one during the stop
        # would orphan the children (they run in their own sessions), one just after it would
        # end bringup by a KeyboardInterrupt instead of its exit code
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        bringup.stop()           # the children first: closing the monitor must not delay it
        if monitor is not None:
            monitor.close()
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
            self.client = self.node.create_client(RequestState, contract.REQUEST_STATE)
            self.request = RequestState.Request(state=state, requester='bringup')
        self.future = None
        self.tries = 0
        self.next_try = 0.0

    def spin(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=max(0.0, end - time.monotonic()))
            # ask once the supervisor says it is ready (out of OFF), not merely reachable
            state = self.node.latest.get('pack_state')     # message dicts (tools/status.py)
            ready = state is not None and state['state_name'] != 'OFF' \
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

    def line(self, width=80):
        from bms_ros.core.operator_view import DEFAULT_FIELDS
        return self.node.line(DEFAULT_FIELDS, width)

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
