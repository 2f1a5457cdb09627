"""The console scripts bootstrap writes run from the venv in a clean environment (nothing
sourced, no ROS variables): the tools on .venv/bin, every node executable in .venv/lib/bms_ros
(where launch_ros finds them) exiting 2 on a bad profile (a configuration error, not a missing
package metadata traceback).
"""
import os
import subprocess
import sys

import pytest

from bms_ros.graph import suite

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.path.join(ROOT, '.venv')
TOOLS = ('bmsctl', 'bms-report', 'bms-bag', 'bms-bringup', 'bms-can-log', 'bms-dbc-skeleton',
         'bms-estimate-csv', 'bms-safety-table', 'bms-can-hub', 'bms-launch')

pytestmark = pytest.mark.skipif(not os.path.isdir(os.path.join(VENV, 'lib', 'bms_ros')),
                                reason='needs the bootstrapped .venv')


def clean_env(tmp_path):
    """No sourced setup, no AMENT/ROS variables, no venv on PATH: what systemd gives."""
    return {'PATH': '/usr/bin:/bin', 'HOME': str(tmp_path), 'LANG': 'C.UTF-8',
            'ROS_DOMAIN_ID': os.environ.get('ROS_DOMAIN_ID', '0')}


@pytest.mark.parametrize('tool', TOOLS)
def test_each_tool_on_the_venv_path_prints_its_help(tool, tmp_path):
    done = subprocess.run([os.path.join(VENV, 'bin', tool), '--help'], env=clean_env(tmp_path),
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert 'usage:' in done.stdout
    assert 'PackageNotFoundError' not in done.stderr


def test_every_node_executable_runs_unsourced_and_exits_2_on_a_bad_profile(tmp_path):
    _, nodes = suite()
    executables = sorted({node.executable for node in nodes} | {'gazebo_load'})
    assert len(executables) == 7
    bad = tmp_path / 'missing_profile.yaml'
    running = {name: subprocess.Popen(
        [os.path.join(VENV, 'lib', 'bms_ros', name), '--ros-args', '-p', f'profile:={bad}'],
        env=clean_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for name in executables}
    for name, process in running.items():
        out, err = process.communicate(timeout=90)
        assert process.returncode == 2, f'{name}: exit {process.returncode}\n{err}'
        assert f'{bad}: file not found' in err, err
        assert 'Traceback' not in err, err


def test_the_hub_executable_in_lib_runs_with_the_venv_python():
    with open(os.path.join(VENV, 'lib', 'bms_ros', 'can_hub')) as stream:
        first = stream.readline().strip()
    assert first == f'#!{VENV}/bin/python'
    assert sys.version_info[:2] == (3, 11)
