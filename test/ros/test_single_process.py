"""`bringup --single-process`: every BMS node in one process (bms_ros.tools.container), the graph
unchanged: the same node names in the pack's namespace, each with graph.py's parameters; a
configuration error in one node stops the container with exit 2 before any of its nodes has a
publisher. The fault behaviour in this mode is test_suite_integration's (run in both modes).
"""
import os
import time

import pytest
from rcl_interfaces.srv import GetParameters

from bms_ros.graph import suite as graph_suite
from bms_ros.tools.container import HARDWARE

from .suite import Suite, write_profile

pytestmark = pytest.mark.ros


def test_single_process_graph_has_the_nodes_namespace_and_parameters_of_graph_py(ros_env,
                                                                                  tmp_path):
    suite = Suite(ros_env, tmp_path, namespace='pack_a', single_process=True).start()
    suite.wait_ready()
    assert set(suite.processes) == {'can_hub', 'pack_simulator', 'container'}
    _, specs = graph_suite(profile=suite.profile, state_dir=suite.state_base,
                           can_port=suite.port, namespace='pack_a')
    expected = {(spec.name, '/pack_a') for spec in specs}
    ros_env.wait_for_nodes(expected, timeout_s=15.0)
    # one process holds every BMS node; the simulator is its own
    container_pid = suite.pid('container')
    for spec in specs:
        if spec.name in HARDWARE:
            continue
        answer = ros_env.call(GetParameters, f'/pack_a/{spec.name}/get_parameters',
                              GetParameters.Request(names=list(spec.parameters)))
        got = dict(zip(spec.parameters, answer.values))
        for key, value in spec.parameters.items():
            if isinstance(value, bool):
                assert got[key].bool_value is value, (spec.name, key)
            elif isinstance(value, int):
                assert got[key].integer_value == value, (spec.name, key)
            elif isinstance(value, float):
                assert got[key].double_value == pytest.approx(value), (spec.name, key)
            else:
                assert got[key].string_value == value, (spec.name, key)
    topics = suite.topic_names()
    for topic in ('measurement', 'estimate', 'battery_state', 'trip_event', 'protection_status',
                  'pack_state', 'contactor_command', 'balancing_command', 'balancing_status'):
        assert f'/pack_a/{topic}' in topics, topic
    assert suite.alive('container') and suite.pid('container') == container_pid
    assert not suite.dead(), suite.dead()


def test_a_configuration_error_in_one_node_exits_2_before_any_publisher(ros_env, tmp_path):
    # protection is built after the driver and the estimator: their publishers must not
    # appear either (the configuration pass runs every constructor before any is built)
    profile = write_profile(tmp_path / 'profile.yaml', edits={'protection': {'no_such': 1}})
    process = ros_env.start_module('bms_ros.tools.container', '--profile', profile,
                                   '--state-dir', str(tmp_path / 'state'), ros_args=False)
    seen = set()
    deadline = time.monotonic() + 30.0
    while process.alive() and time.monotonic() < deadline:
        seen |= {name for name, _ in ros_env.node.get_topic_names_and_types()}
        time.sleep(0.02)
    assert not process.alive(), 'the container did not exit'
    assert process.popen.returncode == 2
    log = process.log_tail(30)
    assert 'protection: configuration error' in log and 'no_such' in log, log
    assert not seen & {'/measurement', '/estimate', '/battery_state', '/can_rx'}, seen
    assert not os.path.exists(tmp_path / 'state'), 'state written before the check'
