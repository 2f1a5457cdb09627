"""Re-latch after reset (issue 13): every trip limit of both shipped profiles, real timing.

Nothing is zeroed: each limit keeps its profile's debounce_s, release_s, reset_cooldown_s and
the start-up grace. For every trip limit: condition -> trip after debounce_s -> condition gone
-> trip level released after release_s -> reset refused during the cool-down, granted after ->
condition back at once -> a new trip event after debounce_s (within one evaluation period) and
trip_latched. And a reset inside release_s is refused, so it cannot leave the debounce holding
the trip level (the defect: no event, trip_latched false, DRIVE accepted).
"""
import math

import numpy as np
import pytest

from bms_ros.core.profile import Profile, config_dir
from bms_ros.core.protection import LEVEL_TRIP, Measurement, Protection, load_protection_config

PERIOD_S = 0.1        # the measurement stream (10 Hz)
TICKS_PER_S = 10      # times are tick / 10: exact decimals, no drift
EPS_S = 1e-6
TEMP_DEGC = 25.0


class Pack:
    """A shipped profile's protection configuration, unchanged, and its nominal measurement."""

    def __init__(self, name):
        profile = Profile(f'{config_dir()}/profiles/{name}')
        self.name = name
        self.cfg = load_protection_config(profile.section('protection'), profile.pack)
        self.cells = profile.pack.cells_series
        self.sensors = profile.pack.temperature_sensors
        over, under = self.cfg.limit('cell_overvoltage'), self.cfg.limit('cell_undervoltage')
        self.cell_v = 0.5 * (over.warning + under.warning)    # inside every voltage limit
        self.charging_a = self.cfg.charge_detect_current_a + 5.0

    def measurement(self, cells=None, temps=None, current=0.0, pack_v=None, cell_valid=None):
        cells = np.full(self.cells, self.cell_v) if cells is None else np.asarray(cells, float)
        temps = np.full(self.sensors, TEMP_DEGC) if temps is None else np.asarray(temps, float)
        m = Measurement.simple(cells, temps, current, pack_v)
        if cell_valid is not None:
            m.cell_voltage_valid = np.asarray(cell_valid, dtype=bool)
        return m

    def cell(self, index, volts):
        cells = np.full(self.cells, self.cell_v)
        cells[index] = volts
        return cells

    def temp(self, index, degc):
        temps = np.full(self.sensors, TEMP_DEGC)
        temps[index] = degc
        return temps

    def scenario(self, limit_id):
        """(index, measurement with the condition (None: no measurement at all), onset_s[, good]).

        ``onset_s``: from the first bad tick to when the trip condition holds (stale: its age
        reaches trip_s); ``good``: the measurement without it (default: nominal). Side
        conditions on other limits last shorter than their debounce, or clear without a cool-down.
        """
        lim = self.cfg.limit(limit_id)
        nominal_v = self.cells * self.cell_v
        m = self.measurement
        if limit_id == 'cell_overvoltage':
            return 3, m(cells=self.cell(3, lim.trip + 0.01)), 0.0
        if limit_id == 'cell_undervoltage':
            return 5, m(cells=self.cell(5, lim.trip - 0.01)), 0.0
        if limit_id == 'pack_overvoltage':
            return -1, m(pack_v=lim.trip + lim.hysteresis), 0.0
        if limit_id == 'pack_undervoltage':
            return -1, m(pack_v=lim.trip - lim.hysteresis), 0.0
        if limit_id == 'charge_overcurrent':
            return -1, m(current=lim.trip + 10.0), 0.0           # the instantaneous level
        if limit_id == 'discharge_overcurrent':
            return -1, m(current=-(lim.trip + 10.0)), 0.0
        if limit_id == 'charge_overtemperature':
            return 2, m(temps=self.temp(2, lim.trip + 1.0), current=self.charging_a), 0.0
        if limit_id == 'charge_undertemperature':
            return 1, m(temps=self.temp(1, lim.trip - 1.0), current=self.charging_a), 0.0
        if limit_id == 'discharge_overtemperature':
            return 7, m(temps=self.temp(7, lim.trip + 1.0)), 0.0
        if limit_id == 'discharge_undertemperature':
            return 0, m(temps=self.temp(0, lim.trip - 1.0)), 0.0
        if limit_id == 'cell_voltage_spread':
            half = 0.5 * (lim.trip + 0.05)
            return -1, m(cells=np.linspace(self.cell_v - half, self.cell_v + half,
                                           self.cells)), 0.0
        if limit_id == 'temperature_spread':      # from 17 to 21 degC: a small rise rate
            return (-1, m(temps=self.temp(4, TEMP_DEGC - lim.trip - 1.0)), 0.0,
                    m(temps=self.temp(4, TEMP_DEGC - lim.trip + lim.hysteresis + 2.0)))
        if limit_id == 'temperature_rise_rate':   # every sensor +1.5 x trip x window at once
            step = 1.5 * lim.trip * self.cfg.temperature_rate_window_s
            return 6, m(temps=np.full(self.sensors, TEMP_DEGC + step)), 0.0
        if limit_id == 'stale_measurement':       # the last measurement was one tick earlier
            return -1, None, lim.trip - PERIOD_S
        if limit_id == 'pack_voltage_mismatch':
            return -1, m(pack_v=nominal_v + lim.trip + lim.hysteresis), 0.0
        if limit_id == 'cell_voltage_invalid':
            valid = np.ones(self.cells, bool)
            valid[4] = False
            return 4, m(cells=self.cell(4, math.nan), cell_valid=valid), 0.0
        if limit_id == 'cell_voltage_out_of_range':
            return 9, m(cells=self.cell(9, lim.maximum + 0.5)), 0.0
        if limit_id == 'temperature_invalid':
            return 3, m(temps=self.temp(3, math.nan)), 0.0
        if limit_id == 'temperature_out_of_range':
            # below the range, not above: no 60 s over-temperature cool-down on the side
            return 3, m(temps=self.temp(3, lim.minimum - 10.0)), 0.0
        if limit_id == 'current_invalid':
            return -1, m(current=math.nan), 0.0
        raise AssertionError(f'no scenario for trip limit {limit_id}: add one')


PACKS = {name: Pack(name) for name in ('lfp_16s.yaml', 'nmc_96s.yaml')}


def trip_limits(pack):
    return [lim.limit_id for lim in pack.cfg.limits if LEVEL_TRIP in lim.levels]


CASES = [(name, lid) for name, pack in PACKS.items() for lid in trip_limits(pack)]
RELEASE_CASES = [(name, lid) for name, lid in CASES
                 if PACKS[name].cfg.limit(lid).release_s > 0.0]


class Run:
    """A Protection driven tick by tick (0.1 s) on the profile's real configuration."""

    def __init__(self, pack, limit_id):
        self.pack = pack
        self.limit = pack.cfg.limit(limit_id)
        self.index, self.bad, self.onset_s, *good = pack.scenario(limit_id)
        self.good = good[0] if good else pack.measurement()
        self.prot = Protection(pack.cfg, pack.cells, pack.sensors)
        self.tick = 0
        self.key = (limit_id, self.index)
        # past the start-up grace and a full rise-rate window, in 1 s steps
        self.hold(self.good, pack.cfg.startup_grace_s + pack.cfg.temperature_rate_window_s,
                  step_ticks=TICKS_PER_S)

    @property
    def t(self):
        return self.tick / TICKS_PER_S

    def step(self, m, step_ticks=1):
        self.tick += step_ticks
        if m is None:
            return self.prot.check_timeout(self.t)
        return self.prot.evaluate(m, self.t)

    def hold(self, m, duration_s, step_ticks=1):
        end = self.tick + round(duration_s * TICKS_PER_S)
        while self.tick + step_ticks <= end:
            self.step(m, step_ticks)

    def my_trips(self, events):
        return [e for e in events if (e.limit_id, e.index) == self.key and e.level == LEVEL_TRIP
                and e.active]

    def drive_until_trip(self):
        """Apply the condition from the next tick; return (onset time, the trip event)."""
        start = self.t + PERIOD_S
        bound = self.onset_s + self.limit.debounce_s + 5 * PERIOD_S
        while self.t < start + bound:
            trips = self.my_trips(self.step(self.bad))
            if trips:
                return start + self.onset_s, trips[0]
        raise AssertionError(f'{self.key} did not trip within {bound:.1f} s')

    def clear_until_released(self):
        """Good measurements from the next tick until the trip is gone; return (start, gone)."""
        start = self.t + PERIOD_S
        trip = self.prot.latch.trips[self.key]
        while self.t < start + self.limit.release_s + 5 * PERIOD_S:
            self.step(self.good)
            if trip.clear_since_s is not None:
                return start, trip.clear_since_s
        raise AssertionError(f'{self.key} never released: {self.prot.status(self.t).active}')

    def reset_when_possible(self, gone_s):
        """Wait out the cool-down (refused just before); reset once everything is resettable.

        Returns the time the reset cleared this limit's trip.
        """
        ready_s = gone_s + self.limit.reset_cooldown_s
        self.hold(self.good, max(ready_s - 2 * PERIOD_S - self.t, 0.0), step_ticks=TICKS_PER_S)
        while self.t < ready_s - 2 * PERIOD_S:
            self.step(self.good)
        if self.limit.reset_cooldown_s > 0.0:
            result = self.prot.reset(self.t, 'test', 'before the cool-down ends')
            assert self.key in self.prot.latch, result.message
            assert f'{self.name} (cool-down running: ' in result.message
        cleared_s = None
        while self.t < ready_s + 30.0:      # side trips (other limits) may need longer
            self.step(self.good)
            result = self.prot.reset(self.t, 'test', 'cooled down')
            if cleared_s is None and self.key not in self.prot.latch:
                cleared_s = self.t
            if result.success:
                assert cleared_s is not None
                return cleared_s
        raise AssertionError(result.message)

    @property
    def name(self):
        return self.key[0] if self.index < 0 else f'{self.key[0]}[{self.index}]'

    def assert_trips_after_debounce(self):
        onset, event = self.drive_until_trip()
        delay = self.t - onset
        assert self.limit.debounce_s - EPS_S <= delay <= self.limit.debounce_s + PERIOD_S + EPS_S
        assert event.latched and event.level == LEVEL_TRIP
        status = self.prot.status(self.t)
        assert status.trip_latched and self.key in self.prot.latch
        assert (status.charge_current_limit_a, status.discharge_current_limit_a) == (0.0, 0.0)
        return event


@pytest.mark.parametrize('profile, limit_id', CASES, ids=[f'{p[:3]}-{lid}' for p, lid in CASES])
def test_a_returning_condition_trips_again_after_reset(profile, limit_id):
    run = Run(PACKS[profile], limit_id)
    run.assert_trips_after_debounce()
    clear_s, gone_s = run.clear_until_released()
    # gone only once the trip level is released: release_s inside the hysteresis band
    assert run.limit.release_s - EPS_S <= gone_s - clear_s <= \
        run.limit.release_s + PERIOD_S + EPS_S
    cleared_s = run.reset_when_possible(gone_s)
    assert cleared_s >= gone_s + run.limit.reset_cooldown_s - EPS_S
    status = run.prot.status(run.t)
    assert not status.trip_latched and status.max_level < LEVEL_TRIP
    # the condition comes back at the next tick: a new trip event after exactly its debounce
    event = run.assert_trips_after_debounce()
    assert event.message == run.prot.latch.trips[run.key].message
    assert not event.message.endswith('reset required)')


@pytest.mark.parametrize('profile, limit_id', RELEASE_CASES,
                         ids=[f'{p[:3]}-{lid}' for p, lid in RELEASE_CASES])
def test_a_reset_inside_release_s_is_refused_and_the_trip_stays_latched(profile, limit_id):
    run = Run(PACKS[profile], limit_id)
    run.assert_trips_after_debounce()
    clear_s = run.t + PERIOD_S
    run.hold(run.good, 0.5 * run.limit.release_s)        # inside the hysteresis band, not long
    assert run.t < clear_s + run.limit.release_s
    result = run.prot.reset(run.t, 'test', 'inside release_s')
    assert f'{run.name} (release running: ' in result.message
    assert limit_id in result.still_latched and run.key in run.prot.latch
    assert run.prot.status(run.t).trip_latched
    # the condition returns inside release_s: still the same latched trip, reset refused
    latched = run.prot.latch.trips[run.key]
    for _ in range(round((run.onset_s + run.limit.debounce_s) * TICKS_PER_S) + 3):
        assert run.my_trips(run.step(run.bad)) == []
    assert run.prot.latch.trips[run.key] is latched and run.prot.status(run.t).trip_latched
    assert f'{run.name} (condition still present: ' in \
        run.prot.reset(run.t, 'test', 'still bad').message
    # gone for a full release_s from the last bad tick, then the cool-down, then the reset
    clear_s, gone_s = run.clear_until_released()
    assert gone_s - clear_s >= run.limit.release_s - EPS_S
    run.reset_when_possible(gone_s)
    assert not run.prot.status(run.t).trip_latched
    run.assert_trips_after_debounce()


def test_every_trip_limit_of_both_profiles_has_a_scenario():
    for pack in PACKS.values():
        for limit_id in trip_limits(pack):
            pack.scenario(limit_id)
    assert len(CASES) == 40 and len(RELEASE_CASES) == 24
