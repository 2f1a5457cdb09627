"""Linters as tests (as ROS packages do with ament_flake8): pyflakes-class errors fail CI."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_ruff_finds_no_errors():
    # F: pyflakes (unused imports/variables, undefined names); E9: syntax errors
    out = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--select', 'F,E9',
                          '--output-format', 'concise', 'bms_ros', 'bench', 'test', 'launch'],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
