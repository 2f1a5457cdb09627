"""LevelMonitor and threshold_masks against the straightforward reference they replaced.

The monitor skips its array work when it is quiet (nothing raised, no timer running) and the
update violates nothing, and threshold_masks broadcasts only what needs it (issue 18: this was
most of the protection node's CPU at rest). Both must give exactly what the plain version gives,
on random sequences with unknown values, clock steps back, holds and forced clears.
"""
import numpy as np
import pytest

from bms_ros.core.protection.debounce import LevelMonitor, threshold_masks


class ReferenceMonitor:
    """The monitor without the quiet shortcut (the code before issue 18's change)."""

    def __init__(self, n_levels, n_channels, debounce_s, release_s):
        self.debounce_s, self.release_s = debounce_s, release_s
        shape = (n_levels, n_channels)
        self.active = np.zeros(shape, dtype=bool)
        self.raise_since = np.full(shape, np.nan)
        self.clear_since = np.full(shape, np.nan)

    def update(self, violated, cleared, known, now_s):
        violated = np.asarray(violated, dtype=bool)
        cleared = np.asarray(cleared, dtype=bool)
        known = np.broadcast_to(np.asarray(known, dtype=bool), violated.shape)
        active = self.active
        self.raise_since[self.raise_since > now_s] = now_s
        self.clear_since[self.clear_since > now_s] = now_s
        pending = ~active & violated
        start = np.where(np.isnan(self.raise_since), now_s, self.raise_since)
        self.raise_since = np.where(pending, start,
                                    np.where(~active & ~known, self.raise_since, np.nan))
        raised = pending & (now_s - self.raise_since >= self.debounce_s)
        pending = active & cleared
        start = np.where(np.isnan(self.clear_since), now_s, self.clear_since)
        self.clear_since = np.where(pending, start,
                                    np.where(active & ~known, self.clear_since, np.nan))
        released = pending & (now_s - self.clear_since >= self.release_s)
        self.active = (active | raised) & ~released
        self.raise_since[raised] = np.nan
        self.clear_since[released] = np.nan
        return raised, released

    def hold(self, level, mask):
        mask = np.asarray(mask, dtype=bool)
        self.active[level] |= mask
        self.raise_since[level][mask] = np.nan
        self.clear_since[level][mask] = np.nan

    def force_clear(self, level, channel):
        self.active[level, channel] = False
        self.raise_since[level, channel] = np.nan
        self.clear_since[level, channel] = np.nan


def reference_masks(values, thresholds, hysteresis, high, gate=None):
    values = np.atleast_1d(np.asarray(values, dtype=float))[None, :]
    thresholds = np.asarray(thresholds, dtype=float)[:, None]
    known = np.isfinite(values)
    with np.errstate(invalid='ignore'):
        violated = values >= thresholds if high else values <= thresholds
        cleared = (values < thresholds - hysteresis) if high else (values > thresholds + hysteresis)
    violated, cleared = violated & known, cleared & known
    if gate is not None:
        gate = np.broadcast_to(np.asarray(gate, dtype=bool), values.shape)
        violated, cleared, known = violated & gate, cleared | ~gate, known | ~gate
    shape = np.broadcast_shapes(violated.shape, thresholds.shape)
    return tuple(np.broadcast_to(m, shape) for m in (violated, cleared, known))


@pytest.mark.parametrize('seed', range(12))
def test_the_monitor_matches_the_reference_on_random_sequences(seed):
    rng = np.random.default_rng(seed)
    levels, channels = 3, int(rng.integers(1, 17))
    debounce_s, release_s = float(rng.choice([0.0, 0.2, 1.0])), float(rng.choice([0.0, 0.5, 2.0]))
    monitor = LevelMonitor(levels, channels, debounce_s, release_s)
    reference = ReferenceMonitor(levels, channels, debounce_s, release_s)
    now_s = 0.0
    # long quiet stretches (the shortcut) broken by bursts of violations, unknowns and clearings
    p_violation = float(rng.choice([0.0, 0.02, 0.3]))
    for step in range(600):
        now_s += float(rng.choice([0.1, 0.1, 0.1, 0.0, -0.3])) if step % 97 else -5.0
        violated = rng.random((levels, channels)) < p_violation
        cleared = ~violated & (rng.random((levels, channels)) < 0.8)
        known = rng.random(channels) < 0.9 if step % 3 else True
        got = monitor.update(violated, cleared, known, now_s)
        want = reference.update(violated, cleared, known, now_s)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(monitor.active, reference.active)
        if step % 53 == 7:
            mask = rng.random(channels) < 0.3
            monitor.hold(2, mask)
            reference.hold(2, mask)
        if step % 71 == 11:
            channel = int(rng.integers(channels))
            monitor.force_clear(2, channel)
            reference.force_clear(2, channel)
        for level in range(levels):
            for channel in range(channels):
                assert (np.isnan(monitor.release_started_s(level, channel))
                        == np.isnan(reference.clear_since[level, channel]))


def test_a_quiet_monitor_still_raises_after_its_debounce_and_returns_fresh_masks():
    monitor = LevelMonitor(1, 2, debounce_s=0.3, release_s=0.0)
    quiet = monitor.update(np.zeros((1, 2), bool), np.ones((1, 2), bool), True, 0.0)
    assert not quiet[0].any() and not quiet[1].any()
    violated = np.array([[False, True]])
    for now_s in (0.1, 0.2, 0.3):
        raised, _ = monitor.update(violated, ~violated, True, now_s)
        assert raised[0, 1] == (now_s >= 0.4 - 1e-9)
    raised, _ = monitor.update(violated, ~violated, True, 0.4)
    assert raised.tolist() == [[False, True]] and monitor.active.tolist() == [[False, True]]


@pytest.mark.parametrize('seed', range(8))
def test_threshold_masks_match_the_reference(seed):
    rng = np.random.default_rng(100 + seed)
    channels = int(rng.integers(1, 17))
    values = 3.3 + 0.5 * rng.standard_normal(channels)
    values[rng.random(channels) < 0.2] = np.nan
    thresholds = np.sort(3.3 + 0.3 * rng.random(3))
    for high in (True, False):
        for gate in (None, True, False, rng.random(channels) < 0.5):
            got = threshold_masks(values, thresholds, 0.05, high, gate)
            want = reference_masks(values, thresholds, 0.05, high, gate)
            for g, w in zip(got, want):
                assert g.shape == w.shape == (3, channels)
                np.testing.assert_array_equal(g, w)


# ------------------------------------------------------------------ the limits' quiet shortcut

def _comparable(events):
    """Events as dicts with NaN made comparable (NaN != NaN)."""
    return [{key: 'nan' if isinstance(value, float) and np.isnan(value) else value
             for key, value in vars(e).items()} for e in events]


def _random_measurement(rng, k):
    """Mostly nominal; now and then a cell, sensor or the current beyond a level, or NaN."""
    from test.core.test_protection_checks import measurement
    cells = 3.3 + 0.002 * rng.standard_normal(16)
    temps = 25.0 + 0.2 * rng.standard_normal(8)
    current = float(rng.choice([0.0, -20.0, 15.0]))
    burst = (k // 40) % 4          # stretches of 40 measurements: quiet, then trouble
    if burst and rng.random() < 0.5:
        kind = int(rng.integers(5))
        if kind == 0:
            cells[int(rng.integers(16))] = float(rng.uniform(3.5, 3.8))     # over-voltage
        elif kind == 1:
            cells[int(rng.integers(16))] = float(rng.uniform(2.3, 2.9))     # under-voltage
        elif kind == 2:
            temps[int(rng.integers(8))] = float(rng.uniform(40.0, 60.0))    # hot
        elif kind == 3:
            cells[int(rng.integers(16))] = np.nan
        else:
            current = float(rng.uniform(-600.0, 150.0))
    return measurement(cells=cells, temps=temps, current=current)


@pytest.mark.parametrize('seed', range(6))
def test_protection_with_the_quiet_shortcut_matches_it_without(seed, tmp_path):
    from bms_ros.core.protection import Protection
    from test.core.test_protection_checks import config
    rng = np.random.default_rng(200 + seed)
    cfg = config(debounce_zero=bool(seed % 2))
    fast, plain = Protection(cfg, 16, 8), Protection(cfg, 16, 8)
    for state in plain.states.values():
        state._quiet_update = lambda signal: False     # the full update every time
    now_s = 0.0
    shortcuts = 0
    for k in range(800):
        now_s += 0.1
        m = _random_measurement(rng, k)
        before = sum(s.monitor.is_quiet for s in fast.states.values())
        got, want = fast.evaluate(m, now_s), plain.evaluate(m, now_s)
        shortcuts += before
        assert _comparable(got) == _comparable(want), k
        got_status, want_status = fast.status(now_s), plain.status(now_s)
        assert _comparable(got_status.active) == _comparable(want_status.active), k
        assert (got_status.max_level, got_status.trip_latched,
                got_status.charge_current_limit_a, got_status.discharge_current_limit_a) == (
            want_status.max_level, want_status.trip_latched,
            want_status.charge_current_limit_a, want_status.discharge_current_limit_a), k
        for limit_id, state in fast.states.items():
            np.testing.assert_array_equal(state.values, plain.states[limit_id].values)
            np.testing.assert_array_equal(state.present, plain.states[limit_id].present)
        if k % 150 == 149:              # a reset now and then (granted or refused alike)
            assert (fast.reset(now_s, 'test', 'x').message
                    == plain.reset(now_s, 'test', 'x').message)
    assert shortcuts > 1000       # the shortcut was taken (quiet limits at the start of updates)
