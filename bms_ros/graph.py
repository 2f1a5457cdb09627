"""The suite's node graph, described once for both launch/bms.launch.py and bms_ros.tools.bringup.

Pure Python (no rclpy, no launch): a list of NodeSpec built from the same arguments the launch
file declares. The launch file turns each spec into a launch_ros Node; the bringup tool starts
each as a process (or all in one process); a test checks both read the same specs.

Every spec carries its RespawnPolicy: a process that dies is started again (as hardware would
keep the pack and its contactor controller running while the BMS computer restarts a task),
after a back-off that doubles from delay_s to max_delay_s, at most max_respawns times within
window_s; an exit code in never_codes (2: a configuration error, which a restart cannot fix)
is never respawned. RespawnBudget is the decision, on a clock the caller passes in.
"""
import os
from collections import deque
from dataclasses import dataclass, field

from .core.profile import default_profile_path
from .core.state_paths import check_base

DEFAULT_CAN_PORT = 29536  # socketcand's registered port; the hub binds 127.0.0.1 only

# Launch arguments: name -> (default, description). The launch file declares exactly these.
ARGUMENTS = {
    'profile': (default_profile_path(), 'pack profile YAML (config/profiles/*.yaml)'),
    'namespace': ('', 'namespace of this pack, e.g. pack_a (one per pack on multi-pack robots)'),
    'use_sim_time': ('false', 'use /clock (Gazebo or bag replay) instead of wall time'),
    'simulate': ('true', 'start the simulated pack and a loopback CAN hub instead of hardware'),
    'can_interface': ('socketcand', 'python-can interface: socketcand, socketcan, pcan, kvaser, ...'),
    'can_channel': ('vcan0', 'python-can channel, e.g. can0 or PCAN_USBBUS1'),
    'can_host': ('127.0.0.1', 'socketcand host (interface socketcand only)'),
    'can_port': (str(DEFAULT_CAN_PORT), 'socketcand port (interface socketcand only)'),
    'time_scale': ('1.0', 'simulated seconds per wall second (simulator only)'),
    'balancing': ('true', 'start the balancing node'),
    'state_dir': ('', 'base folder of persisted state (latched trips, SoC): files live in '
                      '<state_dir>/<namespace or _>/<serial_number>/; empty = the profile\'s '
                      'pack.state_dir, else $XDG_STATE_HOME/bms_ros, else ~/.local/state/bms_ros'),
}

CONFIG_ERROR_EXIT = 2   # every node exits with 2 on a ConfigError (bms_ros.nodes.runner)


@dataclass(frozen=True)
class RespawnPolicy:
    """When a dead process is started again: back-off delay_s doubling up to max_delay_s (s),
    at most max_respawns respawns within window_s (s); exit codes in never_codes never."""

    delay_s: float = 1.0
    max_delay_s: float = 8.0
    max_respawns: int = 5
    window_s: float = 60.0
    never_codes: tuple = (CONFIG_ERROR_EXIT,)

    def __post_init__(self):
        if not (0.0 <= self.delay_s <= self.max_delay_s and self.window_s > 0.0
                and self.max_respawns >= 0):
            raise ValueError(f'inconsistent respawn policy: {self}')


RESPAWN = RespawnPolicy()   # every node, the simulated pack and the CAN hub alike


@dataclass(frozen=True)
class RespawnDecision:
    """What to do with a process that exited: respawn after delay_s, or stop the suite."""

    respawn: bool
    delay_s: float           # s until the respawn (0 when not respawning)
    count: int               # respawns within the window, this one included
    reason: str


class RespawnBudget:
    """The respawn decisions of one process, on the caller's clock (monotonic s)."""

    def __init__(self, policy):
        self.policy = policy
        self._respawns_s = deque()   # times of the respawns within the window

    def on_exit(self, returncode, now_s):
        """Decide about an exit with ``returncode`` (negative: killed by that signal)."""
        policy = self.policy
        if returncode in policy.never_codes:
            return RespawnDecision(False, 0.0, len(self._respawns_s),
                                   f'exit code {returncode}: configuration error, not respawned')
        while self._respawns_s and now_s - self._respawns_s[0] >= policy.window_s:
            self._respawns_s.popleft()
        recent = len(self._respawns_s)
        if recent >= policy.max_respawns:
            return RespawnDecision(False, 0.0, recent,
                                   f'{recent} respawns within {policy.window_s:g} s: giving up')
        # the back-off restarts once the window holds no respawn (the process ran a while)
        delay_s = min(policy.delay_s * 2 ** recent, policy.max_delay_s)
        self._respawns_s.append(now_s)
        return RespawnDecision(True, delay_s, recent + 1,
                               f'respawn {recent + 1} of {policy.max_respawns} within '
                               f'{policy.window_s:g} s in {delay_s:g} s')


@dataclass(frozen=True)
class NodeSpec:
    """One node of the suite: how to start it and with which parameters."""

    name: str                      # ROS node name
    executable: str                # console script in lib/bms_ros (setup.py entry point)
    module: str                    # python -m module runs the same main()
    parameters: dict = field(default_factory=dict)
    respawn: RespawnPolicy = RESPAWN


@dataclass(frozen=True)
class ProcessSpec:
    """A helper process that is not a ROS node (the loopback CAN hub)."""

    name: str
    executable: str
    module: str
    arguments: tuple = ()
    respawn: RespawnPolicy = RESPAWN


def _flag(value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ('true', '1', 'yes', 'on'):
        return True
    if text in ('false', '0', 'no', 'off'):
        return False
    raise ValueError(f'expected true or false, got {value!r}')


def resolve_arguments(**overrides):
    """All launch arguments as strings: the defaults with ``overrides`` applied."""
    unknown = set(overrides) - set(ARGUMENTS)
    if unknown:
        raise ValueError(f'unknown argument(s): {", ".join(sorted(unknown))}')
    args = {name: default for name, (default, _) in ARGUMENTS.items()}
    args.update({k: str(v) for k, v in overrides.items() if v is not None})
    return args


def suite(**overrides):
    """(processes, nodes) of the suite for the given launch arguments."""
    args = resolve_arguments(**overrides)
    profile = os.path.abspath(args['profile'])
    simulate = _flag(args['simulate'])
    common = {'profile': profile, 'use_sim_time': _flag(args['use_sim_time'])}
    can = {'interface': args['can_interface'], 'channel': args['can_channel'],
           'host': args['can_host'], 'port': int(args['can_port'])}
    processes = []
    nodes = []
    if simulate:
        if args['can_interface'] == 'socketcand':
            processes.append(ProcessSpec('can_hub', 'can_hub', 'bms_ros.tools.can_hub',
                                         ('--host', args['can_host'], '--port', args['can_port'])))
        nodes.append(NodeSpec('pack_simulator', 'pack_simulator', 'bms_ros.nodes.pack_simulator',
                              {**common, **can, 'time_scale': float(args['time_scale'])}))
    nodes.append(NodeSpec('can_driver', 'can_driver', 'bms_ros.nodes.can_driver', {**common, **can}))
    # persisted state: only passed when set, so each node's own default chain applies
    state = {'state_dir': check_base(args['state_dir'], 'argument', 'state_dir')} \
        if args['state_dir'] else {}
    nodes.append(NodeSpec('state_estimator', 'state_estimator', 'bms_ros.nodes.state_estimator',
                          {**common, **state}))
    nodes.append(NodeSpec('protection', 'protection', 'bms_ros.nodes.protection',
                          {**common, **state}))
    nodes.append(NodeSpec('pack_supervisor', 'pack_supervisor', 'bms_ros.nodes.pack_supervisor',
                          dict(common)))
    if _flag(args['balancing']):
        nodes.append(NodeSpec('balancing', 'balancing', 'bms_ros.nodes.balancing', dict(common)))
    return processes, nodes
