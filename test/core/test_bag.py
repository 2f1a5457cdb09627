"""Bags written by bms_ros.tools.bag: rosbag2 v9 metadata, MCAP read back independently.

The metadata checks follow rosbag2 Jazzy's decoder (rosbag2_storage yaml.hpp, version 9:
offered_qos_profiles as a list with policy names, durations as sec/nsec) and its MCAP plugin
(schema ros2msg, channel metadata offered_qos_profiles and topic_type_hash, a 'rosbag2'
metadata record with serialized_metadata). The MCAP is read with the mcap and mcap_ros2
packages, not with rosbags that wrote it.
"""
import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from bms_ros.core import bag_schema
from bms_ros.core.bag_schema import BagError
from bms_ros.tools.bag.bagio import Bag, BagWriter, new_message, time_message

T0_NS = 1_700_000_000_000_000_000
QOS_KEYS = {'history', 'depth', 'reliability', 'durability', 'deadline', 'lifespan',
            'liveliness', 'liveliness_lease_duration', 'avoid_ros_namespace_conventions'}


def measurement(k):
    return new_message(
        'bms_interfaces/msg/PackMeasurement',
        header=new_message('std_msgs/msg/Header', stamp=time_message(T0_NS * 1e-9 + 0.1 * k),
                           frame_id='pack'),
        cell_voltages_v=[3.30 + 0.001 * k, 3.31, 3.32], cell_voltage_valid=[True] * 3,
        temperatures_degc=[25.0, 26.0 + 0.1 * k], temperature_valid=[True, True],
        pack_current_a=-10.0 - k, pack_voltage_v=9.93 + 0.001 * k)


def write_sample(path, namespace=''):
    meas = bag_schema.resolve(namespace, 'measurement')
    trip = bag_schema.resolve(namespace, 'trip_event')
    with BagWriter(path, {'bms_ros.namespace': namespace}) as writer:
        writer.add_topic(meas, 'bms_interfaces/msg/PackMeasurement',
                         [bag_schema.qos_fields(bag_schema.STREAM, 10)])
        writer.add_topic(trip, 'bms_interfaces/msg/ProtectionEvent',
                         [bag_schema.qos_fields(bag_schema.LATCHED, 100)])
        for k in range(20):
            writer.write_message(meas, T0_NS + k * 100_000_000, measurement(k),
                                 'bms_interfaces/msg/PackMeasurement')
        event = new_message('bms_interfaces/msg/ProtectionEvent', limit_id='cell_overvoltage',
                            level=3, index=1, value=3.8, threshold=3.75, unit='V', active=True,
                            latched=True)
        writer.write_message(trip, T0_NS + 1_050_000_000, event,
                             'bms_interfaces/msg/ProtectionEvent')
    return meas, trip


def test_metadata_follows_rosbag2_v9(tmp_path):
    bag = tmp_path / 'sample'
    meas, trip = write_sample(bag)
    info = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert info['version'] == 9
    assert info['storage_identifier'] == 'mcap'
    assert info['relative_file_paths'] == ['sample.mcap'] and (bag / 'sample.mcap').is_file()
    assert info['compression_format'] == '' and info['compression_mode'] == ''
    assert info['message_count'] == 21
    assert info['starting_time']['nanoseconds_since_epoch'] == T0_NS
    assert info['duration']['nanoseconds'] == 1_900_000_000
    assert info['files'] == [{'path': 'sample.mcap', 'message_count': 21,
                              'starting_time': {'nanoseconds_since_epoch': T0_NS},
                              'duration': {'nanoseconds': 1_900_000_000}}]
    assert info['custom_data'] == {'bms_ros.namespace': ''}
    assert isinstance(info['ros_distro'], str)
    topics = {t['topic_metadata']['name']: t for t in info['topics_with_message_count']}
    assert set(topics) == {meas, trip}
    assert topics[meas]['message_count'] == 20 and topics[trip]['message_count'] == 1
    for name, msgtype, durability, depth in ((meas, 'PackMeasurement', 'volatile', 10),
                                             (trip, 'ProtectionEvent', 'transient_local', 100)):
        meta = topics[name]['topic_metadata']
        assert meta['type'] == f'bms_interfaces/msg/{msgtype}'
        assert meta['serialization_format'] == 'cdr'
        # the hash rosidl generated for the installed interface, not one we computed
        assert meta['type_description_hash'] == bag_schema.rosidl_rihs01(meta['type'])
        assert meta['type_description_hash'].startswith('RIHS01_')
        (qos,) = meta['offered_qos_profiles']
        assert set(qos) == QOS_KEYS
        assert (qos['history'], qos['depth'], qos['reliability'], qos['durability'],
                qos['liveliness']) == ('keep_last', depth, 'reliable', durability, 'automatic')
        assert qos['deadline'] == {'sec': 9223372036, 'nsec': 854775807}


def test_mcap_reads_back_independently(tmp_path):
    bag = tmp_path / 'sample'
    meas, trip = write_sample(bag)
    with open(bag / 'sample.mcap', 'rb') as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == 'ros2'
        summary = reader.get_summary()
        assert summary.statistics.message_count == 21
        channels = {c.topic: c for c in summary.channels.values()}
        assert set(channels) == {meas, trip}
        for channel in channels.values():
            schema = summary.schemas[channel.schema_id]
            assert channel.message_encoding == 'cdr' and schema.encoding == 'ros2msg'
            assert schema.name.startswith('bms_interfaces/msg/')
            assert channel.metadata['topic_type_hash'] == bag_schema.rosidl_rihs01(schema.name)
            qos = yaml.safe_load(channel.metadata['offered_qos_profiles'])
            assert isinstance(qos, list) and set(qos[0]) == QOS_KEYS
        records = {m.name: m.metadata for m in reader.iter_metadata()}
        serialized = yaml.safe_load(records['rosbag2']['serialized_metadata'])
        assert serialized['version'] == 9 and serialized['message_count'] == 21
        decoded = [(ch.topic, msg.log_time, obj)
                   for _, ch, msg, obj in reader.iter_decoded_messages()]
    values = [(t, obj) for topic, t, obj in decoded if topic == meas]
    assert [t for t, _ in values] == [T0_NS + k * 100_000_000 for k in range(20)]
    for k, (_, obj) in enumerate(values):
        expected = measurement(k)
        assert obj.pack_current_a == pytest.approx(expected.pack_current_a)
        assert np.allclose(obj.cell_voltages_v, expected.cell_voltages_v)
        assert list(obj.temperature_valid) == [True, True]
        assert obj.header.frame_id == 'pack'
    (event,) = [obj for topic, _, obj in decoded if topic == trip]
    assert (event.limit_id, event.level, event.index, event.active) == \
        ('cell_overvoltage', 3, 1, True)
    assert event.value == pytest.approx(3.8, abs=1e-6)


def test_bag_reader_finds_topics_by_namespace(tmp_path):
    write_sample(tmp_path / 'a', namespace='pack_a')
    with Bag(tmp_path / 'a') as bag:
        assert bag.namespace == 'pack_a'
        assert bag.find_topic('measurement') == '/pack_a/measurement'
        assert bag.find_topic('measurement', 'pack_b') is None
        assert bag.find_topic('estimate') is None
        rows = bag.read('measurement')
        assert len(rows) == 20 and rows[3][1].pack_current_a == pytest.approx(-13.0)
        assert bag.start_ns == T0_NS


def test_type_hashes_equal_rosidl_for_every_suite_topic():
    for spec in bag_schema.TOPICS.values():
        expected = bag_schema.rosidl_rihs01(spec.msgtype)
        assert expected is not None, spec.msgtype
        assert bag_schema.rihs01(spec.msgtype) == expected, spec.msgtype
    assert bag_schema.rihs01(bag_schema.CLOCK_TYPE) == bag_schema.rosidl_rihs01(
        bag_schema.CLOCK_TYPE)


def test_topic_table_and_names():
    assert bag_schema.resolve('', 'measurement') == '/measurement'
    assert bag_schema.resolve('/pack_a/', 'measurement') == '/pack_a/measurement'
    assert bag_schema.relative('pack_a', '/pack_a/estimate') == 'estimate'
    assert bag_schema.relative('pack_a', '/pack_b/estimate') is None
    assert bag_schema.relative('', '/pack_b/estimate') is None
    assert [s.name for s in bag_schema.select(['measurement', '/trip_event'])] == \
        ['measurement', 'trip_event']
    with pytest.raises(BagError, match="unknown topic 'mesurement'"):
        bag_schema.select(['mesurement'])
    required = {'can_rx', 'measurement', 'estimate', 'battery_state', 'trip_event',
                'protection_status', 'pack_state', 'balancing_status', 'balancing_command',
                'contactor_command', 'sim_truth'}
    assert required <= set(bag_schema.TOPICS)
    assert bag_schema.TOPICS['trip_event'].kind == bag_schema.LATCHED


def test_errors_are_clear(tmp_path):
    write_sample(tmp_path / 'b')
    with pytest.raises(BagError, match='exists already'):
        BagWriter(tmp_path / 'b')
    with pytest.raises(BagError, match='no such bag'):
        Bag(tmp_path / 'missing')
    (tmp_path / 'junk').mkdir()
    (tmp_path / 'junk' / 'metadata.yaml').write_text('not: [a bag')
    with pytest.raises(BagError, match='cannot open'):
        Bag(tmp_path / 'junk')
    with pytest.raises(BagError, match='no field'):
        new_message('bms_interfaces/msg/PackMeasurement', not_a_field=1)


class _Publisher:
    """Stands in for an rclpy publisher: acknowledged or not, and the wait it was given."""

    def __init__(self, topic_name, acked):
        self.topic_name, self.acked, self.waited_s = topic_name, acked, []

    def wait_for_all_acked(self, timeout):
        self.waited_s.append(timeout.nanoseconds * 1e-9)
        return self.acked


def test_play_waits_for_acknowledgements_and_names_what_was_not(capsys):
    from bms_ros.tools.bag.play import _wait_for_all_acked
    fine, late = _Publisher('/measurement', True), _Publisher('/trip_event', False)
    _wait_for_all_acked([fine, late], 2.0)
    assert 0.0 < fine.waited_s[0] <= 2.0 and 0.0 <= late.waited_s[0] <= fine.waited_s[0]
    assert capsys.readouterr().err == 'not acknowledged after 2 s on: /trip_event\n'
    off = _Publisher('/measurement', False)
    _wait_for_all_acked([off], 0.0)              # 0 = do not wait
    assert off.waited_s == [] and capsys.readouterr().err == ''


def test_a_bag_of_an_older_message_definition_reads_with_todays_fields():
    """The fixture was recorded before PackMeasurement gained charger_present (additive): read
    with today's definition its CDR ends early; the bag's own definition reads it, and the
    fields added since take their defaults.
    """
    import os
    path = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'bags', 'lfp_suite_live')
    with Bag(path) as bag:
        assert 'bms_interfaces/msg/PackMeasurement' in bag.upgraded_types
        (_, first), *rest = bag.read('measurement')
    assert len(rest) > 100
    assert first.charger_present is False and first.charger_present_valid is False
    assert len(first.cell_voltages_v) == 16 and 2.5 < float(np.nanmean(first.cell_voltages_v)) < 3.7
    fresh = new_message('bms_interfaces/msg/PackMeasurement')
    assert type(first) is type(fresh)      # today's class, as every consumer expects


def test_an_older_message_is_re_serialised_as_todays_for_playing():
    import os
    path = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'bags', 'lfp_suite_live')
    store = bag_schema.typestore()
    with Bag(path) as bag:
        topic = bag.find_topic('measurement')
        recorded = next(d for _, _, _, d in bag.raw_messages({topic}))
        current = next(d for _, _, _, d in bag.raw_messages({topic}, current=True))
    assert len(current) > len(recorded)         # the appended fields
    message = store.deserialize_cdr(current, 'bms_interfaces/msg/PackMeasurement')
    assert message.charger_present is False and len(message.cell_voltages_v) == 16
