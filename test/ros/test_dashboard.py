"""The dashboard on a running suite: its JSON snapshot against what the probe receives, the
reset and state requests with and without the token, a non-loopback bind without a token
refused, and the page rendered in a real headless browser (Debian's chromium): the DOM after
its script ran shows the live pack's values, and a screenshot holds the page's colours.
"""
import http.client
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from .suite import DRIVE, STANDBY, Suite, free_port, write_profile

pytestmark = pytest.mark.ros

TOKEN = 'dashboard-test-token'
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')


def call(port, method, path, body=None, token=None, timeout_s=15.0):
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout_s)
    headers = {'Content-Type': 'application/json'}
    if token is not None:
        headers['X-BMS-Token'] = token
    connection.request(method, path, json.dumps(body).encode() if body is not None else None,
                       headers)
    reply = connection.getresponse()
    data = json.loads(reply.read())
    connection.close()
    return reply.status, data


def wait_snapshot(port, predicate, timeout_s=30.0, what='a snapshot'):
    """The first snapshot of the pack in /pack_a that satisfies ``predicate``."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            status, last = call(port, 'GET', '/api/pack/pack_a', timeout_s=2.0)
            if status == 200 and predicate(last):
                return last
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    raise AssertionError(f'no {what} in {timeout_s} s; last: {str(last)[:500]}')


def around(suite, take):
    """``take()`` between the pack's messages: (its result, the measurements, the estimates
    received from two before it to one after it). The pack's cells move a few mV between
    two reads (the simulator's ADC noise, relaxation), so a value shown is checked against
    the range published around it, not against one read.
    """
    suite.measurements.clear()
    suite.estimates.clear()
    suite.measurements.wait_count(2, timeout_s=10.0)
    suite.estimates.wait_count(2, timeout_s=10.0)
    result = take()
    seen = len(suite.measurements.messages), len(suite.estimates.messages)
    suite.measurements.wait_count(seen[0] + 1, timeout_s=10.0)
    suite.estimates.wait_count(seen[1] + 1, timeout_s=10.0)
    return (result, [m for _, m in suite.measurements.messages],
            [e for _, e in suite.estimates.messages])


def within(value, values, tolerance):
    """True if ``value`` lies in [min(values) - tolerance, max(values) + tolerance]."""
    return min(values) - tolerance <= value <= max(values) + tolerance


@pytest.fixture
def dashboard_suite(ros_env, tmp_path):
    """The single-process suite in namespace pack_a with a token in its profile, and the
    dashboard node (in the root namespace: it finds the pack by its topics).
    """
    suite = Suite(ros_env, tmp_path, edits={'dashboard': {'token': TOKEN}},
                  single_process=True, namespace='pack_a').start()
    port = free_port()
    process = ros_env.start_module('bms_ros.tools.dashboard', name='dashboard',
                                   params={'profile': suite.profile, 'port': port})
    suite.wait_ready()
    wait_snapshot(port, lambda s: s['state'] and s['state']['name'] == 'STANDBY'
                  and s['estimate'] and s['cells'], what='a STANDBY snapshot with cells')
    return suite, port, process


def test_snapshot_and_actions_of_a_running_suite(dashboard_suite):
    suite, port, process = dashboard_suite
    status, packs = call(port, 'GET', '/api/packs')
    assert status == 200 and [p['namespace'] for p in packs] == ['/pack_a']
    snap, measurements, estimates = around(suite, lambda: wait_snapshot(port, lambda s: True))
    assert len(snap['cells']['voltages_v']) == suite.cells == 16
    assert len(snap['temperatures']['degc']) == suite.sensors
    # what the snapshot shows is what the pack published around it (to the mV it is shown in)
    for cell, shown in enumerate(snap['cells']['voltages_v']):
        seen = [m.cell_voltages_v[cell] for m in measurements]
        assert within(shown, seen, 0.001), (cell, shown, seen)
    assert within(snap['estimate']['pack_soc'], [e.pack_soc for e in estimates], 0.001)
    assert snap['identity']['serial_number'] == 'SIM-LFP-0001'
    assert snap['limits']['cell_v']['high']['trip'] == pytest.approx(3.75)
    assert snap['state']['commanded'] == {'negative': False, 'precharge': False,
                                          'positive': False}

    # no token, a wrong one: refused, nothing changes
    drive = {'state': 'drive', 'confirm': True}
    assert call(port, 'POST', '/api/pack/pack_a/request_state', drive)[0] == 401
    assert call(port, 'POST', '/api/pack/pack_a/request_state', drive,
                token='not-the-token')[0] == 401
    assert suite.states.latest().state == STANDBY
    # with the token: the supervisor answers and goes to DRIVE
    suite.states.clear()
    deadline = time.monotonic() + 15.0
    while True:   # the supervisor may still settle (as Suite.drive retries)
        status, answer = call(port, 'POST', '/api/pack/pack_a/request_state', drive, token=TOKEN)
        assert status == 200, answer
        if answer['accepted'] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert answer['accepted'], answer
    suite.states.wait_for(lambda s: s.state == DRIVE, timeout_s=15.0, what='DRIVE')
    wait_snapshot(port, lambda s: s['state']['name'] == 'DRIVE' and
                  s['state']['commanded']['positive'], what='DRIVE in the snapshot')
    status, answer = call(port, 'POST', '/api/pack/pack_a/reset',
                          {'reason': 'test', 'confirm': True}, token=TOKEN)
    assert status == 200 and answer['success'], answer     # nothing latched: granted
    status, answer = call(port, 'POST', '/api/pack/pack_a/request_state',
                          {'state': 'standby', 'confirm': True}, token=TOKEN)
    assert status == 200 and answer['accepted'], answer
    assert process.alive() and not suite.dead()


@pytest.mark.skipif(CHROMIUM is None, reason='chromium not installed (scripts/bootstrap.sh)')
def test_page_in_a_headless_browser(dashboard_suite, tmp_path):
    suite, port, _ = dashboard_suite
    url = f'http://127.0.0.1:{port}/pack/pack_a?poll'
    browser = [CHROMIUM, '--headless', '--no-sandbox', '--no-zygote', '--disable-gpu',
               '--disable-dev-shm-usage', f'--user-data-dir={tmp_path / "chromium"}',
               '--virtual-time-budget=3000', '--window-size=1280,1700']
    env = dict(os.environ, HOME=str(tmp_path))
    # what the pack published while the browser loaded and rendered the page
    dom, during, estimates = around(suite, lambda: subprocess.run(
        [*browser, '--dump-dom', url], capture_output=True, text=True, timeout=90,
        env=env).stdout)
    assert 'data-rendered=' in dom, dom[:2000]    # the script ran and rendered a snapshot
    assert re.search(r'id="state" class="badge state-STANDBY">STANDBY<', dom), dom[:2000]
    soc = float(re.search(r'id="soc">([0-9.]+) %<', dom).group(1))
    socs = [100.0 * e.pack_soc for e in estimates]
    assert within(soc, socs, 0.06), (soc, socs)      # shown with one decimal
    bars = re.findall(r'<rect [^>]*class="cell[^"]*"[^>]*data-value="([0-9.]+)"', dom)
    assert len(bars) == 16, dom[:3000]
    for cell, shown in enumerate(map(float, bars)):
        seen = [m.cell_voltages_v[cell] for m in during]
        assert within(shown, seen, 0.001), (cell, shown, seen)
    assert len(re.findall(r'<rect [^>]*class="temp', dom)) == suite.sensors
    assert 'data-limit="charge_high:warning"' in dom   # the profile's 35 degC line (cells at 25)
    assert re.search(r'id="fb_positive" class="open">open<', dom)

    png = tmp_path / 'dashboard.png'
    subprocess.run([*browser, f'--screenshot={png}', url], capture_output=True, timeout=90,
                   env=env)
    from matplotlib.image import imread
    image = imread(str(png))[..., :3]
    assert image.shape[0] >= 1000 and image.shape[1] >= 1200
    assert image.std() > 0.05, 'blank screenshot'

    def pixels(rgb_hex, tolerance=0.04):
        rgb = [int(rgb_hex[i:i + 2], 16) / 255 for i in (0, 2, 4)]
        return int((abs(image - rgb).max(axis=2) < tolerance).sum())

    assert pixels('2563eb') > 200, 'no STANDBY badge blue'      # .state-STANDBY
    assert pixels('3b82f6') > 5000, 'no cell bars'               # .chart .cell
    assert pixels('f97316') > 2000, 'no temperature bars'        # .chart .temp


def test_non_loopback_bind_without_token_is_refused(ros_env, tmp_path):
    profile = write_profile(tmp_path / 'profile.yaml')   # the shipped section: no token
    process = ros_env.start_module('bms_ros.tools.dashboard', name='dashboard',
                                   params={'profile': profile, 'host': '0.0.0.0',
                                           'port': free_port()})
    deadline = time.monotonic() + 30.0
    while process.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not process.alive() and process.popen.returncode == 2
    log = process.log_tail(10)
    assert 'dashboard.token' in log and '0.0.0.0' in log, log
