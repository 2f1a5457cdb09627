"""bringup stays small: it holds no numpy, python-can or cantools (issue 18 item 8, footprint).

The profile is read by a short-lived child (bms_ros.tools.bringup._specs_in_child) and
graph.py finds the default profile without importing core.profile; what the child computes is
what _specs computes in this process.
"""
import json
import subprocess
import sys

import pytest

from bms_ros.core.profile import default_profile_path
from bms_ros.graph import ARGUMENTS
from bms_ros.tools import bringup

HEAVY = ('numpy', 'can', 'cantools', 'rclpy')


def test_the_default_profile_is_core_profiles():
    assert ARGUMENTS['profile'][0] == default_profile_path()


def test_bringup_holds_no_heavy_module_after_reading_the_graph():
    code = ('import sys, json; from bms_ros.tools import bringup; '
            "specs = bringup._specs_in_child('pack_a', True); "
            'print(json.dumps([len(specs), sorted(m for m in %r if m in sys.modules)]))' % (HEAVY,))
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120, check=True)
    count, loaded = json.loads(done.stdout)
    assert loaded == []
    assert count == 3          # hub, simulated pack, container


def test_the_child_computes_the_same_specs():
    for single in (False, True):
        mine = bringup._specs('pack_a', single, ('--executor', 'single'), time_scale='2.0')
        child = bringup._specs_in_child('pack_a', single, ('--executor', 'single'),
                                        time_scale='2.0')
        assert child == mine


def test_a_bad_profile_is_the_childs_error():
    with pytest.raises(ValueError) as error:
        bringup._specs_in_child(profile='/nonexistent/p.yaml')
    assert str(error.value) == '/nonexistent/p.yaml: file not found'
