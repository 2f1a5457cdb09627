"""Linters as tests (as ROS packages do with ament_flake8): the rules of ruff.toml fail CI."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_ruff_finds_no_errors():
    # the rule sets (pycodestyle, pyflakes, import order, bugbear, docstrings) and their
    # ignores are in ruff.toml at the repo root; formatting is not checked
    out = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--output-format', 'concise',
                          'bms_ros', 'bench', 'test', 'launch'],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
