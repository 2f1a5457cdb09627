"""Launch the bms_ros suite for one pack (needs a full ROS 2 install with launch_ros).

    ros2 launch bms_ros bms.launch.py profile:=/path/to/profile.yaml namespace:=pack_a

The node graph comes from bms_ros.graph, the same description `bms_ros.tools.bringup` starts
where launch is not installed, so both always start the same nodes with the same parameters.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from bms_ros.graph import ARGUMENTS, suite


def _nodes(context):
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    namespace = values['namespace']
    processes, nodes = suite(**values)
    actions = [ExecuteProcess(cmd=['python3', '-m', process.module, *process.arguments],
                              name=process.name,
                              output='screen')
               for process in processes]
    actions += [Node(package='bms_ros', executable=node.executable, name=node.name,
                     namespace=namespace, parameters=[node.parameters], output='screen')
                for node in nodes]
    return actions


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, (default, description) in ARGUMENTS.items()]
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])
