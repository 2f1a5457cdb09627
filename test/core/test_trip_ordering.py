"""Trip ordering on the protection's own stamps: history at start-up (transient-local replay in
either order), live trips, outdated statuses, equal stamps, a clock that goes back, restarts of
either node, and the node's wiring of ordering + state machine for the latch_file_corrupt case.
"""
import os

import numpy as np

from bms_ros.core.measurement import Measurement
from bms_ros.core.pack_state_machine import (
    STATE_ERROR,
    STATE_STANDBY,
    PackStateMachine,
    load_supervisor_config,
)
from bms_ros.core.profile import Profile, config_dir
from bms_ros.core.protection import LEVEL_TRIP
from bms_ros.core.trip_ordering import HISTORY, LIVE, PENDING, TripOrdering

# ---------------------------------------------------------------- start-up replay


def test_old_event_replayed_before_the_first_status_is_history():
    # supervisor (re)started long after a trip that has been reset: the event comes first
    ordering = TripOrdering()
    assert ordering.on_trip(100.0, 'trip') == PENDING
    verdict = ordering.on_status(200.0, trip_latched=False)
    assert (verdict.accepted, verdict.released) == (True, [])
    assert ordering.last_live_trip_s is None and ordering.baseline_s == 200.0


def test_old_event_replayed_after_the_first_status_is_history():
    ordering = TripOrdering()
    assert ordering.on_status(200.0, False).accepted
    assert ordering.on_trip(100.0) == HISTORY
    assert ordering.on_status(200.1, False).accepted     # not ignored: that trip was not acted on


def test_still_latched_trip_at_start_comes_from_the_status():
    ordering = TripOrdering()
    assert ordering.on_trip(100.0, 'trip') == PENDING
    verdict = ordering.on_status(300.0, trip_latched=True)
    assert (verdict.accepted, verdict.released) == (True, [])   # the status trips; event: history


def test_pending_event_newer_than_the_first_status_is_live_and_outdates_it():
    # the first status was published just before the trip but arrived after its event
    ordering = TripOrdering()
    assert ordering.on_trip(200.05, 'trip') == PENDING
    verdict = ordering.on_status(200.0, trip_latched=False)
    assert (verdict.accepted, verdict.released) == (False, ['trip'])
    assert ordering.last_live_trip_s == 200.05 and ordering.statuses_ignored == 1
    assert ordering.on_status(200.1, trip_latched=True).accepted


def test_only_pending_events_at_or_after_the_first_status_are_released():
    ordering = TripOrdering()
    for stamp_s, name in ((150.0, 'old'), (200.0, 'same'), (200.02, 'new')):
        assert ordering.on_trip(stamp_s, name) == PENDING
    verdict = ordering.on_status(200.0, trip_latched=True)
    assert (verdict.accepted, verdict.released) == (True, ['same', 'new'])
    assert ordering.last_live_trip_s == 200.02


def test_pending_events_are_bounded():
    ordering = TripOrdering(pending_max=2)
    for stamp_s in (201.0, 202.0, 203.0):
        ordering.on_trip(stamp_s, stamp_s)
    assert ordering.on_status(200.0, True).released == [202.0, 203.0]


# ---------------------------------------------------------------- running


def test_live_trip_and_the_status_published_before_it():
    ordering = TripOrdering()
    assert ordering.on_status(200.0, False).accepted
    assert ordering.on_status(200.1, False).accepted
    assert ordering.on_trip(200.15) == LIVE
    # in flight when the trip was raised: would unlatch it
    assert not ordering.on_status(200.12, False).accepted
    assert ordering.on_status(200.2, True).accepted        # published after: latched
    assert ordering.on_status(203.0, False).accepted       # after a reset
    assert ordering.statuses_ignored == 1


def test_equal_stamps_act_on_the_trip():
    ordering = TripOrdering()
    ordering.on_status(200.0, False)
    assert ordering.on_trip(200.0) == LIVE                 # equal to the baseline: live
    assert not ordering.on_status(200.0, False).accepted   # equal to the trip: ignored
    assert ordering.on_status(200.0, True).accepted        # latched statuses are never ignored


def test_a_later_live_trip_moves_the_limit_an_earlier_one_does_not():
    ordering = TripOrdering()
    ordering.on_status(100.0, False)
    assert ordering.on_trip(105.0) == LIVE
    assert ordering.on_trip(104.0) == LIVE                 # after the baseline: acted on
    assert ordering.last_live_trip_s == 105.0
    assert not ordering.on_status(104.5, False).accepted


def test_protection_restart_on_the_same_clock():
    # restored trips of a new protection process are stamped after the old statuses: live
    ordering = TripOrdering()
    ordering.on_status(100.0, False)
    ordering.on_status(140.0, False)
    assert ordering.on_trip(160.0) == LIVE                 # '(restored after restart ...)'
    assert ordering.on_status(160.01, True).accepted
    assert ordering.clock_restarts == 0


def test_protection_clock_going_back_restarts_the_ordering():
    # sim time reset / looped bag: later statuses must not be ignored forever
    ordering = TripOrdering()
    ordering.on_status(1000.0, False)
    assert ordering.on_trip(1000.5) == LIVE
    ordering.on_status(1000.6, True)
    verdict = ordering.on_status(10.0, False)              # went back; published after a reset
    assert verdict.accepted and ordering.clock_restarts == 1
    assert (ordering.baseline_s, ordering.last_live_trip_s) == (10.0, None)
    assert ordering.on_status(10.1, False).accepted
    assert ordering.on_trip(10.15) == LIVE                 # on the new time line: live
    assert not ordering.on_status(10.15, False).accepted   # equal to the new live trip


def test_no_supervisor_clock_enters():
    # the same stamps give the same answers whatever the supervisor's own time is: the API
    # takes no supervisor time at all
    a, b = TripOrdering(), TripOrdering()
    for ordering in (a, b):
        ordering.on_status(5.0, False)
    assert a.on_trip(4.0) == b.on_trip(4.0) == HISTORY
    assert a.on_trip(6.0) == b.on_trip(6.0) == LIVE


# ---------------------------------------------------------------- with the state machine
# as nodes/pack_supervisor.py wires them: an event is given to the machine as history unless
# the ordering says live; events released at the first status are given again as live.

CFG = load_supervisor_config(Profile(os.path.join(config_dir(), 'profiles', 'lfp_16s.yaml'))
                             .section('supervisor'))
CORRUPT = 'latched-trip file unreadable (bad JSON); reset to confirm'


def _measurement():
    return Measurement.simple(np.full(16, 3.3), np.full(8, 25.0))


class Wiring:
    def __init__(self):
        self.ordering = TripOrdering()
        self.sm = PackStateMachine(CFG, 0.0)

    def event(self, stamp_s, limit_id, message, now_s, index=-1):
        verdict = self.ordering.on_trip(stamp_s, (limit_id, message, index))
        self.sm.on_trip_event(limit_id, LEVEL_TRIP, True, True, message, now_s, index=index,
                              history=verdict != LIVE)

    def status(self, stamp_s, latched, now_s):
        verdict = self.ordering.on_status(stamp_s, bool(latched))
        for limit_id, message, index in verdict.released:
            self.sm.on_trip_event(limit_id, LEVEL_TRIP, True, True, message, now_s, index=index)
        if verdict.accepted:
            self.sm.on_protection_status(bool(latched), latched, 100.0, 500.0, now_s)


def test_corrupt_latch_file_at_start_event_first():
    w = Wiring()
    w.event(10.0, 'latch_file_corrupt', CORRUPT, now_s=0.5)     # published before the status
    assert w.sm.state != STATE_ERROR                            # pending: history so far
    w.status(10.01, ['latch_file_corrupt'], now_s=0.6)
    assert (w.sm.state, w.sm.reason) == (STATE_ERROR, f'safety trip: {CORRUPT}')


def test_corrupt_latch_file_at_start_status_first():
    w = Wiring()
    w.status(10.01, ['latch_file_corrupt'], now_s=0.5)
    assert w.sm.reason == 'safety trip: latch_file_corrupt'
    w.event(10.0, 'latch_file_corrupt', CORRUPT, now_s=0.6)     # history, lends its message
    assert (w.sm.state, w.sm.reason) == (STATE_ERROR, f'safety trip: {CORRUPT}')


def test_a_trip_reset_before_start_does_not_trip_a_restarted_supervisor():
    w = Wiring()
    w.event(50.0, 'cell_overvoltage', 'cell 3 over-voltage', now_s=0.1, index=3)
    w.status(900.0, [], now_s=0.2)
    w.sm.on_measurement(_measurement(), 0.3)
    assert w.sm.state == STATE_STANDBY


def test_a_live_trip_is_not_undone_by_an_older_status():
    w = Wiring()
    w.status(100.0, [], now_s=0.1)
    w.sm.on_measurement(_measurement(), 0.15)
    w.event(100.2, 'cell_overvoltage', 'cell 3 over-voltage', now_s=0.2, index=3)
    assert w.sm.state == STATE_ERROR
    w.status(100.1, [], now_s=0.25)                             # published before the trip
    assert w.sm.request(STATE_STANDBY, 'operator', 0.3) == (
        False, 'refused: trip latched (cell_overvoltage[3]); reset trips first')
