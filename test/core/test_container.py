"""The single-process container's graph, without ROS: the nodes of bms_ros.graph but the
simulated pack, each module's COMPONENT, and bringup's command lines in that mode.
"""
import sys

from rclpy.node import Node

from bms_ros.graph import suite
from bms_ros.tools.bringup import command_lines
from bms_ros.tools.container import HARDWARE, bms_nodes, component, node_options


def test_the_container_runs_every_node_of_the_graph_but_the_simulated_pack():
    _, nodes = suite()
    specs = bms_nodes()
    assert [s.name for s in specs] == [n.name for n in nodes if n.name not in HARDWARE]
    assert 'pack_simulator' not in [s.name for s in specs] and len(specs) == 5
    for spec in specs:
        comp = component(spec)
        assert issubclass(comp.node_class, Node) and comp.name == spec.name


def test_each_node_gets_its_own_arguments():
    for spec in bms_nodes('pack_a', state_dir='/tmp/x'):
        options = node_options(spec, 'pack_a')
        args = options['cli_args']
        assert options['use_global_arguments'] is False
        assert args[:3] == ['--ros-args', '-r', f'__node:={spec.name}']
        assert '__ns:=/pack_a' in args
        for key in spec.parameters:
            assert any(a.startswith(f'{key}:=') for a in args), (spec.name, key)


def test_bringup_single_process_command_lines():
    lines = dict(command_lines('pack_a', single_process=True, container_args=('--executor',
                                                                              'single'),
                               can_port='29999', balancing='false'))
    assert list(lines) == ['can_hub', 'pack_simulator', 'container']
    argv = lines['container']
    assert argv[:3] == [sys.executable, '-m', 'bms_ros.tools.container']
    assert argv[argv.index('--namespace') + 1] == 'pack_a'
    assert argv[argv.index('--can-port') + 1] == '29999'
    assert argv[argv.index('--balancing') + 1] == 'false'
    assert argv[-2:] == ['--executor', 'single']
    assert [s.name for s in bms_nodes(balancing='false')] == [
        'can_driver', 'state_estimator', 'protection', 'pack_supervisor']


def test_the_events_executor_is_refused_with_the_reason(capsys):
    """rclpy's experimental EventsExecutor fires none of the suite's timers: exit 2 at start."""
    from bms_ros.tools.container import main
    assert main(['--executor', 'events']) == 2
    assert "does not fire this suite's timers" in capsys.readouterr().err
