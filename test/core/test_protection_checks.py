"""Protection checks: every limit, debounce, hysteresis, time-current, derating, bad input."""
import math
from dataclasses import replace

import numpy as np
import pytest

from bms_ros.core.profile import Profile, config_dir
from bms_ros.core.protection import (
    LEVEL_ALARM,
    LEVEL_OK,
    LEVEL_TRIP,
    LEVEL_WARNING,
    Measurement,
    Protection,
    load_protection_config,
)
from bms_ros.core.protection.limits import FlagLimit

PROFILE = Profile(f'{config_dir()}/profiles/lfp_16s.yaml')   # 16 cells, 8 sensors
BASE = load_protection_config(PROFILE.section('protection'), PROFILE.pack)
CELL_V = 3.3
TEMP = 25.0


def config(debounce_zero=True, **operating):
    """The LFP configuration; by default every debounce and release 0 and no start-up grace."""
    cfg = replace(BASE, **{'startup_grace_s': 0.0, **operating})
    if debounce_zero:
        cfg = replace(cfg, limits=tuple(replace(lim, debounce_s=0.0, release_s=0.0)
                                        for lim in cfg.limits))
    return cfg


def protection(cfg=None, now_s=0.0):
    return Protection(cfg or config(), 16, 8, now_s=now_s)


def measurement(cells=None, temps=None, current=0.0, pack_v=None, **fields):
    cells = np.full(16, CELL_V) if cells is None else np.asarray(cells, dtype=float)
    temps = np.full(8, TEMP) if temps is None else np.asarray(temps, dtype=float)
    return Measurement.simple(cells, temps, current, pack_v, **fields)


def with_cell(index, volts):
    cells = np.full(16, CELL_V)
    cells[index] = volts
    return cells


def with_temp(index, degc, base=TEMP):
    temps = np.full(8, base)
    temps[index] = degc
    return temps


def of(events, limit_id, level=None):
    return [e for e in events if e.limit_id == limit_id and (level is None or e.level == level)]


def test_nominal_measurement_raises_nothing():
    prot = protection()
    for k in range(30):
        assert prot.evaluate(measurement(current=-20.0), 0.1 * k) == []
    status = prot.status(3.0)
    assert (status.max_level, status.trip_latched, status.active) == (LEVEL_OK, False, [])
    assert (status.charge_current_limit_a, status.discharge_current_limit_a) == (100.0, 500.0)


# (limit_id, measurement keyword arguments, index, value, threshold, message) of each trip
TRIPS = [
    ('cell_overvoltage', dict(cells=with_cell(3, 3.76)), 3, 3.76, 3.75,
     'cell 3 over-voltage 3.760 V >= trip 3.750 V'),
    ('cell_undervoltage', dict(cells=with_cell(5, 1.95)), 5, 1.95, 2.0,
     'cell 5 under-voltage 1.950 V <= trip 2.000 V'),
    ('pack_overvoltage', dict(cells=np.full(16, 3.76), pack_v=60.16), -1, 60.16, 60.0,
     'pack over-voltage 60.160 V >= trip 60.000 V'),
    ('pack_undervoltage', dict(cells=np.full(16, 1.99), pack_v=31.84), -1, 31.84, 32.0,
     'pack under-voltage 31.840 V <= trip 32.000 V'),
    ('charge_overcurrent', dict(current=310.0), -1, 310.0, 300.0,
     'pack charge over-current 310.0 A >= trip 300.0 A'),
    ('discharge_overcurrent', dict(current=-1600.0), -1, 1600.0, 1500.0,
     'pack discharge over-current 1600.0 A >= trip 1500.0 A'),
    ('charge_overtemperature', dict(temps=with_temp(2, 46.0), current=5.0), 2, 46.0, 45.0,
     'temperature sensor 2 over-temperature while charging 46.0 degC >= trip 45.0 degC'),
    ('charge_undertemperature', dict(temps=with_temp(1, -1.0), current=5.0), 1, -1.0, 0.0,
     'temperature sensor 1 under-temperature while charging -1.0 degC <= trip 0.0 degC'),
    ('discharge_overtemperature', dict(temps=with_temp(7, 56.0)), 7, 56.0, 55.0,
     'temperature sensor 7 over-temperature 56.0 degC >= trip 55.0 degC'),
    ('discharge_undertemperature', dict(temps=with_temp(0, -31.0)), 0, -31.0, -30.0,
     'temperature sensor 0 under-temperature -31.0 degC <= trip -30.0 degC'),
    ('cell_voltage_spread', dict(cells=np.linspace(3.0, 3.55, 16)), -1, 0.55, 0.5,
     'pack cell voltage spread 0.550 V >= trip 0.500 V'),
    ('temperature_spread', dict(temps=with_temp(4, 41.0, base=20.0)), -1, 21.0, 20.0,
     'pack temperature spread 21.0 degC >= trip 20.0 degC'),
    ('pack_voltage_mismatch', dict(pack_v=16 * CELL_V + 2.5), -1, 2.5, 2.0,
     'pack sum of cells differs from pack voltage by 2.500 V >= trip 2.000 V'),
    ('cell_voltage_out_of_range', dict(cells=with_cell(9, 5.5)), 9, 5.5, 5.0,
     'cell 9 voltage outside the plausible range: 5.500 V not in [0.500, 5.000] V'),
    ('temperature_out_of_range', dict(temps=with_temp(3, 130.0)), 3, 130.0, 120.0,
     'temperature sensor 3 temperature outside the plausible range: 130.0 degC not in '
     '[-40.0, 120.0] degC'),
    ('current_invalid', dict(current=math.nan), -1, math.nan, math.nan, 'pack current invalid'),
]


@pytest.mark.parametrize('limit_id, kwargs, index, value, threshold, message', TRIPS,
                         ids=[t[0] for t in TRIPS])
def test_every_limit_trips_latches_and_reports(limit_id, kwargs, index, value, threshold,
                                               message):
    prot = protection()
    assert prot.evaluate(measurement(), 0.0) == []
    events = prot.evaluate(measurement(**kwargs), 0.1)
    trip, = of(events, limit_id, LEVEL_TRIP)
    assert (trip.index, trip.threshold, trip.unit) == (index, pytest.approx(threshold, nan_ok=True),
                                                      prot.config.limit(limit_id).unit)
    assert trip.value == pytest.approx(value, abs=1e-4, nan_ok=True)
    assert (trip.active, trip.latched, trip.message) == (True, True, message)
    assert events[0].level == LEVEL_TRIP            # trips come first
    status = prot.status(0.1)
    assert status.trip_latched and status.max_level == LEVEL_TRIP
    assert (status.charge_current_limit_a, status.discharge_current_limit_a) == (0.0, 0.0)
    # the trip stays latched when the condition is gone, and no clear event is sent
    later = prot.evaluate(measurement(), 0.2) + prot.evaluate(measurement(), 5.0)
    assert of(later, limit_id, LEVEL_TRIP) == []
    assert (limit_id, index) in prot.latch


@pytest.mark.parametrize('limit_id, kwargs, level, message', [
    ('cell_overvoltage', dict(cells=with_cell(0, 3.63)), LEVEL_WARNING,
     'cell 0 over-voltage 3.630 V >= warning 3.620 V'),
    ('cell_overvoltage', dict(cells=with_cell(0, 3.66)), LEVEL_ALARM,
     'cell 0 over-voltage 3.660 V >= alarm 3.650 V'),
    ('discharge_overcurrent', dict(current=-460.0), LEVEL_WARNING,
     'pack discharge over-current 460.0 A >= warning 450.0 A'),
    ('temperature_spread', dict(temps=with_temp(4, 29.0, base=20.0)), LEVEL_ALARM,
     'pack temperature spread 9.0 degC >= warning 8.0 degC'),
    ('pack_voltage_invalid', dict(pack_v=math.nan), LEVEL_ALARM, 'pack pack voltage invalid'),
])
def test_warning_and_alarm_levels_do_not_latch(limit_id, kwargs, level, message):
    prot = protection()
    events = prot.evaluate(measurement(**kwargs), 0.0)
    highest = max(of(events, limit_id), key=lambda e: e.level)
    if limit_id == 'temperature_spread':  # 9 degC: warning only
        assert highest.level == LEVEL_WARNING
    else:
        assert highest.level == level
    assert highest.message == message and not highest.latched
    assert not prot.status(0.0).trip_latched
    cleared = prot.evaluate(measurement(), 0.1)
    assert {e.active for e in of(cleared, limit_id)} == {False}
    assert prot.status(0.1).active == []


def test_charge_temperature_limits_apply_only_while_charging():
    prot = protection()
    hot = with_temp(2, 46.0)
    events = prot.evaluate(measurement(temps=hot, current=-50.0), 0.0)   # discharging: 46 < 55
    assert of(events, 'charge_overtemperature') == []
    events = prot.evaluate(measurement(temps=hot, current=0.4), 0.1)    # below 0.5 A: at rest
    assert of(events, 'charge_overtemperature') == []
    events = prot.evaluate(measurement(temps=hot, current=0.6), 0.2)    # charging
    assert of(events, 'charge_overtemperature', LEVEL_TRIP)[0].index == 2


def test_unknown_current_counts_as_charging_for_temperature_limits():
    prot = protection()
    events = prot.evaluate(measurement(temps=with_temp(2, 46.0), current=math.nan), 0.0)
    assert of(events, 'charge_overtemperature', LEVEL_TRIP)


def test_temperature_rise_rate_over_the_window():
    prot = protection()
    window = prot.config.temperature_rate_window_s      # 10 s
    for k in range(101):                                # 10 s of 1.1 degC/s on sensor 6
        t = 0.1 * k
        events = prot.evaluate(measurement(temps=with_temp(6, TEMP + 1.1 * t)), t)
        if k < 50:   # less than half a window of history: no rate yet
            assert of(events, 'temperature_rise_rate') == []
    trip, = of(prot.status(10.0).active, 'temperature_rise_rate')
    assert trip.level == LEVEL_TRIP and trip.index == 6
    assert trip.value == pytest.approx(1.1, rel=1e-6)
    assert trip.message.startswith('temperature sensor 6 temperature rise rate 1.10 degC/s >= '
                                   'trip 1.00 degC/s')
    assert window == 10.0


def test_stale_measurement_by_timeout_and_by_group_flag():
    # the LFP profile: warning 0.2 s, alarm 0.35 s, trip 0.5 s
    prot = protection()
    prot.evaluate(measurement(), 0.0)
    assert prot.check_timeout(0.15) == []
    warning, = prot.check_timeout(0.2)
    assert warning.message == 'measurement stale 0.20 s >= warning 0.20 s'
    events = prot.check_timeout(0.5)
    trip, = of(events, 'stale_measurement', LEVEL_TRIP)
    assert (trip.index, trip.message) == (-1, 'measurement stale 0.50 s >= trip 0.50 s')
    # a group the driver flags stale ages from its last fresh value (index 0 = cell voltages)
    prot = protection()
    prot.evaluate(measurement(), 0.0)
    for k in range(1, 5):
        events = prot.evaluate(measurement(cell_voltages_stale=True), 0.1 * k)
        assert of(events, 'stale_measurement', LEVEL_TRIP) == [], k
    events = prot.evaluate(measurement(cell_voltages_stale=True), 0.5)
    trip, = of(events, 'stale_measurement', LEVEL_TRIP)
    assert (trip.index, trip.message) == (0, 'cell voltages stale 0.50 s >= trip 0.50 s')


def test_nothing_is_stale_before_the_first_measurement():
    prot = protection()
    assert prot.check_timeout(100.0) == []


def test_invalid_values_are_held_until_the_startup_grace_is_over():
    cfg = config(startup_grace_s=10.0)
    prot = protection(cfg)
    bad = measurement()
    bad.cell_voltage_valid[4] = False
    bad.temperature_valid[1] = False
    for k in range(100):
        assert prot.evaluate(bad, 0.1 * k) == [], k
    events = prot.evaluate(bad, 10.0)
    assert [(e.limit_id, e.index, e.message) for e in events] == [
        ('cell_voltage_invalid', 4, 'cell 4 voltage invalid (open wire or not received)'),
        ('temperature_invalid', 1, 'temperature sensor 1 temperature invalid (open or not '
                                   'received)')]
    # groups that were never fresh are not stale during the grace, and age after it
    prot = protection(cfg)
    for k in range(100):
        assert prot.evaluate(measurement(current_stale=True), 0.1 * k) == []
    events = prot.evaluate(measurement(current_stale=True), 10.0)
    assert of(events, 'stale_measurement', LEVEL_TRIP)[0].message == \
        'current stale 10.00 s >= trip 0.50 s'


def test_a_group_that_stops_during_the_startup_grace_trips_at_once():
    """Fresh once, then silent: the grace does not hide it (the contactors may be closed)."""
    prot = protection(config(startup_grace_s=10.0))
    for k in range(10):                               # 1 s of complete measurements
        assert prot.evaluate(measurement(), 0.1 * k) == []
    # the current group stops at 0.9 s: its age counts at once, 7 s inside the grace
    events = []
    for k in range(10, 20):
        events += prot.evaluate(measurement(current_stale=True), 0.1 * k)
    trips = of(events, 'stale_measurement', LEVEL_TRIP)
    assert [(t.message, round(t.stamp_s, 6)) for t in trips] == [
        ('current stale 0.50 s >= trip 0.50 s', 1.4)]


def test_open_wire_cell_is_not_checked_against_voltage_limits():
    prot = protection()
    cells = with_cell(4, 0.0)          # an open wire reads near 0 V and is flagged invalid
    bad = measurement(cells=cells)
    bad.cell_voltage_valid[4] = False
    events = prot.evaluate(bad, 0.0)
    assert [e.limit_id for e in events] == ['cell_voltage_invalid']


# ---------------------------------------------------------------- debounce and hysteresis

def test_debounce_needs_a_continuous_violation():
    prot = protection(config(debounce_zero=False))          # cell_overvoltage: 0.2 s
    over = measurement(cells=with_cell(3, 3.8))
    assert of(prot.evaluate(over, 0.0), 'cell_overvoltage') == []
    assert of(prot.evaluate(over, 0.1), 'cell_overvoltage') == []
    assert of(prot.evaluate(measurement(), 0.15), 'cell_overvoltage') == []   # interrupted
    assert of(prot.evaluate(over, 0.2), 'cell_overvoltage') == []
    assert of(prot.evaluate(over, 0.3), 'cell_overvoltage') == []
    events = of(prot.evaluate(over, 0.4), 'cell_overvoltage')
    assert [e.level for e in events] == [LEVEL_TRIP, LEVEL_ALARM, LEVEL_WARNING]


def test_unknown_value_keeps_the_debounce_timer_running():
    prot = protection(config(debounce_zero=False))
    over = measurement(cells=with_cell(3, 3.8))
    unknown = measurement(cells=with_cell(3, math.nan))
    prot.evaluate(over, 0.0)
    prot.evaluate(unknown, 0.1)
    assert of(prot.evaluate(over, 0.2), 'cell_overvoltage', LEVEL_TRIP)


def test_hysteresis_and_release_time_of_a_high_limit():
    cfg = config()
    cfg = cfg.replace_limit(replace(cfg.limit('cell_overvoltage'), release_s=1.0))
    prot = protection(cfg)
    raised = prot.evaluate(measurement(cells=with_cell(0, 3.63)), 0.0)
    assert [e.level for e in of(raised, 'cell_overvoltage')] == [LEVEL_WARNING]
    # 3.58 V is below the warning but inside the 0.05 V hysteresis: stays raised
    for k in range(1, 30):
        assert prot.evaluate(measurement(cells=with_cell(0, 3.58)), 0.1 * k) == []
    # below 3.57 V: cleared after the 1 s release time
    assert prot.evaluate(measurement(cells=with_cell(0, 3.56)), 3.0) == []
    assert prot.evaluate(measurement(cells=with_cell(0, 3.56)), 3.5) == []
    cleared, = prot.evaluate(measurement(cells=with_cell(0, 3.56)), 4.0)
    assert (cleared.active, cleared.level, cleared.message) == (
        False, LEVEL_WARNING, 'cell 0 over-voltage warning cleared: 3.560 V < 3.570 V')


def test_hysteresis_of_a_low_limit():
    prot = protection()
    prot.evaluate(measurement(cells=with_cell(2, 2.45)), 0.0)      # warning at 2.5 V
    assert prot.evaluate(measurement(cells=with_cell(2, 2.55)), 0.1) == []   # < 2.6 V
    cleared, = prot.evaluate(measurement(cells=with_cell(2, 2.61)), 0.2)
    assert cleared.message == 'cell 2 under-voltage warning cleared: 2.610 V > 2.600 V'


def test_unknown_value_keeps_a_raised_level():
    prot = protection()
    prot.evaluate(measurement(cells=with_cell(0, 3.63)), 0.0)
    assert of(prot.evaluate(measurement(cells=with_cell(0, math.nan)), 0.1),
              'cell_overvoltage') == []
    assert of(prot.status(0.1).active, 'cell_overvoltage')[0].level == LEVEL_WARNING


# ---------------------------------------------------------------- time-current

def test_inverse_time_over_current_trips_after_the_curve_time():
    prot = protection()
    limit = prot.config.limit('discharge_overcurrent')
    allowed = float(limit.allowed_time_s(800.0))             # ~27 s at 800 A
    first = prot.evaluate(measurement(current=-800.0), 0.0)
    assert [e.level for e in of(first, 'discharge_overcurrent')] == [LEVEL_ALARM, LEVEL_WARNING]
    t, trip = 0.0, None
    while trip is None and t < 100.0:
        t = round(t + 0.1, 6)
        trip = next(iter(of(prot.evaluate(measurement(current=-800.0), t),
                            'discharge_overcurrent', LEVEL_TRIP)), None)
    assert t == pytest.approx(allowed, abs=0.11)
    assert trip.message == (f'pack discharge over-current 800.0 A beyond the time-current curve '
                            f'({allowed:.1f} s allowed at this current)')
    assert trip.threshold == 1500.0


def test_current_between_rating_and_curve_never_trips_and_the_budget_decays():
    prot = protection()
    for k in range(2000):                                    # 200 s at 520 A (< 550 A curve)
        assert not of(prot.evaluate(measurement(current=-520.0), 0.1 * k),
                      'discharge_overcurrent', LEVEL_TRIP)
    # half the 60 s budget at 550 A, then 60 s of rest, then the full budget is available again
    prot = protection()
    t = 0.0
    for _ in range(300):
        t += 0.1
        prot.evaluate(measurement(current=-550.0), t)
    for _ in range(600):
        t += 0.1
        prot.evaluate(measurement(current=-10.0), t)
    assert prot.states['discharge_overcurrent'].integrator.fraction == pytest.approx(0.0, abs=1e-9)
    start = t
    while True:
        t += 0.1
        if of(prot.evaluate(measurement(current=-550.0), t), 'discharge_overcurrent', LEVEL_TRIP):
            break
    assert t - start == pytest.approx(60.0, abs=0.15)


def test_charge_over_current_curve():
    prot = protection()
    t = 0.0
    prot.evaluate(measurement(current=150.0), t)             # 150 A: 5 s allowed
    while not of(prot.evaluate(measurement(current=150.0), t), 'charge_overcurrent', LEVEL_TRIP):
        t += 0.1
    assert t == pytest.approx(5.0, abs=0.11)


# ---------------------------------------------------------------- derating and estimate

def test_current_limits_derate_linearly_from_warning_to_trip():
    prot = protection()
    prot.evaluate(measurement(cells=with_cell(0, 3.685)), 0.0)  # halfway 3.62 .. 3.75
    charge, discharge = prot.current_limits(0.0)
    assert charge == pytest.approx(50.0) and discharge == pytest.approx(500.0)
    prot.evaluate(measurement(temps=np.full(8, 50.0)), 0.1)     # discharge: halfway 45 .. 55
    charge, discharge = prot.current_limits(0.1)
    assert discharge == pytest.approx(250.0)
    assert charge == pytest.approx(0.0)                         # 50 degC is past the 45 degC trip
    prot.evaluate(measurement(temps=np.full(8, 7.5)), 0.2)      # charge: 3/4 of 10 .. 0 degC
    assert prot.current_limits(0.2) == pytest.approx((75.0, 500.0))


def test_no_current_is_allowed_before_the_first_measurement():
    # unknown is never "OK": a supervisor must not close on a protection that has seen nothing
    prot = protection()
    assert not prot.has_something_to_report()         # the node sends no protection_status yet
    assert prot.current_limits(0.0) == (0.0, 0.0)
    status = prot.status(0.0)
    assert (status.charge_current_limit_a, status.discharge_current_limit_a) == (0.0, 0.0)
    prot.evaluate(measurement(), 0.1)
    assert prot.has_something_to_report() and prot.current_limits(0.1) == (100.0, 500.0)


def test_estimate_caps_the_limits_while_fresh():
    prot = protection()
    prot.evaluate(measurement(), 0.0)
    prot.update_estimate(40.0, 300.0, 0.0)
    assert prot.current_limits(1.0) == (40.0, 300.0)
    assert prot.current_limits(2.5) == (100.0, 500.0)          # older than 2 s: ignored
    prot.update_estimate(math.nan, 10.0, 3.0)                   # NaN: not used
    assert prot.current_limits(3.0) == (100.0, 500.0)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize('field, length', [('cell_voltages_v', 15), ('cell_voltage_valid', 17),
                                           ('temperatures_degc', 0), ('temperature_valid', 9)])
def test_malformed_measurement_is_rejected_and_counted(field, length):
    prot = protection()
    bad = measurement()
    setattr(bad, field, np.ones(length))
    assert prot.evaluate(bad, 0.0) == []
    assert prot.measurements_rejected == 1
    assert prot.status(0.0).measurements_rejected == 1
    # a rejected measurement does not refresh the stale check
    prot.evaluate(measurement(), 1.0)
    prot.evaluate(bad, 1.5)
    assert of(prot.check_timeout(2.0), 'stale_measurement', LEVEL_TRIP)


def test_flag_limits_are_raised_at_their_configured_level():
    cfg = config()
    cfg = cfg.replace_limit(replace(cfg.limit('temperature_invalid'), level=LEVEL_WARNING))
    prot = protection(cfg)
    bad = measurement()
    bad.temperature_valid[0] = False
    event, = prot.evaluate(bad, 0.0)
    assert (event.level, event.latched) == (LEVEL_WARNING, False)
    assert isinstance(cfg.limit('temperature_invalid'), FlagLimit)


def test_a_clock_going_back_neither_delays_nor_causes_a_trip():
    prot = protection(config(debounce_zero=False))          # cell_overvoltage: 0.2 s
    over = measurement(cells=with_cell(3, 3.8))
    prot.evaluate(measurement(), 99.0)
    prot.evaluate(over, 100.0)                              # debounce timer starts at 100 s
    assert of(prot.evaluate(over, 50.0), 'cell_overvoltage') == []    # clock back by 50 s
    events = prot.evaluate(over, 50.2)                      # restarted at 50 s, not waiting
    assert of(events, 'cell_overvoltage', LEVEL_TRIP)
    # no stale trip from the jump, and the rise-rate window starts again
    prot = protection()
    for k in range(60):
        prot.evaluate(measurement(), 100.0 + 0.1 * k)
    assert prot.check_timeout(20.0) == []
    for k in range(40):
        assert of(prot.evaluate(measurement(temps=with_temp(0, 40.0)), 20.0 + 0.1 * k),
                  'temperature_rise_rate') == []
