"""Where the shipped configuration lives: config/ of the source tree or the installed share.

Standard library only (no numpy, no core.config), so bms_ros.graph and the bringup tool can
name the default profile without the imports of core.profile (issue 18, footprint).
"""
from __future__ import annotations

import os

DEFAULT_PROFILE = os.path.join('profiles', 'lfp_16s.yaml')   # relative to config_dir()


def config_dir() -> str:
    """config/ of the source tree, else the installed share/bms_ros/config."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    source = os.path.join(here, 'config')
    if os.path.isdir(source):
        return source
    from ament_index_python.packages import get_package_share_directory  # installed layout
    return os.path.join(get_package_share_directory('bms_ros'), 'config')


def default_profile_path() -> str:
    """The LFP robot profile shipped with the package (source tree or installed share)."""
    return os.path.join(config_dir(), DEFAULT_PROFILE)
