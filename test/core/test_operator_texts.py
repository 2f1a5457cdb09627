"""Texts an operator reads: a charge-temperature level that clears because charging stopped
says so (bms_ros.core.protection.texts, limit_state).
"""

from bms_ros.core.protection import LEVEL_ALARM, LEVEL_WARNING
from test.core.test_protection_checks import config, measurement, of, protection, with_temp


def test_a_charge_temperature_level_cleared_by_charging_stopping_says_why():
    cfg = config()
    limit = cfg.limit('charge_overtemperature')
    hot = with_temp(2, limit.thresholds[list(limit.levels).index(LEVEL_ALARM)] + 0.5)
    prot = protection(cfg)
    raised = of(prot.evaluate(measurement(temps=hot, current=5.0), 0.0), 'charge_overtemperature')
    assert {e.level for e in raised if e.active} == {LEVEL_WARNING, LEVEL_ALARM}
    cleared = of(prot.evaluate(measurement(temps=hot, current=0.0), 0.1),
                 'charge_overtemperature')
    assert {e.level for e in cleared if not e.active} == {LEVEL_WARNING, LEVEL_ALARM}
    value = f'{hot[2]:.1f}'
    alarm = next(e for e in cleared if e.level == LEVEL_ALARM)
    assert alarm.message == (f'temperature sensor 2 over-temperature while charging alarm '
                             f'cleared: charging stopped (now {value} degC; this limit applies '
                             'only while charging)')


def test_a_charge_temperature_level_cleared_by_cooling_names_the_bound():
    cfg = config()
    limit = cfg.limit('charge_overtemperature')
    warning = limit.thresholds[list(limit.levels).index(LEVEL_WARNING)]
    prot = protection(cfg)
    prot.evaluate(measurement(temps=with_temp(2, warning + 0.5), current=5.0), 0.0)
    cool = warning - limit.hysteresis - 0.5
    cleared, = of(prot.evaluate(measurement(temps=with_temp(2, cool), current=5.0), 0.1),
                  'charge_overtemperature')
    assert cleared.message == (f'temperature sensor 2 over-temperature while charging warning '
                               f'cleared: {cool:.1f} degC < {warning - limit.hysteresis:.1f} degC')
