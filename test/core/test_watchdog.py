"""bms_ros.core.measurement_watchdog: the next check of a measurement-driven node (issue 18)."""
import math

import pytest

from bms_ros.core.measurement_watchdog import (
    MARGIN_S,
    MIN_DELAY_S,
    deadlines_after,
    next_check_delay_s,
)


def test_deadlines_are_the_finite_levels_plus_debounce_ascending():
    assert deadlines_after([0.5, 0.2, 0.35], 0.0) == (0.2, 0.35, 0.5)
    assert deadlines_after([0.2, 0.2, math.inf, math.nan], 0.1) == pytest.approx((0.3,))
    assert deadlines_after([], 0.0) == ()


def test_after_a_measurement_the_first_level_or_the_gap_whichever_is_sooner():
    deadlines = (0.2, 0.35, 0.5)
    assert next_check_delay_s(10.0, 10.0, deadlines, 0.2) == pytest.approx(0.2)
    assert next_check_delay_s(10.0, 10.0, deadlines, 0.15) == pytest.approx(0.15)
    assert next_check_delay_s(10.0, 10.0, (1.0,), 0.2) == pytest.approx(0.2)


def test_without_measurements_every_level_is_checked_at_its_deadline():
    """The sequence of checks after the last measurement at 0 s, gap 0.1 s after the first."""
    deadlines, now, times = (0.2, 0.35, 0.5), 0.0, []
    gap = 0.2
    while now < 0.8:
        now += next_check_delay_s(now, 0.0, deadlines, gap)
        times.append(now)
        gap = 0.1
    for deadline in deadlines:   # each level is looked at within the margin after it
        assert any(deadline <= t <= deadline + MARGIN_S + 1e-9 for t in times), (deadline, times)
    assert max(b - a for a, b in zip(times, times[1:])) <= 0.1 + 1e-9


def test_never_a_busy_timer():
    assert next_check_delay_s(5.0, 0.0, (0.2,), 0.0) == MIN_DELAY_S


def test_a_late_check_waits_once_for_what_arrived():
    """A watchdog firing more than STALL_S after it was due (its node was held) waits
    RECHECK_S once; the re-check, and a check on time, run at once; arming resets it.
    """
    from bms_ros.core.measurement_watchdog import RECHECK_S, STALL_S, StallGuard
    guard = StallGuard()
    assert guard.recheck_s(100.0) is None                 # never armed: check
    guard.armed(100.0, 0.2)
    assert guard.recheck_s(100.2 + 0.5 * STALL_S) is None  # on time (within STALL_S)
    guard.armed(100.0, 0.2)
    late = 100.2 + 2.0 * STALL_S
    assert guard.recheck_s(late) == RECHECK_S
    assert guard.recheck_s(late + RECHECK_S) is None       # the re-check runs
    assert guard.recheck_s(late + 10.0) is None            # ... and only one in a row
    guard.armed(late + 10.0, 0.2)
    assert guard.recheck_s(late + 20.0) == RECHECK_S       # armed again: guarded again
