"""The shipped Foxglove layout (config/foxglove/bms_ros.json): every panel of the layout tree is
configured, and every message path names a topic of the suite and fields its type has.
"""
import json
import os
import re

from sensor_msgs.msg import BatteryState

from bms_interfaces.msg import (
    BatteryEstimate,
    PackMeasurement,
    PackState,
    ProtectionEvent,
    ProtectionStatus,
)
from bms_ros.core.profile import config_dir

LAYOUT = os.path.join(config_dir(), 'foxglove', 'bms_ros.json')
TOPICS = {'measurement': PackMeasurement, 'estimate': BatteryEstimate,
          'protection_status': ProtectionStatus, 'pack_state': PackState,
          'trip_event': ProtectionEvent, 'battery_state': BatteryState}


def leaves(node):
    if isinstance(node, str):
        return [node]
    return leaves(node['first']) + leaves(node['second'])


def paths(config):
    out = [config['topicPath']] if 'topicPath' in config else []
    return out + [p['value'] for p in config.get('paths', [])]


def test_every_panel_in_the_tree_is_configured_and_used():
    with open(LAYOUT, encoding='utf-8') as stream:
        layout = json.load(stream)
    assert sorted(leaves(layout['layout'])) == sorted(layout['configById'])


def test_every_message_path_names_a_topic_and_its_fields():
    with open(LAYOUT, encoding='utf-8') as stream:
        layout = json.load(stream)
    checked = 0
    for config in layout['configById'].values():
        for path in paths(config):
            match = re.fullmatch(r'/(\w+)((?:\.\w+(?:\[\d+\])?)*)', path)
            assert match, path
            msg = TOPICS[match.group(1)]()
            for field in filter(None, match.group(2).split('.')):
                name = field.split('[')[0]
                assert name in msg.get_fields_and_field_types(), (path, name)
                msg = getattr(msg, name)
            checked += 1
    assert checked >= 15
