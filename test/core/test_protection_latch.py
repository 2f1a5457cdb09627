"""Latched trips: reset paths (refused while present, during cool-down; granted after), the
audit log, and persistence across a restart, including a corrupt file.
"""
import json
import math
import os
from dataclasses import replace

import numpy as np
import pytest

from bms_ros.core.profile import Profile, config_dir
from bms_ros.core.protection import (
    CORRUPT_ID,
    LEVEL_TRIP,
    Measurement,
    Protection,
    TripLatch,
    load_protection_config,
)

PROFILE = Profile(f'{config_dir()}/profiles/lfp_16s.yaml')
CFG = load_protection_config(PROFILE.section('protection'), PROFILE.pack)
# debounce 0 so one measurement trips; release_s as in the profile (1 s for cell voltages,
# 5 s for temperatures): a trip is gone only once released (test_protection_relatch.py runs
# every limit with all its real timing)
CFG = replace(CFG, startup_grace_s=0.0, limits=tuple(
    replace(lim, debounce_s=0.0) for lim in CFG.limits))


def meas(cell3=3.3, temp2=30.0, current=0.0):
    cells = np.full(16, 3.3)
    cells[3] = cell3
    temps = np.full(8, 30.0)
    temps[2] = temp2
    return Measurement.simple(cells, temps, current)


def hold(prot, measurement, start_s, end_s):
    """Evaluate ``measurement`` every 0.1 s from start_s to end_s (both included)."""
    for k in range(round(start_s * 10), round(end_s * 10) + 1):
        prot.evaluate(measurement, k / 10)


def tripped(state_dir=None, now_s=0.0):
    """A protection with cell 3 over-voltage latched at now_s."""
    prot = Protection(CFG, 16, 8, TripLatch(state_dir), now_s=now_s)
    prot.evaluate(meas(cell3=3.76), now_s)
    assert ('cell_overvoltage', 3) in prot.latch
    return prot


def test_reset_refused_while_present_then_during_cool_down_then_granted():
    prot = tripped()                                       # cool-down 10 s for cell voltages
    result = prot.reset(0.5, 'vehicle', 'driver pressed reset')
    assert (result.success, result.still_latched) == (False, ['cell_overvoltage'])
    assert result.message == ('refused: still latched: cell_overvoltage[3] '
                              '(condition still present: 3.760 V)')
    # within the hysteresis band (3.75 - 0.05 V): still present
    prot.evaluate(meas(cell3=3.72), 1.0)
    assert 'condition still present: 3.720 V' in prot.reset(1.0, 'vehicle', 'x').message
    hold(prot, meas(cell3=3.4), 2.0, 2.5)                # inside the band from 2.0 s
    result = prot.reset(2.5, 'vehicle', 'x')              # release_s 1 s not over yet
    assert result.message == ('refused: still latched: cell_overvoltage[3] '
                              '(release running: 0.5 s of 1 s left)')
    hold(prot, meas(cell3=3.4), 2.6, 3.0)                 # gone at 3.0 s: cool-down to 13.0 s
    result = prot.reset(9.0, 'vehicle', 'x')
    assert result.message == ('refused: still latched: cell_overvoltage[3] '
                              '(cool-down running: 4.0 s of 10 s left)')
    assert prot.status(9.0).active[-1].message.endswith('cool-down running: 4.0 s of 10 s left')
    prot.evaluate(meas(cell3=3.4), 13.0)
    assert prot.status(13.0).active[-1].message.endswith('; reset possible')
    result = prot.reset(13.0, 'vehicle', 'cooled down')
    assert (result.success, result.message, result.still_latched) == (
        True, 'reset cell_overvoltage[3]', [])
    cleared, = prot.reset_events(result, 13.0, 'vehicle')
    assert (cleared.limit_id, cleared.index, cleared.level, cleared.active, cleared.latched,
            cleared.message) == ('cell_overvoltage', 3, LEVEL_TRIP, False, False,
                                 'cell_overvoltage[3] reset by vehicle')
    status = prot.status(13.0)
    assert not status.trip_latched and status.charge_current_limit_a == 100.0


def test_condition_returning_restarts_the_cool_down():
    prot = tripped()
    hold(prot, meas(cell3=3.4), 1.0, 2.0)                   # gone (released) at 2.0 s
    back = prot.evaluate(meas(cell3=3.76), 5.0)             # back: not a new event, timer reset
    assert [e for e in back if e.level == LEVEL_TRIP] == []
    assert 'condition still present: 3.760 V' in prot.reset(5.0, 'v', 'r').message
    hold(prot, meas(cell3=3.4), 6.0, 7.0)                   # a full release_s again: gone at 7.0
    assert 'cool-down running: 5.0 s' in prot.reset(12.0, 'v', 'r').message
    assert prot.reset(17.0, 'v', 'r').success


def test_partial_reset_names_what_stays_latched():
    prot = tripped()
    hold(prot, meas(cell3=3.4, temp2=46.0, current=5.0), 1.0, 2.0)  # charge over-temperature
    prot.evaluate(meas(cell3=3.4, temp2=46.0, current=0.0), 20.0)  # not charging, still 46 degC
    result = prot.reset(20.0, 'service tool', 'after inspection')
    assert not result.success
    assert result.message == ('reset cell_overvoltage[3]; still latched: '
                              'charge_overtemperature[2] (condition still present: 46.0 degC)')
    assert result.still_latched == ['charge_overtemperature']
    # hot trips need their 5 s release below 45 - 2 degC, then their 60 s cool-down
    hold(prot, meas(temp2=42.0), 30.0, 33.0)
    assert 'release running: 2.0 s of 5 s left' in prot.reset(33.0, 'v', 'r').message
    hold(prot, meas(temp2=42.0), 33.1, 35.0)
    assert 'cool-down running: 60.0 s of 60 s left' in prot.reset(35.0, 'v', 'r').message
    assert prot.reset(95.0, 'v', 'r').success


def test_reset_needs_a_requester_and_is_a_no_op_when_nothing_is_latched():
    prot = tripped()
    result = prot.reset(1.0, ' ', 'reason')
    assert (result.success, result.message) == (False, 'refused: requester is empty (say who asks)')
    prot = Protection(CFG, 16, 8)
    assert prot.reset(0.0, 'v', 'r').message == 'nothing latched'


def test_every_reset_request_is_logged_with_requester_and_reason(tmp_path, caplog):
    prot = tripped(str(tmp_path))
    caplog.set_level('INFO')
    prot.reset(0.1, 'vehicle_ecu', 'driver pressed reset')
    hold(prot, meas(), 0.2, 1.2)
    prot.reset(20.0, 'service_tool', 'fixed charger')
    lines = (tmp_path / 'reset_requests.log').read_text().splitlines()
    assert len(lines) == 2
    assert "requester='vehicle_ecu' reason='driver pressed reset' success=False" in lines[0]
    assert "requester='service_tool' reason='fixed charger' success=True reset " \
           "cell_overvoltage[3]" in lines[1]
    assert "reset request by 'vehicle_ecu' (reason 'driver pressed reset')" in caplog.text


def test_latched_trips_survive_a_restart_until_reset(tmp_path):
    prot = tripped(str(tmp_path))
    assert prot.save_if_changed()
    assert not prot.save_if_changed()                      # nothing new: no write
    doc = json.loads((tmp_path / 'latched_trips.json').read_text())
    assert [(t['limit_id'], t['index']) for t in doc['trips']] == [('cell_overvoltage', 3)]

    # "restart": a new latch and protection read the file back
    latch = TripLatch(str(tmp_path))
    restored = latch.load()
    assert [t.message for t in restored] == ['cell 3 over-voltage 3.760 V >= trip 3.750 V']
    prot = Protection(CFG, 16, 8, latch, now_s=100.0)
    event, = prot.restored_events(100.0)
    assert (event.limit_id, event.index, event.active, event.latched) == (
        'cell_overvoltage', 3, True, True)
    assert event.message.endswith('(restored after restart, reset required)')
    assert prot.status(100.0).trip_latched
    assert prot.current_limits(100.0) == (0.0, 0.0)
    # no measurement yet: the condition is unknown, so no reset
    assert 'condition unknown: no measurement since start' in prot.reset(100.0, 'v', 'r').message
    # the condition is present again after the restart: no second event, still latched
    assert prot.evaluate(meas(cell3=3.76), 100.1)[0].level < LEVEL_TRIP
    hold(prot, meas(), 101.0, 101.5)   # a restored trip also needs its full release_s
    assert 'release running: 0.5 s of 1 s left' in prot.reset(101.5, 'v', 'r').message
    hold(prot, meas(), 101.6, 102.0)
    assert prot.reset(112.0, 'v', 'r').success
    assert prot.save_if_changed()
    assert TripLatch(str(tmp_path)).load() == []


@pytest.mark.parametrize('content', ['{"version": 1, "trips": [', '[1, 2]',
                                     '{"version": 7, "trips": []}',
                                     '{"version": 1, "trips": [{"index": 3}]}'])
def test_corrupt_latch_file_latches_a_trip_instead_of_crashing(tmp_path, content):
    path = tmp_path / 'latched_trips.json'
    path.write_text(content)
    latch = TripLatch(str(tmp_path))
    trip, = latch.load()
    assert trip.limit_id == CORRUPT_ID and latch.load_problem
    assert (tmp_path / 'latched_trips.json.corrupt').read_text() == content
    prot = Protection(CFG, 16, 8, latch, now_s=0.0)
    assert prot.status(0.0).trip_latched
    assert prot.save_if_changed()                          # a valid file replaces the bad one
    assert [t.limit_id for t in TripLatch(str(tmp_path)).load()] == [CORRUPT_ID]
    result = prot.reset(0.0, 'operator', 'checked the pack')  # no condition: resettable at once
    assert result.success and result.message == f'reset {CORRUPT_ID}'


def test_nan_values_are_persisted_as_null(tmp_path):
    prot = Protection(CFG, 16, 8, TripLatch(str(tmp_path)), now_s=0.0)
    prot.evaluate(Measurement.simple(np.full(16, 3.3), np.full(8, 25.0), math.nan), 0.0)
    prot.save_if_changed()
    doc = json.loads((tmp_path / 'latched_trips.json').read_text())
    assert doc['trips'][0]['limit_id'] == 'current_invalid' and doc['trips'][0]['value'] is None
    trip, = TripLatch(str(tmp_path)).load()
    assert math.isnan(trip.value)


def test_unwritable_state_dir_keeps_the_trip_in_memory(tmp_path, caplog):
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    prot = tripped(os.path.join(str(blocker), 'state'))
    assert not prot.save_if_changed()
    assert prot.status(0.0).trip_latched
    assert 'cannot persist latched trips' in caplog.text
