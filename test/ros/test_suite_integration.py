"""Faults of the simulated pack through the whole graph, every node in its own process:
simulator -> CAN hub -> driver -> protection -> supervisor -> driver -> hub -> simulator, with
the estimator's BatteryState and the probe (this process) watching. The thermal test runs
twice: one process per node, and every BMS node in one process (`bringup --single-process`,
the container of bms_ros.tools.container), the graph unchanged (the 96-cell test: one process
per node only, see there).
"""
import pytest
from sensor_msgs.msg import BatteryState

from .suite import CHARGE, ERROR, STANDBY, Suite, contactors_open, is_trip

pytestmark = pytest.mark.ros

MODES = pytest.mark.parametrize('single_process', [False, True],
                                ids=['process_per_node', 'single_process'])

OVERHEAT = BatteryState.POWER_SUPPLY_HEALTH_OVERHEAT
GOOD = BatteryState.POWER_SUPPLY_HEALTH_GOOD


@MODES
def test_thermal_event_trips_opens_contactors_and_resets_only_after_cooling(ros_env, tmp_path,
                                                                           single_process):
    # The pack runs 50x faster than the wall clock (the CAN frames keep their real rates) so
    # a cell heats past the limit in seconds; protection's clock is the wall clock, so the
    # rise rate it sees is 50x the physical one and temperature_rise_rate trips too, as a
    # thermal runaway would. Cool-downs (wall seconds) are cut from 60/300 s to 2 s so the
    # test need not wait minutes; the start-up grace from 10 s to 3 s.
    edits = {'protection': {'startup_grace_s': 3.0,
                            'discharge_overtemperature': {'reset_cooldown_s': 2.0},
                            'temperature_rise_rate': {'reset_cooldown_s': 2.0}}}
    suite = Suite(ros_env, tmp_path, edits=edits, time_scale=50.0,
                  single_process=single_process).start()
    suite.wait_ready()
    suite.demand(-10.0)               # a steady 10 A discharge instead of the drive cycle
    suite.drive()
    suite.truth.wait_for(lambda t: t.pack_current_a < -9.0, timeout_s=10.0,
                         what='the pack discharging')
    suite.battery.wait_for(lambda b: b.power_supply_health == GOOD, timeout_s=10.0,
                           what='health GOOD before the fault')

    # 200 W into cell 4 (sensor 2 reads the mean of cells 4 and 5): the sensor passes the
    # 55 degC trip level after ~280 simulated seconds (~6 s here)
    suite.fault('thermal_event', 4, 200.0)
    trip = suite.events.wait_for(is_trip('discharge_overtemperature', 2), timeout_s=40.0,
                                 what='over-temperature trip of sensor 2')
    assert trip.value >= 55.0 and trip.threshold == pytest.approx(55.0) and trip.unit == 'degC'
    assert trip.message.startswith('temperature sensor 2 ')
    state = suite.states.wait_for(lambda s: s.state == ERROR, timeout_s=5.0, what='ERROR')
    assert state.reason.startswith('safety trip: '), state.reason
    assert not (state.commanded.negative_closed or state.commanded.positive_closed)
    # the open command went back over the bus: the simulated contactors opened, no current
    suite.truth.clear()
    truth = suite.truth.wait_for(contactors_open, timeout_s=5.0, what='contactors open')
    assert truth.pack_current_a == 0.0
    assert max(truth.cell_temperatures_degc) == truth.cell_temperatures_degc[4]
    health = suite.battery.wait_for(lambda b: b.power_supply_health == OVERHEAT,
                                    timeout_s=5.0, what='BatteryState health OVERHEAT')
    # the hottest sensor, still heated, within the simulator's sensor noise (0.2 degC, 3 sigma)
    # of the trip level: the trip fired on one noisy sample at >= 55, the next may read 54.9
    assert health.temperature >= 55.0 - 3 * 0.2

    # still hot (the heat source is still on): refused, naming the trip and the value
    answer = suite.reset('operator', 'try')
    assert not answer.success
    assert 'discharge_overtemperature[2] (condition still present: ' in answer.message, \
        answer.message
    assert 'discharge_overtemperature' in answer.still_latched

    # heat source off; the cell cools (~150 simulated s to 52.5 degC, ~3 s here): granted
    suite.fault('thermal_event', 4, clear=True)
    # (a reset clears what it can: trips may go in more than one answer)
    suite.reset_until(lambda a: a.success, timeout_s=60.0, requester='operator',
                      reason='cooled')
    cleared = suite.events.wait_for(
        lambda e: e.limit_id == 'discharge_overtemperature' and e.index == 2 and not e.active,
        timeout_s=5.0, what='the over-temperature trip cleared')
    assert cleared.message == 'discharge_overtemperature[2] reset by operator'
    suite.status.clear()
    suite.status.wait_for(lambda s: not s.trip_latched, timeout_s=5.0, what='nothing latched')
    suite.truth.clear()
    cooled = suite.truth.wait_for(timeout_s=5.0)
    assert max(cooled.cell_temperatures_degc[4:6]) < 55.0
    suite.battery.wait_for(lambda b: b.power_supply_health == GOOD, timeout_s=40.0,
                           what='health GOOD after cooling')
    assert suite.request(STANDBY, retry_s=5.0).accepted
    assert not suite.dead(), suite.dead()


UNSPEC_FAILURE = BatteryState.POWER_SUPPLY_HEALTH_UNSPEC_FAILURE
OVERVOLTAGE = BatteryState.POWER_SUPPLY_HEALTH_OVERVOLTAGE


# One process per node only: the single-process container (one GIL for all five nodes) with
# the 96-cell pack simulated at 100x missed the supervisor's 0.5 s contactor-feedback bound or
# the 0.5 s stale-measurement trip on this machine loaded 4x beyond its cores (3 runs of 4),
# where one process per node passed: see README, --single-process.
def test_offset_dropout_and_overcharge_of_the_96_cell_pack(ros_env, tmp_path,
                                                           single_process=False):
    # NMC 96s at 100x: an over-charge takes ~1,200 simulated seconds from 70 % SoC at 40 A
    # (the LFP model saturates at 3.71 V even at 80 A: it cannot reach its 3.75 V trip).
    # The estimator's zero-current low-pass is cut from 30 s to 2 s (wall), the start-up
    # grace of protection from 10 s to 3 s, so the test does not idle.
    edits = {'estimator': {'zero_current_time_s': 2.0},
             'protection': {'startup_grace_s': 3.0}}
    suite = Suite(ros_env, tmp_path, base='nmc_96s.yaml', edits=edits, time_scale=100.0,
                  single_process=single_process)
    suite.start().wait_ready(timeout_s=60.0)

    # current-sensor offset: with the contactors open the current is known to be 0, so the
    # estimator reads the offset from the measurement (noise 0.2 A: tolerance 0.3 A)
    suite.estimates.wait_for(lambda e: abs(e.current_offset_a) < 0.3, timeout_s=10.0,
                             what='the estimated offset near 0 A')
    suite.fault('current_offset', value=3.0)
    suite.measurements.clear()
    suite.measurements.wait_for(lambda m: abs(m.pack_current_a - 3.0) < 1.0, timeout_s=5.0,
                                what='3 A measured with the contactors open')
    suite.estimates.clear()
    suite.estimates.wait_for(lambda e: abs(e.current_offset_a - 3.0) < 0.3, timeout_s=20.0,
                             what='the estimated offset at 3 A')
    suite.fault('current_offset', clear=True)

    # temperature sensor dropout while driving: invalid after its 2 s debounce -> trip
    suite.demand(-20.0)
    suite.drive()
    suite.fault('temperature_dropout', 5)
    trip = suite.events.wait_for(is_trip('temperature_invalid', 5), timeout_s=15.0,
                                 what='temperature_invalid trip of sensor 5')
    assert trip.message.startswith('temperature sensor 5 ')
    suite.states.wait_for(lambda s: s.state == ERROR, timeout_s=5.0, what='ERROR')
    suite.truth.clear()
    assert suite.truth.wait_for(contactors_open, timeout_s=5.0).pack_current_a == 0.0
    suite.battery.wait_for(lambda b: b.power_supply_health == UNSPEC_FAILURE, timeout_s=5.0,
                           what='health UNSPEC_FAILURE')
    refused = suite.reset_until(lambda a: 'no measurement' not in a.message, timeout_s=5.0)
    assert not refused.success and 'temperature_invalid[5] (condition still present' in \
        refused.message, refused.message
    suite.fault('temperature_dropout', 5, clear=True)
    granted = suite.reset_until(lambda a: a.success, timeout_s=10.0)
    assert granted.message == 'reset temperature_invalid[5]'
    assert suite.request(STANDBY, retry_s=5.0).accepted

    # over-charge: CHARGE at 40 A (the continuous rating) until a cell passes 4.25 V
    suite.demand(40.0)
    suite.states.clear()
    answer = suite.request(CHARGE, retry_s=10.0)
    assert answer.accepted, answer.reason
    suite.states.wait_for(lambda s: s.state == CHARGE, timeout_s=10.0, what='CHARGE')
    trip = suite.events.wait_for(is_trip('cell_overvoltage'), timeout_s=40.0,
                                 what='cell over-voltage trip')
    assert trip.value >= 4.25 and trip.threshold == pytest.approx(4.25)
    suite.states.wait_for(lambda s: s.state == ERROR, timeout_s=5.0, what='ERROR')
    suite.truth.clear()
    truth = suite.truth.wait_for(contactors_open, timeout_s=5.0, what='contactors open')
    assert truth.pack_current_a == 0.0
    assert max(truth.cell_soc) > 0.95
    suite.battery.wait_for(lambda b: b.power_supply_health == OVERVOLTAGE, timeout_s=5.0,
                           what='health OVERVOLTAGE')
    # no current: the cell relaxes below the trip level, but its 10 s cool-down runs
    refused = suite.reset()
    assert not refused.success and f'cell_overvoltage[{trip.index}] (' in refused.message, \
        refused.message
    assert not suite.dead(), suite.dead()
