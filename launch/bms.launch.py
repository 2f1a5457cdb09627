"""Launch the bms_ros suite for one pack (needs a full ROS 2 install with launch_ros).

    ros2 launch bms_ros bms.launch.py profile:=/path/to/profile.yaml namespace:=pack_a

The node graph comes from bms_ros.graph, the same description `bms_ros.tools.bringup` starts
where launch is not installed, so both always start the same nodes with the same parameters.

Respawn (bms_ros.graph.RespawnPolicy, the same data bringup uses): every process, the simulated
pack and the CAN hub included, is started again when it dies (respawn=True,
respawn_delay=delay_s), at most max_respawns times (respawn_max_retries). Launch differs from
bringup there: its delay is fixed (no doubling back-off), its retry count is for the whole run
(not per window_s), and when the count is used up it leaves that process dead instead of
stopping the suite. An exit with code 2 (configuration error) shuts the launch down, as in
bringup, since a restart cannot fix a bad profile.

The CAN bus: the profile's `can:` section decides; can_interface:=, can_channel:=, can_host:=,
can_port:= override one field each when given. The loopback hub is started only for a
simulated pack on a loopback socketcand bus, with this python, and the nodes after it listens.

Stop it with SIGINT (Ctrl-C; systemd KillSignal=SIGINT, docker STOPSIGNAL SIGINT): on SIGTERM
ros2 launch exits at once and leaves the nodes running (ros2/launch#666).
"""
import sys

from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    OpaqueFunction,
    RegisterEventHandler,
    Shutdown,
)
from launch.event_handlers import OnProcessIO
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from bms_ros.graph import ARGUMENTS, suite
from launch import LaunchDescription


def _shutdown_on(never_codes, name):
    """on_exit of one process: shut the launch down on an exit code that is never respawned."""
    def on_exit(event, context):
        if event.returncode in never_codes:
            return [Shutdown(reason=f'{name} exited with code {event.returncode} '
                                    '(configuration error): not respawned')]
        return None
    return on_exit


def _respawn(spec):
    policy = spec.respawn
    return {'respawn': True, 'respawn_delay': policy.delay_s,
            'respawn_max_retries': policy.max_respawns,
            'on_exit': _shutdown_on(policy.never_codes, spec.name)}


def _nodes(context):
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    namespace = values['namespace']
    processes, nodes = suite(**values)
    node_actions = [Node(package='bms_ros', executable=node.executable, name=node.name,
                         namespace=namespace, parameters=[node.parameters],
                         remappings=list(node.remappings), output='screen',
                         **_respawn(node))
                    for node in nodes]
    if not processes:
        return node_actions
    # the hub runs with this interpreter (the venv's python that runs launch), not the first
    # python3 on PATH; the nodes start once it says it listens (first start only: a respawned
    # hub finds them running, and they reconnect by themselves)
    hub_actions = [ExecuteProcess(cmd=[sys.executable, '-m', process.module, *process.arguments],
                                  name=process.name, output='screen', **_respawn(process))
                   for process in processes]
    return [RegisterEventHandler(OnProcessIO(target_action=hub_actions[0],
                                             on_stdout=_once_listening(node_actions))),
            *hub_actions]


def _once_listening(actions):
    """on_stdout of the hub: ``actions`` the first time it prints that it listens."""
    started = []

    def on_stdout(event):
        if started or b'listening on' not in event.text:
            return None
        started.append(True)
        return actions
    return on_stdout


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, (default, description) in ARGUMENTS.items()]
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])
