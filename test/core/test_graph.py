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

from bms_ros.core.errors import ConfigError
from bms_ros.graph import ARGUMENTS, RespawnPolicy, suite
from bms_ros.tools.bringup import command_lines, ros_arguments

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Recorded:
    """Records the arguments it was built with; the subclasses check them like the real ones."""

    def __new__(cls, *args, **kwargs):
        entity = super().__new__(cls)
        entity.args, entity.kwargs = args, kwargs
        return entity


# Stand-ins with the keyword signatures of the Jazzy classes (launch 3.4.3, launch_ros 0.26.6:
# Action, ExecuteLocal, ExecuteProcess, launch_ros Node, DeclareLaunchArgument, OpaqueFunction,
# Shutdown, LaunchDescription): an unknown or misspelt keyword raises TypeError here as it would
# there, and a required one that is missing too.
class _Action(_Recorded):
    def __init__(self, *, condition=None):
        self.condition = condition


class _ExecuteLocal(_Action):
    def __init__(self, *, process_description, shell=False, sigterm_timeout=5,
                 sigkill_timeout=5, emulate_tty=False, output='log',
                 output_format='[{this.process_description.final_name}] {line}',
                 cached_output=False, log_cmd=False, on_exit=None, respawn=False,
                 respawn_delay=None, respawn_max_retries=-1, **kwargs):
        super().__init__(**kwargs)
        assert respawn_delay is None or isinstance(respawn_delay, float)
        assert isinstance(respawn_max_retries, int)
        assert on_exit is None or callable(on_exit) or isinstance(on_exit, list)


class _ExecuteProcess(_ExecuteLocal):
    def __init__(self, *, cmd, prefix=None, name=None, cwd=None, env=None, additional_env=None,
                 **kwargs):
        super().__init__(process_description=(cmd, name), **kwargs)


class _Node(_ExecuteProcess):
    def __init__(self, *, executable, package=None, name=None, namespace=None, exec_name=None,
                 parameters=None, remappings=None, ros_arguments=None, arguments=None,
                 **kwargs):
        assert parameters is None or isinstance(parameters, list)
        kwargs['name'] = exec_name   # launch_ros forwards exec_name as the process name
        super().__init__(cmd=[executable], **kwargs)


class _DeclareLaunchArgument(_Action):
    def __init__(self, name, *, default_value=None, description=None, choices=None, **kwargs):
        super().__init__(**kwargs)


class _OpaqueFunction(_Action):
    def __init__(self, *, function, args=None, kwargs=None, **left_over_kwargs):
        super().__init__(**left_over_kwargs)
        assert callable(function)


class _Shutdown(_Action):   # launch.actions.Shutdown (an EmitEvent of a Shutdown event)
    def __init__(self, *, reason='reason not given', **kwargs):
        super().__init__(**kwargs)
        self.reason = reason


class _RegisterEventHandler(_Action):   # launch.actions.RegisterEventHandler
    def __init__(self, event_handler, **kwargs):
        super().__init__(**kwargs)
        assert isinstance(event_handler, _OnProcessIO)
        self.event_handler = event_handler


class _OnProcessIO(_Recorded):            # launch.event_handlers.OnProcessIO
    def __init__(self, *, target_action=None, on_stdin=None, on_stdout=None, on_stderr=None,
                 **kwargs):
        assert target_action is None or isinstance(target_action, _ExecuteProcess)
        assert on_stdout is None or callable(on_stdout)
        self.target_action, self.on_stdout = target_action, on_stdout


class _LaunchDescription(_Recorded):
    def __init__(self, initial_entities=None, *, deprecated_reason=None):
        self.entities = list(initial_entities or [])


class _LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context.launch_configurations[self.name]


@pytest.fixture
def launch_file(monkeypatch):
    """Import launch/bms.launch.py with recording stand-ins for launch and launch_ros."""
    launch = types.ModuleType('launch')
    launch.LaunchDescription = _LaunchDescription
    actions = types.ModuleType('launch.actions')
    actions.DeclareLaunchArgument = _DeclareLaunchArgument
    actions.ExecuteProcess = _ExecuteProcess
    actions.OpaqueFunction = _OpaqueFunction
    actions.Shutdown = _Shutdown
    actions.RegisterEventHandler = _RegisterEventHandler
    event_handlers = types.ModuleType('launch.event_handlers')
    event_handlers.OnProcessIO = _OnProcessIO
    substitutions = types.ModuleType('launch.substitutions')
    substitutions.LaunchConfiguration = _LaunchConfiguration
    launch_ros = types.ModuleType('launch_ros')
    ros_actions = types.ModuleType('launch_ros.actions')
    ros_actions.Node = _Node
    for name, module in (('launch', launch), ('launch.actions', actions),
                         ('launch.substitutions', substitutions), ('launch_ros', launch_ros),
                         ('launch.event_handlers', event_handlers),
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
                if isinstance(e, _DeclareLaunchArgument)}
    opaque = [e for e in entities if isinstance(e, _OpaqueFunction)]
    context = types.SimpleNamespace(launch_configurations={**declared, **overrides})
    return declared, _after_hub_listens(opaque[0].kwargs['function'](context))


def _after_hub_listens(actions):
    """The actions with those a hub's handler starts, once the hub printed that it listens."""
    out = []
    for action in actions:
        if not isinstance(action, _RegisterEventHandler):
            out.append(action)
            continue
        handler = action.event_handler
        hub = handler.target_action
        assert hub in actions and hub.kwargs['name'] == 'can_hub'
        io = types.SimpleNamespace
        assert handler.on_stdout(io(text=b'can_hub: starting')) is None
        started = handler.on_stdout(io(text=b'can_hub: listening on 127.0.0.1:1 (socketcand)'))
        assert started and all(isinstance(a, _Node) for a in started)
        # a respawned hub prints it again: the nodes are not started twice
        assert handler.on_stdout(io(text=b'can_hub: listening on 127.0.0.1:1')) is None
        out += started
    return out


@pytest.mark.parametrize('overrides', [
    {},
    {'namespace': 'pack_a', 'simulate': 'false', 'can_interface': 'pcan',
     'can_channel': 'PCAN_USBBUS1', 'use_sim_time': 'true'},
    {'balancing': 'false', 'can_port': '30001', 'time_scale': '20'},
    {'namespace': 'pack_b', 'state_dir': '/var/lib/bms'},
])
def test_launch_file_and_bringup_start_the_same_graph(launch_file, overrides):
    declared, actions = _run_launch(launch_file, **overrides)
    assert declared == {name: default for name, (default, _) in ARGUMENTS.items()}
    launched = {}
    respawn = {}
    for action in actions:
        respawn[action.kwargs['name']] = {k: action.kwargs[k] for k in
                                          ('respawn', 'respawn_delay', 'respawn_max_retries')}
        on_exit = action.kwargs['on_exit']
        assert on_exit(types.SimpleNamespace(returncode=-9), None) is None
        assert on_exit(types.SimpleNamespace(returncode=1), None) is None
        shutdown, = on_exit(types.SimpleNamespace(returncode=2), None)
        assert isinstance(shutdown, _Shutdown) and 'configuration error' in shutdown.reason
        if 'package' in action.kwargs:
            assert action.kwargs['package'] == 'bms_ros'
            assert action.kwargs['namespace'] == overrides.get('namespace', '')
            launched[action.kwargs['name']] = (action.kwargs['executable'],
                                               action.kwargs['parameters'][0])
        else:
            assert action.kwargs['cmd'][0] == sys.executable   # the venv's python, not PATH's
            launched[action.kwargs['name']] = tuple(action.kwargs['cmd'][1:])
    launch_args = {k: v for k, v in overrides.items() if k != 'namespace'}
    processes, nodes = suite(**launch_args)
    expected = {p.name: ('-m', p.module, *p.arguments) for p in processes}
    expected.update({n.name: (n.executable, n.parameters) for n in nodes})
    assert launched == expected
    # the launch file respawns with the policy of bms_ros.graph, every process alike
    assert respawn == {spec.name: {'respawn': True, 'respawn_delay': spec.respawn.delay_s,
                                   'respawn_max_retries': spec.respawn.max_respawns}
                       for spec in [*processes, *nodes]}
    # bringup runs the same modules with the same parameters, node names and namespace
    lines = dict(command_lines(overrides.get('namespace', ''), **launch_args))
    assert set(lines) == set(expected)
    for node in nodes:
        assert lines[node.name][1:3] == ['-m', node.module]
        assert lines[node.name][3:] == ros_arguments(node, overrides.get('namespace', ''))


def test_stand_ins_reject_what_the_real_classes_reject():
    # a test that cannot fail is a defect: the stand-ins must refuse a misspelt keyword
    with pytest.raises(TypeError):
        _Node(executable='x', package='bms_ros', respawn_dealy=1.0)
    with pytest.raises(TypeError):
        _Node(executable='x', cmd=['y'])          # Node builds cmd itself
    with pytest.raises(TypeError):
        _Node(package='bms_ros')                  # executable is required
    with pytest.raises(TypeError):
        _ExecuteProcess(cmd=['x'], package='bms_ros')
    with pytest.raises(TypeError):
        _DeclareLaunchArgument('a', default='1')
    with pytest.raises(TypeError):
        _OpaqueFunction(func=print)
    node = _Node(executable='x', name='n', namespace='ns', parameters=[{}], output='screen',
                 respawn=True, respawn_delay=1.0, respawn_max_retries=5, on_exit=print,
                 condition=None)
    assert node.kwargs['respawn_max_retries'] == 5


def test_respawn_policy_in_the_graph():
    processes, nodes = suite()
    for spec in [*processes, *nodes]:   # hub and simulated pack too: the pack outlives a node
        policy = spec.respawn
        assert (policy.delay_s, policy.max_delay_s, policy.max_respawns, policy.window_s,
                policy.never_codes) == (1.0, 8.0, 5, 60.0, (2,))
    with pytest.raises(ValueError, match='inconsistent respawn policy'):
        RespawnPolicy(delay_s=9.0, max_delay_s=8.0)


def test_state_dir_argument_reaches_protection_and_estimator_only(tmp_path):
    _, nodes = suite(state_dir=str(tmp_path / 'state'))
    with_state = {n.name for n in nodes if 'state_dir' in n.parameters}
    assert with_state == {'protection', 'state_estimator'}
    assert all(n.parameters['state_dir'] == str(tmp_path / 'state') for n in nodes
               if n.name in with_state)
    _, default = suite()
    assert not any('state_dir' in n.parameters for n in default)   # each node's default chain
    lines = dict(command_lines('pack_a', state_dir=str(tmp_path / 's')))
    assert f'state_dir:={tmp_path / "s"}' in lines['protection']
    (tmp_path / 'file').write_text('x')
    with pytest.raises(ConfigError, match='argument: state_dir: not a folder'):
        suite(state_dir=str(tmp_path / 'file'))


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
    assert 'host' not in driver.parameters and 'port' not in driver.parameters
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


def _profile_with_can(tmp_path, **can):
    """A copy of the LFP profile whose can: section has ``can`` merged in."""
    import yaml

    from bms_ros.core.profile import default_profile_path
    base = default_profile_path()
    with open(base) as stream:
        data = yaml.safe_load(stream)
    data['can'].update(can)
    folder = os.path.dirname(base)
    for key in ('dbc', 'mapping'):        # relative to the profile: make them absolute
        data['can'][key] = os.path.normpath(os.path.join(folder, data['can'][key]))
    data['pack']['cell'] = os.path.normpath(os.path.join(folder, data['pack']['cell']))
    for section in data.values():
        if isinstance(section, dict) and isinstance(section.get('load'), dict) \
                and 'file' in section['load']:
            section['load']['file'] = os.path.normpath(os.path.join(folder,
                                                                    section['load']['file']))
    path = tmp_path / 'profile.yaml'
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_the_profile_can_section_decides_when_no_override_is_given(tmp_path):
    """issue 15 item 7: no CAN parameter reaches the nodes unless the user gives one."""
    profile = _profile_with_can(tmp_path, interface='socketcan', channel='can7')
    processes, nodes = suite(profile=profile)
    assert processes == []                       # socketcan: no loopback hub
    for node in nodes:
        assert not {'interface', 'channel', 'host', 'port'} & set(node.parameters), node
    lines = dict(command_lines('', profile=profile))
    assert not any('interface:=' in arg or 'channel:=' in arg
                   for argv in lines.values() for arg in argv)


def test_the_hub_follows_the_profile_port_and_an_override_wins_field_by_field(tmp_path):
    profile = _profile_with_can(tmp_path, port=31234)
    processes, nodes = suite(profile=profile)
    hub, = processes
    assert hub.arguments == ('--host', '127.0.0.1', '--port', '31234')
    assert all('port' not in n.parameters for n in nodes)
    processes, nodes = suite(profile=profile, can_port='31300')
    assert processes[0].arguments == ('--host', '127.0.0.1', '--port', '31300')
    sim = next(n for n in nodes if n.name == 'pack_simulator')
    driver = next(n for n in nodes if n.name == 'can_driver')
    assert sim.parameters['port'] == driver.parameters['port'] == 31300
    assert 'interface' not in driver.parameters       # only the field given
    # a socketcand server elsewhere is the user's bus: no hub here
    remote = _profile_with_can(tmp_path, host='192.0.2.7')
    assert suite(profile=remote)[0] == []
    assert suite(profile=profile, can_interface='socketcan')[0] == []
    with pytest.raises(ValueError, match='can_port: expected a port number'):
        suite(can_port='x')
    with pytest.raises(ValueError, match='can_port: expected a port in 1..65535'):
        suite(can_port='0')
