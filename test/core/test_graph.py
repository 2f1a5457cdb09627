"""launch/bms.launch.py and the bringup tool start the same node graph from bms_ros.graph.

launch and launch_ros are not installable here, so the launch file is executed against small
stand-ins that record what it asks for; the same stand-ins would fail if it used an API the
real packages do not have in the way it is used.
"""
import importlib.util
import os
import sys
import types

import pytest

from bms_ros.graph import ARGUMENTS, suite
from bms_ros.tools.bringup import command_lines, ros_arguments

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Recorder:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context.launch_configurations[self.name]


@pytest.fixture
def launch_file(monkeypatch):
    """Import launch/bms.launch.py with recording stand-ins for launch and launch_ros."""
    launch = types.ModuleType('launch')
    launch.LaunchDescription = _Recorder
    actions = types.ModuleType('launch.actions')
    actions.DeclareLaunchArgument = _Recorder
    actions.ExecuteProcess = _Recorder
    actions.OpaqueFunction = _Recorder
    substitutions = types.ModuleType('launch.substitutions')
    substitutions.LaunchConfiguration = _LaunchConfiguration
    launch_ros = types.ModuleType('launch_ros')
    ros_actions = types.ModuleType('launch_ros.actions')
    ros_actions.Node = _Recorder
    for name, module in (('launch', launch), ('launch.actions', actions),
                         ('launch.substitutions', substitutions), ('launch_ros', launch_ros),
                         ('launch_ros.actions', ros_actions)):
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location(
        'bms_launch', os.path.join(REPO, 'launch', 'bms.launch.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_launch(module, **overrides):
    description = module.generate_launch_description()
    entities = description.args[0]
    declared = {e.args[0]: e.kwargs['default_value'] for e in entities
                if isinstance(e, _Recorder) and 'default_value' in e.kwargs}
    opaque = [e for e in entities if 'function' in e.kwargs]
    context = types.SimpleNamespace(launch_configurations={**declared, **overrides})
    return declared, opaque[0].kwargs['function'](context)


@pytest.mark.parametrize('overrides', [
    {},
    {'namespace': 'pack_a', 'simulate': 'false', 'can_interface': 'pcan',
     'can_channel': 'PCAN_USBBUS1', 'use_sim_time': 'true'},
    {'balancing': 'false', 'can_port': '30001', 'time_scale': '20'},
])
def test_launch_file_and_bringup_start_the_same_graph(launch_file, overrides):
    declared, actions = _run_launch(launch_file, **overrides)
    assert declared == {name: default for name, (default, _) in ARGUMENTS.items()}
    launched = {}
    for action in actions:
        if 'package' in action.kwargs:
            assert action.kwargs['package'] == 'bms_ros'
            assert action.kwargs['namespace'] == overrides.get('namespace', '')
            launched[action.kwargs['name']] = (action.kwargs['executable'],
                                               action.kwargs['parameters'][0])
        else:
            launched[action.kwargs['name']] = tuple(action.kwargs['cmd'][1:])
    launch_args = {k: v for k, v in overrides.items() if k != 'namespace'}
    processes, nodes = suite(**launch_args)
    expected = {p.name: ('-m', p.module, *p.arguments) for p in processes}
    expected.update({n.name: (n.executable, n.parameters) for n in nodes})
    assert launched == expected
    # bringup runs the same modules with the same parameters, node names and namespace
    lines = dict(command_lines(overrides.get('namespace', ''), **launch_args))
    assert set(lines) == set(expected)
    for node in nodes:
        assert lines[node.name][1:3] == ['-m', node.module]
        assert lines[node.name][3:] == ros_arguments(node, overrides.get('namespace', ''))


def test_graph_contents():
    processes, nodes = suite()
    assert [p.name for p in processes] == ['can_hub']
    assert [n.name for n in nodes] == ['pack_simulator', 'can_driver', 'state_estimator',
                                       'protection', 'pack_supervisor', 'balancing']
    _, hardware = suite(simulate='false', can_interface='socketcan', can_channel='can0')
    assert 'pack_simulator' not in [n.name for n in hardware]
    driver = next(n for n in hardware if n.name == 'can_driver')
    assert driver.parameters['interface'] == 'socketcan'
    assert driver.parameters['channel'] == 'can0'
    with pytest.raises(ValueError, match='unknown argument'):
        suite(bogus='1')
    with pytest.raises(ValueError, match='expected true or false'):
        suite(simulate='maybe')


def test_setup_py_has_an_entry_point_per_executable():
    text = open(os.path.join(REPO, 'setup.py')).read()
    processes, nodes = suite()
    for spec in [*processes, *nodes]:
        assert f"'{spec.executable} = {spec.module}:main'" in text
    for spec in nodes:
        assert ros_arguments(spec, '')[:3] == ['--ros-args', '-r', f'__node:={spec.name}']
