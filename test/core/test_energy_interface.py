"""The battery_state builder's robot-energy rules (bms_ros.core.estimation.interface)."""
import math

from bms_ros.core.estimation import interface


def test_percentage_is_never_nan():
    assert interface.battery_percentage(float('nan')) == 0.0          # unknown reads "low"
    assert interface.battery_percentage(0.42) == 0.42
    assert interface.battery_percentage(1.2) == 1.0 and interface.battery_percentage(-0.1) == 0.0


def test_charger_present_reads_charging_when_full_or_open():
    status = interface.power_supply_status
    assert status(0.0, 1.0, 0.5, 0.98) == 'FULL'
    assert status(0.0, 1.0, 0.5, 0.98, charger_present=True) == 'CHARGING'
    assert status(3.0, 0.5, 0.5, 0.98, contactors_closed=False, charger_present=True) == \
        'CHARGING'
    assert status(-5.0, 0.5, 0.5, 0.98, charger_present=False) == 'DISCHARGING'
    # no recent measurement stays UNKNOWN even on the dock
    assert status(float('nan'), 0.5, 0.5, 0.98, measured=False, charger_present=True) == \
        'UNKNOWN'


def test_docking_copy_current():
    assert interface.docking_current_a(0.0, True, 1.0) == 1.0
    assert interface.docking_current_a(5.0, True, 1.0) == 5.0
    assert interface.docking_current_a(0.0, False, 1.0) == 0.0
    assert interface.docking_current_a(float('nan'), True, 1.0) == 1.0
    assert math.isnan(interface.docking_current_a(float('nan'), False, 1.0))
    assert interface.docking_current_a(0.0, True, 0.0) == 0.0         # off
