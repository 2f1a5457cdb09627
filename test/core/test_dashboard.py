"""The dashboard without ROS or a browser: its configuration, the pack state it aggregates and
the HTTP/JSON API (with a fake in place of the ROS node's service calls).
"""
import http.client
import json
import math
import os

import pytest
import yaml

from bms_ros.core.config import Section
from bms_ros.core.errors import ConfigError
from bms_ros.core.profile import Profile, config_dir
from bms_ros.tools.dashboard.config import DashboardConfig, is_loopback
from bms_ros.tools.dashboard.server import DashboardServer
from bms_ros.tools.dashboard.state import (
    Dashboard,
    PackView,
    from_page_name,
    limit_lines,
    namespaces,
    page_name,
)

TOKEN = 'correct-horse-battery'


def section(data):
    return Section(data, 'profile.yaml', 'dashboard')


# ------------------------------------------------------------------ configuration

def test_defaults_bind_loopback_without_token():
    config = DashboardConfig.from_section(section({}))
    assert (config.host, config.port, config.token) == ('127.0.0.1', 8642, '')


@pytest.mark.parametrize('host', ['0.0.0.0', '192.168.1.20', '::', 'robot.local'])
def test_binding_beyond_loopback_without_a_token_is_refused(host):
    with pytest.raises(ConfigError) as error:
        DashboardConfig.from_section(section({'host': host}))
    assert 'dashboard.token' in str(error.value) and host in str(error.value)
    assert DashboardConfig.from_section(section({'host': host, 'token': TOKEN})).token == TOKEN


def test_host_parameter_overrides_the_profile_and_is_checked_too():
    with pytest.raises(ConfigError, match='dashboard.token'):
        DashboardConfig.from_section(section({}), host='0.0.0.0')


@pytest.mark.parametrize('data, field', [
    ({'token': 'short'}, 'token'), ({'token': ' spaced-token '}, 'token'),
    ({'token': 12345678}, 'token'),
    ({'port': 70000}, 'port'), ({'period_s': 0.0}, 'period_s'), ({'colour': 'red'}, 'colour')])
def test_bad_fields_name_the_field(data, field):
    with pytest.raises(ConfigError, match=f'dashboard.{field}'):
        DashboardConfig.from_section(section(data))


def test_loopback_addresses():
    assert is_loopback('127.0.0.1') and is_loopback('127.1.2.3') and is_loopback('::1')
    assert is_loopback('localhost')
    assert not is_loopback('0.0.0.0') and not is_loopback('10.0.0.1') and not is_loopback('host')


def test_shipped_profiles_have_a_valid_loopback_dashboard_section():
    for name in ('lfp_16s.yaml', 'nmc_96s.yaml'):
        profile = Profile(os.path.join(config_dir(), 'profiles', name))
        config = DashboardConfig.from_section(profile.section('dashboard'))
        assert config.host == '127.0.0.1' and config.token == ''


# ------------------------------------------------------------------ state

def test_namespaces_are_found_from_pack_topics():
    topics = ['/pack_a/pack_state', '/pack_a/measurement', '/pack_b/measurement', '/pack_state',
              '/rosout', '/parameter_events', '/diagnostics', '/pack_c/estimate']
    assert namespaces(topics) == ['/', '/pack_a', '/pack_b']
    assert [page_name(ns) for ns in namespaces(topics)] == ['_', 'pack_a', 'pack_b']
    assert from_page_name('_') == '/' and from_page_name('pack_a') == '/pack_a'


def measurement(volts, temps, current=-12.5):
    return {'cell_voltages_v': volts, 'cell_voltage_valid': [True] * len(volts),
            'temperatures_degc': temps, 'temperature_valid': [True] * len(temps),
            'pack_current_a': current, 'pack_voltage_v': sum(volts), 'cell_balancing':
            [False] * len(volts), 'cell_voltages_stale': False, 'temperatures_stale': False,
            'current_stale': False}


def test_snapshot_of_a_pack():
    view = PackView('/pack_a', history_s=60, events=3)
    view.update('measurement', measurement([3.30, 3.31, float('nan'), 3.28], [25.0, 31.5]), 100.0)
    view.update('estimate', {'pack_soc': 0.62, 'soh_capacity': 0.97,
                             'charge_current_limit_a': 90.0}, 100.1)
    view.update('pack_state', {'state_name': 'DRIVE', 'reason': 'requested', 'requested_state': 3,
                               'commanded': {'negative_closed': True, 'precharge_closed': False,
                                             'positive_closed': True},
                               'negative_contactor_closed': True, 'precharge_relay_closed': False,
                               'positive_contactor_closed': False}, 100.2)
    view.update('protection_status', {'max_level': 1, 'trip_latched': False, 'active': [
        {'limit_id': 'cell_voltage_spread', 'level': 1, 'index': -1, 'value': 0.03,
         'threshold': 0.02, 'unit': 'V', 'active': True, 'latched': False,
         'message': 'spread 30 mV'}], 'charge_current_limit_a': 80.0,
        'discharge_current_limit_a': 400.0}, 100.3)
    for i in range(5):   # 5 events, 3 kept, newest first
        view.update('trip_event', {'limit_id': f'limit_{i}', 'level': 3, 'index': i,
                                   'active': True, 'latched': True, 'message': f'm{i}',
                                   'header': {'stamp': 50.0 + i, 'frame_id': ''}},
                    101.0 + i)
    snap = view.snapshot(110.0)
    json.dumps(snap, allow_nan=False)   # NaN became null
    assert snap['cells']['voltages_v'][2] is None
    assert snap['cells']['min_v'] == pytest.approx(3.28) and snap['cells']['max_v'] == \
        pytest.approx(3.31)
    assert snap['cells']['spread_v'] == pytest.approx(0.03)
    assert snap['temperatures']['max_degc'] == pytest.approx(31.5)
    assert snap['state']['name'] == 'DRIVE'
    assert snap['state']['commanded'] == {'negative': True, 'precharge': False, 'positive': True}
    assert snap['state']['feedback']['positive'] is False
    assert snap['protection']['max_level'] == 'warning'
    assert snap['protection']['active'][0]['limit_id'] == 'cell_voltage_spread'
    assert [e['limit_id'] for e in snap['events']] == ['limit_4', 'limit_3', 'limit_2']
    assert snap['events'][0]['level'] == 'trip'
    assert snap['events'][0]['stamp_s'] == 54.0 and snap['events'][0]['received_s'] == 105.0
    assert snap['estimate']['pack_soc'] == pytest.approx(0.62)
    assert snap['age_s']['measurement'] == pytest.approx(10.0)
    assert snap['page'] == 'pack_a'


def test_history_takes_one_sample_per_second_and_is_bounded():
    view = PackView('/', history_s=10)
    for i in range(300):   # 30 s at 10 Hz
        view.update('measurement', measurement([3.3 + i * 1e-4, 3.2], [25.0]), 1000.0 + i * 0.1)
    history = view.snapshot(1030.0)['history']
    assert len(history['time_s']) == 10
    assert all(b - a == pytest.approx(1.0, abs=0.15) for a, b in
               zip(history['time_s'], history['time_s'][1:]))
    assert history['cell_min_v'][-1] == pytest.approx(3.2)
    assert history['current_a'][-1] == pytest.approx(-12.5)


def test_empty_pack_snapshot_has_no_sections():
    snap = PackView('/x').snapshot(0.0)
    assert snap['cells'] is None and snap['state'] is None and snap['events'] == []


def test_limit_lines_from_the_shipped_profile():
    path = os.path.join(config_dir(), 'profiles', 'lfp_16s.yaml')
    with open(path, encoding='utf-8') as stream:
        protection = yaml.safe_load(stream)['protection']
    lines = limit_lines(protection)
    assert lines['cell_v']['high'] == {'warning': 3.62, 'alarm': 3.65, 'trip': 3.75}
    assert lines['cell_v']['low']['trip'] == 2.0
    assert lines['temperature_degc']['high']['trip'] == 55.0
    assert limit_lines({}) == {} and limit_lines(None) == {}


# ------------------------------------------------------------------ HTTP API

class FakeActions:
    """Stands for the ROS node: records the calls, answers as the services would."""

    def __init__(self):
        self.calls = []

    def reset(self, namespace, requester, reason):
        self.calls.append(('reset', namespace, reason))
        return {'success': True, 'message': 'reset cell_overvoltage[3]', 'still_latched': []}

    def request_state(self, namespace, state, requester):
        self.calls.append(('request_state', namespace, state))
        if namespace == '/slow':
            raise TimeoutError('request_state: no answer in 10 s')
        return {'accepted': state != 'charge', 'reason': 'ok', 'state': 3}


@pytest.fixture
def served():
    dashboard = Dashboard(history_s=60)
    dashboard.pack('/').update('measurement', measurement([3.3] * 4, [25.0, 26.0]))
    dashboard.pack('/pack_b').update('pack_state', {'state_name': 'STANDBY'})
    dashboard.pack('/slow')
    actions = FakeActions()
    server = DashboardServer(DashboardConfig(port=0, token=TOKEN, period_s=0.05), dashboard,
                             actions).start()
    yield server, actions
    server.stop()


def call(server, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection('127.0.0.1', server.port, timeout=5)
    data = json.dumps(body).encode() if body is not None else None
    connection.request(method, path, data, {'Content-Type': 'application/json',
                                            **(headers or {})})
    reply = connection.getresponse()
    raw = reply.read()
    connection.close()
    kind = reply.getheader('Content-Type', '')
    return reply.status, (json.loads(raw) if 'json' in kind else raw.decode())


def test_read_only_api(served):
    server, _ = served
    status, packs = call(server, 'GET', '/api/packs')
    assert status == 200 and [p['namespace'] for p in packs] == ['/', '/pack_b', '/slow']
    status, snap = call(server, 'GET', '/api/pack/_')
    assert status == 200 and snap['cells']['voltages_v'] == [3.3] * 4
    assert call(server, 'GET', '/api/pack/pack_b')[1]['state']['name'] == 'STANDBY'
    assert call(server, 'GET', '/api/pack/nowhere')[0] == 404
    assert call(server, 'GET', '/api/config')[1] == {'token_required': True, 'period_s': 0.05}
    status, page = call(server, 'GET', '/')
    assert status == 200 and 'href="/pack/pack_b"' in page and 'STANDBY' in page
    status, page = call(server, 'GET', '/pack/_')
    assert status == 200 and '/static/dashboard.js' in page
    assert call(server, 'GET', '/static/dashboard.js')[0] == 200
    assert call(server, 'GET', '/static/..%2Fserver.py')[0] == 404
    assert call(server, 'GET', '/static/server.py')[0] == 404


def test_actions_need_the_token_and_a_confirmation(served):
    server, actions = served
    body = {'reason': 'inspected', 'confirm': True}
    assert call(server, 'POST', '/api/pack/_/reset', body)[0] == 401             # no header
    assert call(server, 'POST', '/api/pack/_/reset', body, {'X-BMS-Token': 'wrong-token-x'})[0] \
        == 401
    assert actions.calls == []
    auth = {'X-BMS-Token': TOKEN}
    status, answer = call(server, 'POST', '/api/pack/_/reset', {'reason': 'x'}, auth)
    assert status == 400 and 'confirm' in answer['error']
    status, answer = call(server, 'POST', '/api/pack/_/reset', body, auth)
    assert status == 200 and answer['success'] and answer['message'] == 'reset cell_overvoltage[3]'
    assert actions.calls == [('reset', '/', 'inspected')]
    status, answer = call(server, 'POST', '/api/pack/pack_b/request_state',
                          {'state': 'drive', 'confirm': True}, auth)
    assert status == 200 and answer['accepted']
    assert call(server, 'POST', '/api/pack/pack_b/request_state',
                {'state': 'error', 'confirm': True}, auth)[0] == 400
    assert call(server, 'POST', '/api/pack/slow/request_state',
                {'state': 'drive', 'confirm': True}, auth)[0] == 503
    assert call(server, 'POST', '/api/pack/nowhere/reset', body, auth)[0] == 404
    # another web site's page in the operator's browser: refused even with the token
    status, answer = call(server, 'POST', '/api/pack/_/reset', body,
                          {**auth, 'Origin': 'http://evil.example'})
    assert status == 403
    assert actions.calls[-1] == ('request_state', '/slow', 'drive')


def test_without_a_token_configured_the_header_is_still_required():
    dashboard = Dashboard()
    dashboard.pack('/')
    actions = FakeActions()
    server = DashboardServer(DashboardConfig(port=0), dashboard, actions).start()
    try:
        body = {'confirm': True}
        assert call(server, 'POST', '/api/pack/_/reset', body)[0] == 401
        assert call(server, 'POST', '/api/pack/_/reset', body, {'X-BMS-Token': ''})[0] == 200
    finally:
        server.stop()


def test_event_stream_sends_snapshots(served):
    server, _ = served
    connection = http.client.HTTPConnection('127.0.0.1', server.port, timeout=5)
    connection.request('GET', '/api/pack/_/stream')
    reply = connection.getresponse()
    assert reply.status == 200 and reply.getheader('Content-Type') == 'text/event-stream'
    events = []
    while len(events) < 2:
        line = reply.fp.readline().decode()
        if line.startswith('data: '):
            events.append(json.loads(line[6:]))
    connection.close()
    assert all(e['cells']['voltages_v'] == [3.3] * 4 for e in events)
    assert events[1]['time_s'] >= events[0]['time_s']
    assert not math.isnan(events[0]['time_s'])
