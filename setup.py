"""ament_python package bms_ros: nodes, core library and tools of the battery management suite."""
import os
from glob import glob

from setuptools import find_packages, setup

package_name = 'bms_ros'


def config_files():
    """Install config/ with its folder structure (profiles, DBCs, mappings, OCV tables)."""
    entries = {}
    for path in glob('config/**/*', recursive=True):
        if os.path.isfile(path):
            target = os.path.join('share', package_name, os.path.dirname(path))
            entries.setdefault(target, []).append(path)
    return sorted(entries.items())


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'bench']),
    package_data={'bms_ros.tools.dashboard': ['static/*']},   # the page, its script and style
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
    ] + config_files(),
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='bms_ros maintainers',
    maintainer_email='bms_ros@example.com',
    description='ROS 2 battery management suite',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'can_driver = bms_ros.nodes.can_driver:main',
            'pack_simulator = bms_ros.nodes.pack_simulator:main',
            'state_estimator = bms_ros.nodes.state_estimator:main',
            'protection = bms_ros.nodes.protection:main',
            'pack_supervisor = bms_ros.nodes.pack_supervisor:main',
            'balancing = bms_ros.nodes.balancing:main',
            'pack_report = bms_ros.nodes.pack_report:main',
            'gazebo_load = bms_ros.nodes.gazebo_load:main',
            'motion_limits = bms_ros.nodes.motion_limits:main',
            'can_hub = bms_ros.tools.can_hub:main',
            'bringup = bms_ros.tools.bringup:main',
            'bmsctl = bms_ros.tools.bmsctl:main',
            'estimate_csv = bms_ros.tools.estimate_csv:main',
            'bms-report = bms_ros.tools.report:main',
            'bms-bag = bms_ros.tools.bag:main',
            'bms-can-log = bms_ros.tools.can_log:main',
            'bms-dbc-skeleton = bms_ros.tools.dbc_skeleton:main',
            'bms-fleet = bms_ros.tools.fleet:main',
            # the tools under bms- names on the venv's PATH (scripts/bootstrap.sh puts every
            # name starting with bms into .venv/bin; the rest only into .venv/lib/bms_ros)
            'bms-bringup = bms_ros.tools.bringup:main',
            'bms-can-hub = bms_ros.tools.can_hub:main',
            'bms-estimate-csv = bms_ros.tools.estimate_csv:main',
            'bms-safety-table = bms_ros.tools.safety_table:main',
            'bms-launch = bms_ros.tools.launch_wrapper:main',
            # the web dashboard (docs/dashboard.md) and the single-process container
            'dashboard = bms_ros.nodes.dashboard:main',
            'bms-dashboard = bms_ros.nodes.dashboard:main',
            'bms-container = bms_ros.tools.container:main',
        ],
    },
)
