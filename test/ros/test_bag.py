"""bag record and bag play in their own processes against a probe node."""
import os
import sys
import time

import numpy as np
import pytest
from rclpy.duration import Duration
from rclpy.serialization import deserialize_message, serialize_message
from rosgraph_msgs.msg import Clock

from bms_interfaces.msg import PackMeasurement, ProtectionEvent
from bms_ros.core import bag_schema
from bms_ros.tools.bag.bagio import Bag, BagWriter, new_message, time_message

from .harness import LATCHED

pytestmark = pytest.mark.ros


def test_record_writes_what_was_published(ros_env, tmp_path):
    # a latched trip published before the recorder starts must still be recorded
    trip_pub = ros_env.publisher(ProtectionEvent, 'pack_a/trip_event', LATCHED)
    trip = ProtectionEvent(limit_id='cell_overtemperature', level=3, index=4, value=56.0,
                           threshold=55.0, unit='degC', active=True, latched=True)
    trip.header.stamp.sec = 1234
    trip_pub.publish(trip)
    meas_pub = ros_env.publisher(PackMeasurement, 'pack_a/measurement')
    out = tmp_path / 'rec'
    recorder = ros_env.start_module(
        'bms_ros.tools.bag', 'record', str(out), '--namespace', 'pack_a',
        '--topics', 'measurement', 'trip_event', name='record', ros_args=False)
    ros_env.wait_for_subscribers(meas_pub, timeout_s=15.0)
    sent = []
    for k in range(20):
        msg = PackMeasurement()
        msg.header.stamp = ros_env.node.get_clock().now().to_msg()
        msg.cell_voltages_v = [3.3 + 0.01 * k, 3.4, 3.5]
        msg.cell_voltage_valid = [True, True, k % 2 == 0]
        msg.pack_current_a = -5.0 * k
        meas_pub.publish(msg)
        sent.append(msg)
        time.sleep(0.02)
    # every message acknowledged by the recorder's (reliable) readers; Ctrl-C then makes it take
    # and write what arrived before it closes the bag
    assert meas_pub.wait_for_all_acked(Duration(seconds=15)), 'the recorder did not acknowledge'
    assert trip_pub.wait_for_all_acked(Duration(seconds=15)), 'the latched trip was not acked'
    assert recorder.stop(timeout_s=10.0) == 0, recorder.log_tail()   # Ctrl-C closes the bag
    assert (out / 'metadata.yaml').is_file(), recorder.log_tail()
    with Bag(out) as bag:
        assert bag.topics == {'/pack_a/measurement': 'bms_interfaces/msg/PackMeasurement',
                              '/pack_a/trip_event': 'bms_interfaces/msg/ProtectionEvent'}
        assert bag.namespace == 'pack_a'
        raw = [(topic, data) for topic, _, _, data in bag.raw_messages()]
    # the CDR bytes as they travelled decode (rclpy) to exactly the messages sent; their
    # length differs from a fresh serialization at most by the payload's end padding (the
    # padding bytes themselves are unspecified, so bytes are not compared)
    meas_raw = [bytes(data) for topic, data in raw if topic == '/pack_a/measurement']
    assert [deserialize_message(d, PackMeasurement) for d in meas_raw] == sent
    for data, msg in zip(meas_raw, sent):
        assert 0 <= len(data) - len(serialize_message(msg)) < 4
    trip_raw = [bytes(data) for topic, data in raw if topic == '/pack_a/trip_event']
    assert [deserialize_message(d, ProtectionEvent) for d in trip_raw] == [trip]


def write_bag(path, count=30, period_ns=50_000_000):
    t0 = 1_700_000_000_000_000_000
    meas = bag_schema.resolve('', 'measurement')
    trip = bag_schema.resolve('', 'trip_event')
    with BagWriter(path, {'bms_ros.namespace': ''}) as writer:
        writer.add_topic(meas, 'bms_interfaces/msg/PackMeasurement',
                         [bag_schema.qos_fields(bag_schema.STREAM, 10)])
        writer.add_topic(trip, 'bms_interfaces/msg/ProtectionEvent',
                         [bag_schema.qos_fields(bag_schema.LATCHED, 100)])
        for k in range(count):
            t = t0 + k * period_ns
            header = new_message('std_msgs/msg/Header', stamp=time_message(t * 1e-9))
            writer.write_message(meas, t, new_message(
                'bms_interfaces/msg/PackMeasurement', header=header, pack_current_a=float(k),
                cell_voltages_v=[3.3, 3.3 + 0.001 * k]), 'bms_interfaces/msg/PackMeasurement')
            if k == 10:
                writer.write_message(trip, t, new_message(
                    'bms_interfaces/msg/ProtectionEvent', header=header,
                    limit_id='cell_overvoltage', level=3, index=1, active=True, latched=True),
                    'bms_interfaces/msg/ProtectionEvent')
    return t0, t0 + (count - 1) * period_ns


def test_play_publishes_messages_and_clock(ros_env, tmp_path):
    bag = tmp_path / 'play'
    t0, t_end = write_bag(bag)
    meas = ros_env.subscribe(PackMeasurement, 'measurement')
    trips = ros_env.subscribe(ProtectionEvent, 'trip_event', LATCHED)
    clock = ros_env.subscribe(Clock, '/clock')
    # a fixed delay alone lost the first measurement on a loaded machine (29 of 30 arrived)
    player = ros_env.start_module('bms_ros.tools.bag', 'play', str(bag), '--rate', '2',
                                  '--clock', '--wait-for-subscribers', '15', '--delay', '0.5',
                                  name='play', ros_args=False)
    received = meas.wait_count(30, timeout_s=30.0)
    assert [m.pack_current_a for m in received] == [float(k) for k in range(30)]
    assert received[7].cell_voltages_v[1] == pytest.approx(3.307, abs=1e-6)
    trip = trips.wait_for(timeout_s=5.0)
    assert trip.limit_id == 'cell_overvoltage' and trip.index == 1
    player.popen.wait(15.0)
    assert player.popen.returncode == 0, player.log_tail()
    ticks = [c.clock.sec * 10 ** 9 + c.clock.nanosec for c in clock.wait_count(5)]
    assert all(b >= a for a, b in zip(ticks, ticks[1:])), 'clock went backwards'
    # from the bag's start to its last message (a paced tick may lead a message by < 1 tick)
    assert t0 <= ticks[0] <= t0 + 100_000_000
    assert t_end <= ticks[-1] <= t_end + 100_000_000


def test_bad_arguments_exit_2(tmp_path):
    import subprocess
    env = dict(os.environ)
    run = subprocess.run([sys.executable, '-m', 'bms_ros.tools.bag', 'play',
                          str(tmp_path / 'missing')], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2 and 'no such bag' in run.stderr
    run = subprocess.run([sys.executable, '-m', 'bms_ros.tools.bag', 'record',
                          str(tmp_path / 'x'), '--topics', 'mesurement'], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "unknown topic 'mesurement'" in run.stderr
    assert not (tmp_path / 'x').exists()


def test_state_estimator_on_sim_time_follows_a_played_bag(ros_env, tmp_path):
    """The live fixture played at 5x with /clock: a state_estimator on use_sim_time publishes
    estimates stamped in the bag's time, with the SoC the live estimator had.
    """
    from bms_interfaces.msg import BatteryEstimate
    fixture = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           'fixtures', 'bags', 'lfp_suite_live')
    with Bag(fixture) as bag:
        start_ns, end_ns = bag.start_ns, bag.end_ns
        live = [m.pack_soc for _, m in bag.read('estimate')]
    profile = os.path.join(os.path.dirname(fixture), 'lfp_suite_live.profile.yaml')
    estimates = ros_env.subscribe(BatteryEstimate, 'estimate')
    ros_env.start_module('bms_ros.nodes.state_estimator', params={
        'profile': profile, 'use_sim_time': True, 'state_file': str(tmp_path / 'state.json')})
    player = ros_env.start_module('bms_ros.tools.bag', 'play', fixture, '--rate', '5',
                                  '--clock', '--topics', 'measurement',
                                  '--wait-for-subscribers', '20', '--delay', '1',
                                  name='play', ros_args=False)
    player.popen.wait(40.0)
    assert player.popen.returncode == 0, player.log_tail()
    got = [m for m in estimates.wait_count(5, timeout_s=5.0)
           if m.header.stamp.sec and np.isfinite(m.pack_soc)]
    assert len(got) >= 5
    stamps = np.array([m.header.stamp.sec * 10 ** 9 + m.header.stamp.nanosec for m in got])
    # stamped on the bag's clock (recorded before this test ran), not on the wall clock
    assert stamps.min() >= start_ns and stamps.max() <= end_ns + 1_000_000_000
    assert time.time_ns() - end_ns > 60 * 10 ** 9
    assert got[-1].pack_soc == pytest.approx(live[-1], abs=0.005)
    assert got[0].pack_soc == pytest.approx(0.11, abs=0.005)
