"""Vendor-style DBCs (test/fixtures/can/vendors/): a recorded log of each, decoded into the truth.

Two processes per layout: the can_driver node reading the log as ``bms-can-log play`` sends it
onto the hub, and ``bms-can-log decode`` of the same log offline. Both are checked against the
truth trajectory the log was generated from (make_logs.py, cantools), within quantisation, and
nothing mapped reads stale while frames flow.
"""
import csv
import importlib.util
import math
import os
import subprocess
import sys
import time

import can
import numpy as np
import pytest
import yaml

from bms_interfaces.msg import PackMeasurement
from bms_ros.core.can_codec import CanProtocol
from bms_ros.core.pack_report import ReportDecoder
from bms_ros.core.profile import Profile, default_profile_path
from test.ros.harness import REPO
from test.ros.test_can_driver import start_hub

VENDORS = os.path.join(REPO, 'test', 'fixtures', 'can', 'vendors')
_spec = importlib.util.spec_from_file_location('make_logs', os.path.join(VENDORS, 'make_logs.py'))
make_logs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_logs)

# layout -> quantisation steps (cell V, degC, A, pack V, link V), profile can: extras
LAYOUTS = {
    'modular_bms': ((0.001, 0.1, 0.001, 0.01, 0.01), {}),
    # its temperature PGN comes every 500 ms: the stale timeout must exceed it with the jitter
    # of a player on a loaded machine (0.7 s read stale there once): 0.9 s, within the
    # fail-safe budget's 1.0 s (docs/can.md, Pitfalls)
    'j1939_bms': ((0.001, 1.0, 0.05, 0.05, 0.05), {'stale_timeout_s': 0.9}),
    'statereq_bms': ((0.001, 1.0, 0.001, 0.01, 0.01),
                     {'control': 'pack', 'pack_bms': {'report_timeout_s': 0.5}}),
}
MAPPED_GROUPS = ('cell_voltages', 'temperatures', 'current')


def write_profile(tmp_path, layout, port=None, sections=()):
    """The LFP profile's pack (16 cells, 8 sensors) with a vendor layout's DBC and mapping,
    plus the LFP profile's ``sections`` (e.g. protection, estimator) as they are.
    """
    source = Profile(default_profile_path())
    with open(source.path, encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    pack = dict(data['pack'])
    pack['cell'] = os.path.join(os.path.dirname(source.path), pack['cell'])
    can_section = dict(data.get('can', {}), dbc=os.path.join(VENDORS, f'{layout}.dbc'),
                       mapping=os.path.join(VENDORS, f'{layout}_mapping.yaml'),
                       publish_can_rx=False, **LAYOUTS[layout][1])
    if layout == 'modular_bms':     # the BMS and a separate shunt: two devices on one bus
        can_section['devices'] = [
            {'name': 'mbms', 'dbc': can_section.pop('dbc'), 'mapping': can_section.pop('mapping')},
            {'name': 'shunt', 'dbc': os.path.join(VENDORS, 'ivt_shunt.dbc'),
             'mapping': os.path.join(VENDORS, 'ivt_shunt_mapping.yaml')}]
    if port is not None:
        can_section.update(interface='socketcand', host='127.0.0.1', port=port)
    path = tmp_path / f'profile_{layout}.yaml'
    others = {name: data[name] for name in sections}
    path.write_text(yaml.safe_dump({'pack': pack, 'can': can_section, **others}))
    return str(path)


def tolerances(layout):
    """Half a quantisation step plus float32 rounding, per quantity."""
    steps = LAYOUTS[layout][0]
    return [s / 2.0 + 1e-4 for s in steps]


def guard_s(layout):
    """After a segment boundary, the slowest message of the layout has refreshed by then."""
    return max(period for _, period, _, _ in make_logs.LAYOUTS[layout][3]) + 0.02


def matches(layout, cells, temps, current, pack_v, k):
    """True if the values equal segment k's truth within quantisation."""
    t = make_logs.truth(k, layout)
    tol = tolerances(layout)
    return (np.allclose(cells, t['cell_voltages_v'], rtol=0, atol=tol[0], equal_nan=True)
            and np.allclose(temps, t['temperatures_degc'], rtol=0, atol=tol[1], equal_nan=True)
            and abs(current - t['pack_current_a']) <= tol[2]
            and abs(pack_v - t['pack_voltage_v']) <= tol[3])


def element_segments(layout, values, key, tol):
    """Per element: the set of segments whose truth it equals within ``tol`` (NaN: where
    the truth is NaN, an invalid value).
    """
    out = []
    for i, v in enumerate(values):
        truths = [make_logs.truth(k, layout)[key][i] for k in range(make_logs.SEGMENTS)]
        out.append({k for k, t in enumerate(truths)
                    if abs(v - t) <= tol or (math.isnan(v) and math.isnan(t))})
    return out


@pytest.mark.parametrize('layout', sorted(LAYOUTS))
def test_log_decodes_offline_into_the_truth(tmp_path, layout):
    """bms-can-log decode of the recorded log: every snapshot away from a segment boundary is
    the truth within quantisation, no mapped group stale, malformed traffic only counted.
    """
    profile = write_profile(tmp_path, layout)
    out = tmp_path / f'{layout}.csv'
    log = make_logs.log_path(layout)
    run = subprocess.run([sys.executable, '-m', 'bms_ros.tools.can_log', 'decode', log,
                          '--profile', profile, '--out', str(out)],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    first = next(iter(can.LogReader(log))).timestamp
    rows = list(csv.DictReader(out.open()))
    tol = tolerances(layout)
    checked = 0
    for row in rows:
        rel = float(row['t_s']) - first
        k = make_logs.segment_of(rel)
        if k is None or make_logs.segment_of(rel - guard_s(layout)) != k:
            continue       # a boundary: the slower messages still carry the last segment
        cells = [float(row[f'cell_voltages_v_{i}']) for i in range(make_logs.CELLS)]
        temps = [float(row[f'temperatures_degc_{j}']) for j in range(make_logs.SENSORS)]
        truth = make_logs.truth(k, layout)
        np.testing.assert_allclose(cells, truth['cell_voltages_v'], rtol=0, atol=tol[0])
        np.testing.assert_allclose(temps, truth['temperatures_degc'], rtol=0, atol=tol[1])
        assert abs(float(row['pack_current_a']) - truth['pack_current_a']) <= tol[2], row
        assert abs(float(row['pack_voltage_v']) - truth['pack_voltage_v']) <= tol[3], row
        assert abs(float(row['link_voltage_v']) - truth['link_voltage_v']) <= tol[4], row
        for group in MAPPED_GROUPS:
            assert row[f'{group}_stale'] == '0', (group, row['t_s'])
        checked += 1
    # every segment, minus the guard after each boundary, at 10 Hz
    assert checked >= make_logs.SEGMENTS * (make_logs.SEGMENT_S - guard_s(layout)) * 10 - 8
    counters = run.stdout
    assert 'decode_error 0' in counters and 'wrong_dlc 0' in counters, counters
    if layout == 'modular_bms':       # the diagnostics branch, once a second
        assert 'unmapped_branch 9' in counters, counters
        # cell 5 flagged in each of segment 3's 15 cell cycles (NaN in the truth, compared
        # above); the shunt's status bit 0 in segment 4 is not an error (error_mask 0x0E)
        assert 'invalid_flag 15,' in counters and 'error_bits 0,' in counters, counters
    if layout == 'j1939_bms':         # the second pack at SA 0xF4: other ids
        assert 'unknown_id 90' in counters, counters


def test_statereq_report_decodes_offline_into_the_truth():
    """The pack BMS's own report in the BLF log (state, SoC, SoH, limits, flags) through
    core/pack_report/: our state names and values within quantisation.
    """
    layout = 'statereq_bms'
    protocol = CanProtocol.from_files(os.path.join(VENDORS, f'{layout}.dbc'),
                                      os.path.join(VENDORS, f'{layout}_mapping.yaml'), 16, 8)
    decoder = ReportDecoder(protocol.mapping)
    frames = list(can.LogReader(make_logs.log_path(layout)))
    first = frames[0].timestamp
    checked = 0
    next_check = first + 0.05
    for msg in frames:
        while msg.timestamp >= next_check:
            rel = next_check - first
            k = make_logs.segment_of(rel)
            if k is not None and make_logs.segment_of(rel - guard_s(layout)) == k:
                report = decoder.snapshot(next_check, 0.5)
                truth = make_logs.truth(k, layout)
                assert report.state_name == truth['state'], (rel, report.reason)
                assert not report.stale, report.stale_fields
                assert abs(report.pack_soc - truth['pack_soc']) <= 0.0001 / 2 + 1e-9
                assert abs(report.soh_capacity - truth['soh_capacity']) <= 0.001 / 2 + 1e-9
                assert abs(report.charge_current_limit_a
                           - truth['charge_current_limit_a']) <= 0.05 + 1e-9
                assert abs(report.discharge_current_limit_a
                           - truth['discharge_current_limit_a']) <= 0.05 + 1e-9
                assert sorted(f[0] for f in report.flags) == sorted(
                    truth['faults'] + truth['warnings'])
                assert report.contactors['positive_contactor_closed'] == \
                    truth['positive_contactor_closed']
                checked += 1
            next_check += 0.1
        decoder.feed(msg, msg.timestamp)
    assert checked >= 6 * 12
    assert decoder.counts['counter_error'] == 0 and decoder.counts['decode_error'] == 0


@pytest.mark.ros
@pytest.mark.parametrize('layout', sorted(LAYOUTS))
def test_driver_decodes_played_log_into_the_truth(ros_env, tmp_path, layout):
    """The can_driver node (its own process) reads the log played onto the hub by
    bms-can-log play: every published element is a truth value within quantisation, most
    measurements are one segment's truth entire, and no mapped group is stale while the log
    plays.
    """
    port = start_hub(ros_env)
    profile = write_profile(tmp_path, layout, port)
    measurements = ros_env.subscribe(PackMeasurement, 'measurement')
    ros_env.start_module('bms_ros.nodes.can_driver', params={'profile': profile})
    measurements.wait_for(timeout_s=20.0, what='a first measurement (nothing on the bus yet)')
    player = ros_env.start_module('bms_ros.tools.can_log', 'play', make_logs.log_path(layout),
                                  '--profile', profile, '--port', str(port), ros_args=False,
                                  name='player')
    fresh = measurements.wait_for(lambda m: not (m.cell_voltages_stale or m.temperatures_stale
                                                 or m.current_stale),
                                  timeout_s=15.0, what='a measurement with every group fresh')
    deadline = time.monotonic() + 25.0
    while player.alive():
        assert time.monotonic() < deadline, player.log_tail()
        time.sleep(0.1)
    assert player.popen.returncode == 0, player.log_tail()
    ended = time.monotonic()
    with measurements._cond:
        played = [(t, m) for t, m in measurements.messages]
    start = next(i for i, (_, m) in enumerate(played) if m is fresh)
    # the last frame left the player shortly before it exited; its last 0.3 s may be cut
    during = [m for t, m in played[start:] if t < ended - 0.3]
    assert len(during) >= 40, len(during)
    tol = tolerances(layout)
    whole = set()
    whole_count = 0
    for m in during:
        for group in MAPPED_GROUPS:
            assert not getattr(m, f'{group}_stale'), (group, m.header.stamp)
        cells = np.asarray(m.cell_voltages_v, dtype=float)
        temps = np.asarray(m.temperatures_degc, dtype=float)
        assert list(m.cell_voltage_valid) == list(np.isfinite(cells))
        assert list(m.temperature_valid) == list(np.isfinite(temps))
        for values, key, t in ((cells, 'cell_voltages_v', tol[0]),
                               (temps, 'temperatures_degc', tol[1])):
            for i, segs in enumerate(element_segments(layout, values, key, t)):
                assert segs, f'{key}[{i}] = {values[i]} is no truth value'
        current = float(m.pack_current_a)
        assert any(abs(current - make_logs.truth(k, layout)['pack_current_a']) <= tol[2]
                   for k in range(make_logs.SEGMENTS)), current
        ks = [k for k in range(make_logs.SEGMENTS)
              if matches(layout, cells, temps, current, float(m.pack_voltage_v), k)]
        if ks:
            whole.update(ks)
            whole_count += 1
    assert whole_count >= 0.5 * len(during), (whole_count, len(during))
    assert len(whole) >= make_logs.SEGMENTS - 1, whole
