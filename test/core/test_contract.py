"""bms_ros.core.contract: the one place of names, QoS, levels, contactor order and ports.

A lint over the sources (no node or tool builds its own QoSProfile or spells a contract name as
a literal where it creates a publisher, subscription, service or client) and the contract
against docs/architecture.md's topic tables, both ways.
"""
import ast
import os
import re
import sys

from bms_ros.core import contract

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# calls whose string arguments are topic or service names
NAMING_CALLS = {'create_publisher', 'create_subscription', 'create_service', 'create_client',
                'call', 'run_call', '_topic'}
# the one module that constructs rclpy QoS profiles from the contract
QOS_MODULE = 'bms_ros/nodes/qos.py'
# backticked words in the topic tables' columns that are parameters or references, not names
NOT_NAMES = {'ambient_degc', 'input_topic', 'output_topic', 'stamped'}


def contract_names():
    """Every topic and service name of the suite, with the second opinion's own/ names."""
    names = set(contract.TOPICS) | set(contract.SERVICES)
    return names | {remapped for _, remapped in contract.SECOND_OPINION_REMAPS}


def sources():
    """Paths (relative to the repository) of nodes, tools, the test harness and bench."""
    paths = []
    for folder in ('bms_ros/nodes', 'bms_ros/tools', 'bench'):
        for root, _, files in os.walk(os.path.join(REPO, folder)):
            paths += [os.path.relpath(os.path.join(root, f), REPO) for f in files
                      if f.endswith('.py')]
    return sorted(paths + ['test/ros/harness.py'])


def ros_test_sources():
    """Paths of the ROS tests and their support: they build no QoSProfile either."""
    paths = []
    for folder in ('test/ros', 'test/support'):
        for root, _, files in os.walk(os.path.join(REPO, folder)):
            paths += [os.path.relpath(os.path.join(root, f), REPO) for f in files
                      if f.endswith('.py')]
    return sorted(paths)


def findings(path, names_too=True):
    """(line, text) of each QoSProfile built or (names_too) contract name spelled as a
    literal in path.
    """
    if path == QOS_MODULE:
        return []
    with open(os.path.join(REPO, path), encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    names = contract_names() | set(contract.EXTERNAL_TOPICS)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == 'rclpy.qos':
            built = [a.name for a in node.names
                     if a.name in ('QoSProfile', 'qos_profile_sensor_data')]
            if built:
                found.append((node.lineno, f'imports {", ".join(built)} from rclpy.qos'))
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, 'id', '')
        if called == 'QoSProfile':
            found.append((node.lineno, 'builds a QoSProfile'))
        if names_too and called in NAMING_CALLS:
            for arg in node.args:
                if isinstance(arg, ast.Constant) and arg.value in names:
                    found.append((node.lineno, f'{called}(... {arg.value!r} ...)'))
    return found


def test_no_node_or_tool_defines_qos_or_contract_names():
    bad = [f'{path}:{line}: {text}' for path in sources()
           for line, text in findings(path)]
    assert not bad, 'use bms_ros.core.contract / bms_ros.nodes.qos:\n' + '\n'.join(bad)


def test_ros_tests_build_no_qos_profile():
    # tests may name topics literally (they check the names), but take profiles from the contract
    bad = [f'{path}:{line}: {text}' for path in ros_test_sources()
           for line, text in findings(path, names_too=False)]
    assert not bad, 'use bms_ros.nodes.qos:\n' + '\n'.join(bad)


def test_lint_catches_a_literal_topic_and_a_profile(tmp_path, monkeypatch):
    bad = tmp_path / 'bms_ros' / 'nodes' / 'bad.py'
    bad.parent.mkdir(parents=True)
    bad.write_text('from rclpy.qos import QoSProfile\n'
                   "n.create_publisher(T, 'measurement', QoSProfile(depth=10))\n"
                   "n.create_client(S, 'own/reset_trips')\n")
    monkeypatch.setattr(sys.modules[__name__], 'REPO', str(tmp_path))
    texts = [text for _, text in findings('bms_ros/nodes/bad.py')]
    assert sorted(texts) == sorted(['imports QoSProfile from rclpy.qos', 'builds a QoSProfile',
                                    "create_publisher(... 'measurement' ...)",
                                    "create_client(... 'own/reset_trips' ...)"])


def documented_names():
    """Backticked names in the subscribes / publishes / services columns of the topic tables."""
    with open(os.path.join(REPO, 'docs', 'architecture.md'), encoding='utf-8') as f:
        lines = f.read().splitlines()
    names = set()
    for line in lines:
        if not line.startswith('|') or line.startswith('|---'):
            continue
        cols = [c.strip() for c in line.strip('|').split('|')]
        if cols[0].startswith('node'):
            continue            # the header row
        for col in cols[1:4]:
            names |= {w for w in re.findall(r'`([^`]+)`', col)
                      if w not in NOT_NAMES and '.' not in w and ' ' not in w}
    return names


def test_contract_matches_the_architecture_topic_tables():
    documented = documented_names()
    assert len(documented) > 20
    assert sorted(documented - contract_names()) == [], 'documented, not in the contract'
    assert sorted(contract_names() - documented) == [], 'in the contract, not documented'


def test_contract_values():
    # the profiles as docs/architecture.md and the helper brief state them
    assert contract.TOPICS['measurement'].qos == contract.QosSpec(10)
    assert contract.TOPICS['trip_event'].qos == contract.QosSpec(100, transient_local=True)
    assert contract.TOPICS['pack_state'].qos.transient_local
    assert contract.TOPICS['protection_status'].qos == contract.QosSpec(1, transient_local=True)
    assert contract.TOPICS['/diagnostics'].qos == contract.STREAM
    assert not contract.EXTERNAL_TOPICS['odom'].qos.reliable
    assert (contract.LEVEL_WARNING, contract.LEVEL_ALARM, contract.LEVEL_TRIP) == (1, 2, 3)
    assert contract.LEVEL_NAMES[contract.LEVEL_TRIP] == 'trip'
    assert contract.CONTACTORS == ('negative', 'positive', 'precharge')
    assert (contract.CAN_HUB_PORT, contract.DASHBOARD_PORT) == (29536, 8642)
    assert contract.own('estimate') == 'own/estimate'


def test_contract_types_exist_in_bms_interfaces():
    # every bms_interfaces type the contract names has a .msg / .srv file
    for spec, folder in [(t.msgtype, 'msg') for t in contract.TOPICS.values()] + \
            [(s.srvtype, 'srv') for s in contract.SERVICES.values()]:
        package, kind, name = spec.split('/')
        assert kind == folder
        if package == 'bms_interfaces':
            assert os.path.exists(os.path.join(REPO, 'bms_interfaces', folder, name + '.' + folder))


def test_everyone_shares_the_contract_values():
    # the modules that own a value read it from the contract (one value, one place)
    from bms_ros.core import can_bus, sim_faults
    from bms_ros.core.pack_state_machine import states
    from bms_ros.core.protection import limits
    from bms_ros.tools import can_hub, report
    from bms_ros.tools.dashboard import config, state
    assert limits.LEVEL_NAMES is contract.LEVEL_NAMES is state.LEVEL_NAMES
    assert (limits.LEVEL_WARNING, limits.LEVEL_ALARM, limits.LEVEL_TRIP) == (1, 2, 3)
    assert sim_faults.CONTACTORS is contract.CONTACTORS is states.CONTACTORS is report.CONTACTORS
    assert states.FAULT_INDEX is contract.CONTACTOR_INDEX
    assert states.COMMAND_ORDER is contract.CONTACTOR_COMMAND_ORDER
    assert can_hub.DEFAULT_PORT == can_bus.BusConfig().port == contract.CAN_HUB_PORT
    assert config.DEFAULT_PORT == contract.DASHBOARD_PORT


def _fields(msg):
    """Field names of a bms_interfaces .msg file, in order."""
    path = os.path.join(REPO, 'bms_interfaces', 'msg', msg + '.msg')
    with open(path, encoding='utf-8') as f:
        lines = [line.split('#')[0].split() for line in f]
    return [words[1] for words in lines if len(words) >= 2 and '=' not in words[1]]


def test_contactor_orders_match_the_messages():
    # the one order is the feedback fields' order; the command order is ContactorCommand's
    feedback = [f for f in _fields('PackState') if f.endswith('_closed')]
    assert [f.split('_')[0] for f in feedback] == list(contract.CONTACTORS)
    command = [f for f in _fields('ContactorCommand') if f.endswith('_closed')]
    assert [f.split('_')[0] for f in command] == list(contract.CONTACTOR_COMMAND_ORDER)


def test_shipped_profiles_use_the_default_ports():
    import glob

    import yaml
    paths = glob.glob(os.path.join(REPO, 'config', 'profiles', '*.yaml'))
    assert paths
    for path in paths:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
        assert data['can'].get('port', contract.CAN_HUB_PORT) == contract.CAN_HUB_PORT, path
        dashboard = data.get('dashboard') or {}
        assert dashboard.get('port', contract.DASHBOARD_PORT) == contract.DASHBOARD_PORT, path
