"""Offline replay of the shipped fixture bag through the estimation and protection cores.

The fixture (test/fixtures/bags/lfp_thermal_event, made by make_fixture.py from the pack
model): 60 s of the lfp_16s pack from 12 % SoC, 0.5 C / 1 C discharge, a 2 kW thermal event
in cell 5 (temperature sensor 2) from t = 20 s. Expectations are derived from the bag's own
data (sensor readings, currents, sim_truth), not from the cores' code.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from bms_ros.core.profile import Profile, config_dir
from bms_ros.tools.bag.bagio import Bag
from bms_ros.tools.bag.offline import replay

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'fixtures',
                       'bags', 'lfp_thermal_event')
PROTECTION = Profile(os.path.join(config_dir(), 'profiles', 'lfp_16s.yaml')).section(
    'protection').data
SENSOR = 2          # covers cells 4 and 5 (16 cells, 8 sensors)
PERIOD_S = 0.1      # measurement period of the fixture


@pytest.fixture(scope='module')
def result():
    return replay(FIXTURE)


@pytest.fixture(scope='module')
def recorded():
    """(t since first measurement, sensor 2 degC, pack current A) from the bag."""
    with Bag(FIXTURE) as bag:
        rows = bag.read('measurement')
    stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for _, m in rows])
    return (stamps - stamps[0], np.array([m.temperatures_degc[SENSOR] for _, m in rows]),
            np.array([m.pack_current_a for _, m in rows], dtype=float))


def test_fixture_is_small_and_a_rosbag2_v9_mcap_bag():
    size = sum(os.path.getsize(os.path.join(FIXTURE, f)) for f in os.listdir(FIXTURE))
    assert size < 2_000_000
    with open(os.path.join(FIXTURE, 'metadata.yaml'), encoding='utf-8') as stream:
        info = yaml.safe_load(stream)['rosbag2_bagfile_information']
    assert info['version'] == 9 and info['storage_identifier'] == 'mcap'
    counts = {t['topic_metadata']['name']: t['message_count']
              for t in info['topics_with_message_count']}
    assert counts == {'/measurement': 601, '/sim_truth': 121}


def test_replay_consumes_every_measurement(result):
    assert result.measurements == 601
    assert result.estimator_rejected == 0 and result.protection_rejected == 0
    assert result.duration_s == pytest.approx(60.0, abs=1e-6)
    assert result.profile.endswith('lfp_16s.yaml')    # noted in the bag's custom data


def test_soc_estimate_follows_truth_and_charge_counting(result, recorded):
    t, _, current = recorded
    soc = np.array(result.pack_soc)
    truth = np.array(result.truth_pack_soc)
    assert np.all(np.isfinite(soc)) and len(soc) == len(result.t_s) >= 60
    # started from the OCV at 12 % cell SoC (LFP is steep there): the pack SoC is ~11 %
    assert truth[0] == pytest.approx(0.1107, abs=0.002)
    assert soc[0] == pytest.approx(truth[0], abs=0.005)
    assert np.max(np.abs(soc - truth)) < 0.005
    assert soc[-1] == pytest.approx(truth[-1], abs=0.003)
    # the drop equals the charge drawn (trapezoid of the bag's currents) over 23 Ah, +-0.1 %
    charge_ah = np.trapezoid(current, t) / 3600.0
    assert charge_ah == pytest.approx(-0.198, abs=0.002)
    assert soc[-1] - soc[0] == pytest.approx(charge_ah / 23.0, abs=0.001)
    assert np.all(np.diff(soc[np.array(result.t_s) > 3.5]) <= 1e-4)   # discharging: no rise


def run_start(t, values, threshold, until_s):
    """Start of the uninterrupted run of readings >= threshold that lasts until ``until_s``
    (sensor noise can dip a reading back below and restart the debounce).
    """
    k = int(np.argmin(np.abs(t - until_s)))
    assert values[k] >= threshold
    while k > 0 and values[k - 1] >= threshold:
        k -= 1
    return t[k]


def test_over_temperature_levels_raise_after_their_debounce(result, recorded):
    t, sensor, _ = recorded
    limit = PROTECTION['discharge_overtemperature']
    raised = {e.level_name: e for e in result.events
              if e.limit_id == 'discharge_overtemperature' and e.active}
    assert set(raised) == {'warning', 'alarm', 'trip'}
    for level in ('warning', 'alarm', 'trip'):
        threshold = limit[f'{level}_degc']
        event = raised[level]
        assert event.index == SENSOR and event.threshold == pytest.approx(threshold)
        # raised debounce_s after the readings went and stayed at/above the threshold
        crossing = run_start(t, sensor, threshold, event.t_s)
        assert event.t_s == pytest.approx(crossing + limit['debounce_s'], abs=PERIOD_S + 1e-6)
        # ... and not earlier than debounce_s after the very first reading at/above it
        assert event.t_s >= t[np.argmax(sensor >= threshold)] + limit['debounce_s'] - 1e-6
        assert event.value == pytest.approx(sensor[np.argmin(np.abs(t - event.t_s))], abs=1e-3)
    trip = raised['trip']
    assert 55.0 <= trip.value < 58.0 and 43.0 < trip.t_s < 46.0 and trip.latched


def test_trips_are_the_thermal_event_and_nothing_before_it(result, recorded):
    trips = {(e.limit_id, e.index) for e in result.trips()}
    assert trips == {('temperature_rise_rate', SENSOR), ('temperature_spread', -1),
                     ('discharge_overtemperature', SENSOR)}
    assert all(e.t_s > 20.0 for e in result.events)          # the event starts at t = 20 s
    rate = next(e for e in result.trips() if e.limit_id == 'temperature_rise_rate')
    # the sensor heats at ~1.3 degC/s (half of cell 5's 2 kW / 760 J/K plus conduction)
    t, sensor, _ = recorded
    window = (t >= 40.0) & (t <= 50.0)
    slope = np.polyfit(t[window], sensor[window], 1)[0]
    assert slope == pytest.approx(1.3, abs=0.15)
    assert rate.value >= PROTECTION['temperature_rise_rate']['trip_degc_per_s']
    assert rate.t_s < next(e.t_s for e in result.trips() if e.limit_id ==
                           'discharge_overtemperature')
    assert result.final_trip_latched
    assert not any(not e.active for e in result.events)       # latched: nothing clears


def test_cli_writes_json_summary(tmp_path):
    out = tmp_path / 'result.json'
    run = subprocess.run([sys.executable, '-m', 'bms_ros.tools.bag', 'offline', FIXTURE,
                          '--json', str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert 'RAISE trip    discharge_overtemperature[2]' in run.stdout
    document = json.loads(out.read_text())
    summary = document['summary']
    assert summary['measurements'] == 601
    assert [(trip['limit_id'], trip['index']) for trip in summary['trips']] == [
        ('temperature_rise_rate', 2), ('temperature_spread', -1),
        ('discharge_overtemperature', 2)]
    assert summary['soc_final'] == pytest.approx(document['pack_soc'][-1])
    assert len(document['events']) == 9


# ------------------------------------------------ the bag recorded from the running suite

LIVE = os.path.join(os.path.dirname(FIXTURE), 'lfp_suite_live')


@pytest.fixture(scope='module')
def live():
    """(offline result, live trip events [(t_s, msg)], live estimates [(t_s, msg)], bag rows)."""
    result = replay(LIVE)
    with Bag(LIVE) as bag:
        meas = bag.read('measurement')
        first = meas[0][1].header.stamp
        t0 = first.sec + first.nanosec * 1e-9

        def rel(rows):
            return [(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 - t0, m) for _, m in rows]
        return result, rel(bag.read('trip_event')), rel(bag.read('estimate')), rel(meas), \
            [m for _, m in bag.read('pack_state')]


def test_live_fixture_holds_the_whole_suite():
    with open(os.path.join(LIVE, 'metadata.yaml'), encoding='utf-8') as stream:
        info = yaml.safe_load(stream)['rosbag2_bagfile_information']
    names = {t['topic_metadata']['name'] for t in info['topics_with_message_count']}
    assert {'/can_rx', '/measurement', '/estimate', '/battery_state', '/trip_event',
            '/protection_status', '/pack_state', '/contactor_command', '/sim_truth'} <= names
    size = sum(os.path.getsize(os.path.join(LIVE, f)) for f in os.listdir(LIVE))
    assert size < 2_000_000


def test_offline_replay_reproduces_the_live_protection_node(live):
    result, live_events, _, _, _ = live
    assert result.measurements == 680 and result.estimator_rejected == 0
    assert result.profile.endswith('lfp_suite_live.profile.yaml')
    # the live run also saw a stale-measurement warning from a CPU stall of the node's process
    # (arrival time, not in the data): compare everything else
    recorded = [(t, m) for t, m in live_events if m.active and m.limit_id != 'stale_measurement']
    offline = [e for e in result.events if e.active]
    assert [(m.limit_id, m.index, m.level) for _, m in recorded] == \
        [(e.limit_id, e.index, e.level) for e in offline]
    assert len(offline) == 9 and sum(e.level == 3 for e in offline) == 3
    for (t, m), e in zip(recorded, offline):
        assert e.t_s == pytest.approx(t, abs=0.3), e.limit_id          # live: arrival time
        # values: the sensor rises ~1.3 degC/s, and the clocks differ by a few samples
        assert e.value == pytest.approx(m.value, abs=1.0), e.limit_id
        assert e.threshold == pytest.approx(m.threshold, abs=1e-4)


def test_offline_soc_matches_the_live_estimator(live):
    result, _, estimates, _, _ = live
    t_live = np.array([t for t, _ in estimates])
    soc_live = np.array([m.pack_soc for _, m in estimates], dtype=float)
    soc_offline = np.interp(t_live, result.t_s, result.pack_soc)
    assert np.max(np.abs(soc_offline - soc_live)) < 0.003
    assert result.pack_soc[-1] == pytest.approx(soc_live[-1], abs=0.002)
    assert np.nanmax(np.abs(np.array(result.pack_soc) - np.array(result.truth_pack_soc))) < 0.005


def test_live_supervisor_opened_the_contactors_after_the_trip(live):
    _, live_events, _, meas, states = live
    first_trip = min(t for t, m in live_events if m.level == 3 and m.active)
    after = [m for t, m in meas if t > first_trip + 1.0]
    assert after and all(not (m.positive_contactor_closed or m.negative_contactor_closed)
                         for m in after)
    assert all(abs(m.pack_current_a) < 1.0 for m in after)
    before = [m for t, m in meas if 12.0 < t < first_trip]
    assert all(m.positive_contactor_closed for m in before)
    assert any(abs(m.pack_current_a + 23.0) < 1.0 for m in before)   # the 1 C step was drawn
    assert states[-1].state == 5 and states[-1].state_name.upper() == 'ERROR'
