"""The suite's node graph, described once for both launch/bms.launch.py and bms_ros.tools.bringup.

Pure Python (no rclpy, no launch): a list of NodeSpec built from the same arguments the launch
file declares. The launch file turns each spec into a launch_ros Node; the bringup tool starts
each as a process (or all in one process); a test checks both read the same specs.
"""
import os
from dataclasses import dataclass, field

from .core.profile import default_profile_path

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
}


@dataclass(frozen=True)
class NodeSpec:
    """One node of the suite: how to start it and with which parameters."""

    name: str                      # ROS node name
    executable: str                # console script in lib/bms_ros (setup.py entry point)
    module: str                    # python -m module runs the same main()
    parameters: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ProcessSpec:
    """A helper process that is not a ROS node (the loopback CAN hub)."""

    name: str
    executable: str
    module: str
    arguments: tuple = ()


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
    nodes.append(NodeSpec('state_estimator', 'state_estimator', 'bms_ros.nodes.state_estimator',
                          dict(common)))
    nodes.append(NodeSpec('protection', 'protection', 'bms_ros.nodes.protection', dict(common)))
    nodes.append(NodeSpec('pack_supervisor', 'pack_supervisor', 'bms_ros.nodes.pack_supervisor',
                          dict(common)))
    if _flag(args['balancing']):
        nodes.append(NodeSpec('balancing', 'balancing', 'bms_ros.nodes.balancing', dict(common)))
    return processes, nodes
