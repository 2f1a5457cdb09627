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

from .core import contract
from .core.config_paths import default_profile_path
from .core.state_paths import check_base

DEFAULT_CAN_PORT = contract.CAN_HUB_PORT  # socketcand's; the hub binds 127.0.0.1 only

# Launch arguments: name -> (default, description). The launch file declares exactly these.
ARGUMENTS = {
    'profile': (default_profile_path(), 'pack profile YAML (config/profiles/*.yaml)'),
    'namespace': ('', 'namespace of this pack, e.g. pack_a (one per pack on multi-pack robots)'),
    'use_sim_time': ('false', 'use /clock (Gazebo or bag replay) instead of wall time'),
    'simulate': ('true', 'start the simulated pack and a loopback CAN hub instead of hardware'),
    # the CAN bus: empty = the profile's can: section decides (interface, channel, host, port);
    # a value given here overrides that one field for the driver and the simulated pack
    'can_interface': ('', 'python-can interface: socketcand, socketcan, pcan, kvaser, ... '
                          '(empty: the profile\'s can.interface)'),
    'can_channel': ('', 'python-can channel, e.g. can0 or PCAN_USBBUS1 (empty: the profile\'s)'),
    'can_host': ('', 'socketcand host, interface socketcand only (empty: the profile\'s)'),
    'can_port': ('', 'socketcand port, interface socketcand only (empty: the profile\'s; '
                     f'shipped profiles use {DEFAULT_CAN_PORT})'),
    'time_scale': ('1.0', 'simulated seconds per wall second (simulator only)'),
    'balancing': ('true', 'start the balancing node'),
    'motion_limits': ('false', 'start the motion_limits node (power-aware speed limits, '
                               'docs/robot_energy.md)'),
    'state_dir': ('', 'base folder of persisted state (latched trips, SoC): files live in '
                      '<state_dir>/<namespace or _>/<serial_number>/; empty = the profile\'s '
                      'pack.state_dir, else $XDG_STATE_HOME/bms_ros, else ~/.local/state/bms_ros'),
}

CONFIG_ERROR_EXIT = 2   # every node exits with 2 on a ConfigError (bms_ros.nodes.runner)
# control style (b): our estimator and protection as a second opinion, their outputs under own/
SECOND_OPINION_REMAPS = contract.SECOND_OPINION_REMAPS


@dataclass(frozen=True)
class RespawnPolicy:
    """When a dead process is started again: back-off delay_s doubling up to max_delay_s (s),
    at most max_respawns respawns within window_s (s); exit codes in never_codes never.
    """

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
    remappings: tuple = ()         # (from, to) topic / service names, relative


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


CAN_ARGUMENTS = {'can_interface': 'interface', 'can_channel': 'channel', 'can_host': 'host',
                 'can_port': 'port'}   # launch argument -> node parameter (and can: field)


def can_overrides(args):
    """The CAN node parameters the user gave (a non-empty argument), nothing else: the
    profile's `can:` section decides every field not given.
    """
    out = {}
    for argument, parameter in CAN_ARGUMENTS.items():
        value = str(args.get(argument) or '').strip()
        if not value:
            continue
        if parameter == 'port':
            try:
                value = int(value)
            except ValueError:
                raise ValueError(f'{argument}: expected a port number, got {value!r}') from None
            if not 1 <= value <= 65535:
                raise ValueError(f'{argument}: expected a port in 1..65535, got {value}')
        out[parameter] = value
    return out


def is_loopback(host):
    """True for a host name of this machine only (127.x.y.z, ::1, localhost)."""
    return host == 'localhost' or host == '::1' or host.startswith('127.')


def effective_bus(profile, overrides):
    """(interface, channel, host, port) the nodes will use: ``overrides`` over the profile's
    `can:` section (ConfigError for a bad profile).
    """
    from .core.can_bus import load_can_settings
    from .core.profile import Profile
    bus = load_can_settings(Profile(profile)).bus
    return (overrides.get('interface', bus.interface), overrides.get('channel', bus.channel),
            overrides.get('host', bus.host), int(overrides.get('port', bus.port)))


def suite(**overrides):
    """(processes, nodes) of the suite for the given launch arguments."""
    args = resolve_arguments(**overrides)
    profile = os.path.abspath(args['profile'])
    simulate = _flag(args['simulate'])
    common = {'profile': profile, 'use_sim_time': _flag(args['use_sim_time'])}
    can = can_overrides(args)
    processes = []
    nodes = []
    if simulate:
        interface, _, host, port = effective_bus(profile, can)
        # the loopback hub only stands in for a bus on this machine; a socketcand server
        # elsewhere (or any other interface) is the user's bus, never started here
        if interface == 'socketcand' and is_loopback(host):
            processes.append(ProcessSpec('can_hub', 'can_hub', 'bms_ros.tools.can_hub',
                                         ('--host', host, '--port', str(port))))
        nodes.append(NodeSpec('pack_simulator', 'pack_simulator', 'bms_ros.nodes.pack_simulator',
                              {**common, **can, 'time_scale': float(args['time_scale'])}))
    nodes.append(NodeSpec('can_driver', 'can_driver', 'bms_ros.nodes.can_driver',
                          {**common, **can}))
    # persisted state: only passed when set, so each node's own default chain applies
    state = {'state_dir': check_base(args['state_dir'], 'argument', 'state_dir')} \
        if args['state_dir'] else {}
    # imported here: pack_report brings python-can and cantools, which bringup never needs
    from .core.pack_report import control_of_file
    style, second_opinion = control_of_file(profile)
    if style == 'pack':
        # the pack's own BMS owns its contactors (docs/can.md, control styles): its report
        # gives pack_state, estimate, protection_status, battery_state; ours run beside it as
        # a second opinion under own/ (unless can.pack_bms.second_opinion is false)
        nodes.append(NodeSpec('pack_report', 'pack_report', 'bms_ros.nodes.pack_report',
                              dict(common)))
        if second_opinion:
            nodes.append(NodeSpec('state_estimator', 'state_estimator',
                                  'bms_ros.nodes.state_estimator', {**common, **state},
                                  remappings=SECOND_OPINION_REMAPS))
            nodes.append(NodeSpec('protection', 'protection', 'bms_ros.nodes.protection',
                                  {**common, **state}, remappings=SECOND_OPINION_REMAPS))
    else:
        nodes.append(NodeSpec('state_estimator', 'state_estimator',
                              'bms_ros.nodes.state_estimator', {**common, **state}))
        nodes.append(NodeSpec('protection', 'protection', 'bms_ros.nodes.protection',
                              {**common, **state}))
        nodes.append(NodeSpec('pack_supervisor', 'pack_supervisor',
                              'bms_ros.nodes.pack_supervisor', dict(common)))
        if _flag(args['balancing']):
            nodes.append(NodeSpec('balancing', 'balancing', 'bms_ros.nodes.balancing',
                                  dict(common)))
    # the limits come from `estimate`, which either style publishes
    if _flag(args['motion_limits']):
        nodes.append(NodeSpec('motion_limits', 'motion_limits', 'bms_ros.nodes.motion_limits',
                              dict(common)))
    return processes, nodes
