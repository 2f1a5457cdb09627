"""core/pack_report/: control style (b), a pack with its own BMS (statereq_bms.dbc)."""
import math
import os

import pytest
import yaml

from bms_ros.core.can_codec import CanProtocol
from bms_ros.core.can_decode import MeasurementAssembler
from bms_ros.core.config import Section
from bms_ros.core.errors import ConfigError
from bms_ros.core.estimation.interface import power_supply_health
from bms_ros.core.pack_report import (
    ControlConfig,
    PackReport,
    ReportDecoder,
    ReportEncoder,
    RequestEncoder,
    RequestHold,
    SecondOpinion,
    battery_health,
    battery_state_fields,
    check_style,
    control_style_of_file,
    decode_request,
    disagreements,
    estimate_fields,
    load_control,
    pack_state_fields,
    protection_fields,
    report_diagnostic,
    request_decision,
    require_pack_control,
    trip_disagreement,
)
from bms_ros.core.pack_state_machine import (
    STATE_CHARGE,
    STATE_DRIVE,
    STATE_ERROR,
    STATE_OFF,
    STATE_STANDBY,
)
from bms_ros.core.profile import Profile, config_dir, default_profile_path

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENDORS = os.path.join(REPO, 'test', 'fixtures', 'can', 'vendors')
DBC = os.path.join(VENDORS, 'statereq_bms.dbc')
MAPPING = os.path.join(VENDORS, 'statereq_bms_mapping.yaml')
VALUES = {'state': 'DRIVE', 'pack_soc': 0.5432, 'soh_capacity': 0.91,
          'charge_current_limit_a': 30.0, 'discharge_current_limit_a': 90.5,
          'negative_contactor_closed': True, 'positive_contactor_closed': True,
          'precharge_relay_closed': False}


def protocol(mapping=MAPPING):
    return CanProtocol.from_files(DBC, mapping, 16, 8)


def mutated(tmp_path, mutate):
    with open(MAPPING, encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    mutate(data)
    path = tmp_path / 'mapping.yaml'
    path.write_text(yaml.safe_dump(data))
    return str(path)


def error_of(tmp_path, mutate):
    with pytest.raises(ConfigError) as info:
        protocol(mutated(tmp_path, mutate))
    return str(info.value).split(': ', 1)[1]


def test_the_mapping_loads_without_commands():
    mapping = protocol().mapping
    assert mapping.commands == [] and mapping.command('contactor') is None
    assert [m.name for m in mapping.pack_report] == ['PBMS_State', 'PBMS_SocSoh',
                                                     'PBMS_CurrentLimits']
    assert mapping.state_request.values == {STATE_STANDBY: 1, STATE_DRIVE: 2, STATE_CHARGE: 3}
    # Uninitialized and Shutdown both read OFF
    states = mapping.pack_report[0].signals[0].states
    assert states[0] == states[6] == STATE_OFF and states[3] == STATE_DRIVE


@pytest.mark.parametrize('mutate, expected', [
    (lambda d: d['pack_report'][0]['signals'][0]['states'].update({False: 'Init'}),
     "pack_report[0].signals[0].states.False: write 'OFF' in quotes: YAML reads OFF as false"),
    (lambda d: d['pack_report'][0]['signals'][0]['states'].update({'DRIVE': 'Drive'}),
     "pack_report[0].signals[0].states.DRIVE: 'Drive' is not a choice of 'BmsState' in message "
     "'PBMS_State' (choices: Charge, Error, Normal, Precharge, Shutdown, Standby, "
     'Uninitialized)'),
    (lambda d: d['state_request']['values'].pop('CHARGE'),
     'state_request.values.CHARGE: missing: every requestable state (STANDBY, DRIVE, CHARGE) '
     'needs its value'),
    (lambda d: d['state_request'].update(signal='RequestedStat'),
     "state_request.signal: unknown signal 'RequestedStat' in message 'VCU_StateRequest' "
     "(did you mean 'RequestedState'?)"),
    (lambda d: d['pack_report'][1]['signals'].append({'signal': 'SocMinimum', 'field': 'pack_soc'}),
     'pack_report[1].signals[2].field: pack_soc already mapped by PBMS_SocSoh.SocAverage'),
    (lambda d: d['pack_report'].pop(0),
     'pack_report: no signal maps state (required)'),
    (lambda d: d['pack_report'][0]['signals'][5].update(field='pack_soc'),
     "pack_report[0].signals[5].field: 'pack_soc' is a value, but 'ErrCellUndervoltage' in "
     "message 'PBMS_State' is a flag"),
    (lambda d: d.pop('state_request'),
     'commands: missing required field'),
])
def test_mapping_errors_name_the_field(tmp_path, mutate, expected):
    assert error_of(tmp_path, mutate) == expected


def test_control_in_the_profile(tmp_path):
    def can(data):
        return Section(data, 'profile.yaml', 'can')
    assert load_control(can({})) == ControlConfig()
    control = load_control(can({'control': 'pack', 'pack_bms': {'report_timeout_s': 0.3}}))
    assert control.pack_controls and control.report_timeout_s == 0.3
    with pytest.raises(ConfigError, match=r'can\.pack_bms: only with control: pack'):
        load_control(can({'pack_bms': {}}))
    with pytest.raises(ConfigError, match=r'can\.control: expected one of bms_ros, pack'):
        load_control(can({'control': 'vendor'}))
    with pytest.raises(ConfigError, match=r'can\.pack_bms\.soc_bond: unknown field'):
        load_control(can({'control': 'pack', 'pack_bms': {'soc_bond': 0.1}}))
    # style and mapping must fit
    with pytest.raises(ConfigError, match=r"can\.control: 'bms_ros' \(the default\) needs a "
                                          'contactor command'):
        check_style(ControlConfig(), protocol().mapping, 'profile.yaml')
    shipped = CanProtocol.from_files(os.path.join(config_dir(), 'can', 'bms_ros.dbc'),
                                     os.path.join(config_dir(), 'can', 'bms_ros_mapping.yaml'),
                                     16, 8).mapping
    with pytest.raises(ConfigError, match="'pack' needs pack_report and state_request"):
        check_style(ControlConfig(style='pack'), shipped, 'profile.yaml')
    path = tmp_path / 'p.yaml'
    path.write_text('can: {control: pack}\n')
    assert control_style_of_file(path) == 'pack'
    assert control_style_of_file(tmp_path / 'missing.yaml') == 'bms_ros'


def test_report_round_trip_and_staleness():
    mapping = protocol().mapping
    encoder = ReportEncoder(mapping)
    decoder = ReportDecoder(mapping)
    before = decoder.snapshot(0.0, 0.5)
    assert before.state == STATE_ERROR and before.state_name == 'UNKNOWN'
    assert before.reason == 'no pack report received'
    for frame in encoder.frames(VALUES, {'derating': 1}):
        assert decoder.feed(frame, 10.0)
    report = decoder.snapshot(10.2, 0.5)
    assert report.state == STATE_DRIVE and report.state_name == 'DRIVE' and not report.stale
    assert report.reason == 'pack reports Normal'
    assert abs(report.pack_soc - 0.5432) <= 0.00005 and abs(report.soh_capacity - 0.91) < 5e-4
    assert report.contactors == {'negative_contactor_closed': True,
                                 'positive_contactor_closed': True,
                                 'precharge_relay_closed': False}
    assert report.flags == [('derating', 1, 'pack reports derating')]
    fields = pack_state_fields(report, STATE_DRIVE)
    assert fields['state'] == STATE_DRIVE and fields['positive_contactor_closed']
    estimate = estimate_fields(report, 16)
    assert abs(estimate['discharge_current_limit_a'] - 90.5) < 0.05
    assert math.isnan(estimate['pack_soc_min']) and len(estimate['cell_soc']) == 16
    assert battery_health(report, power_supply_health) == 'GOOD'
    status = protection_fields(report)
    assert status['max_level'] == 1 and not status['trip_latched']
    # stale: unknown, safe
    stale = decoder.snapshot(10.6, 0.5)
    assert stale.state == STATE_ERROR and stale.state_name == 'UNKNOWN'
    assert stale.reason.startswith('pack report stale: none for 0.60 s')
    assert math.isnan(stale.pack_soc) and stale.contactors['positive_contactor_closed'] is None
    assert estimate_fields(stale, 16)['charge_current_limit_a'] == 0.0
    assert battery_health(stale, power_supply_health) == 'UNKNOWN'
    status = protection_fields(stale)
    assert status['max_level'] == 3 and status['active'][-1]['limit_id'] == 'pack_report_stale'
    assert not pack_state_fields(stale, STATE_DRIVE)['positive_contactor_closed']


def test_a_fault_flag_is_a_latched_trip_and_zero_limits():
    mapping = protocol().mapping
    decoder = ReportDecoder(mapping)
    for frame in ReportEncoder(mapping).frames(dict(VALUES, state='ERROR'),
                                               {'overtemperature': 1}):
        decoder.feed(frame, 1.0)
    report = decoder.snapshot(1.0, 0.5)
    status = protection_fields(report)
    assert status['trip_latched'] and status['charge_current_limit_a'] == 0.0
    assert [e['limit_id'] for e in status['active']] == ['overtemperature']
    assert battery_health(report, power_supply_health) == 'OVERHEAT'


def test_a_frozen_counter_and_an_unknown_state_are_counted():
    mapping = protocol().mapping
    decoder = ReportDecoder(mapping)
    frames = ReportEncoder(mapping).frames(VALUES)
    assert decoder.feed(frames[0], 1.0)
    assert not decoder.feed(frames[0], 1.1)            # same counter again: withheld
    assert decoder.counts['counter_error'] == 1
    message = mapping.pack_report[0].dbc_message
    raw = message.decode(bytes(frames[0].data), decode_choices=False, scaling=False)
    raw.update(BmsState=9, BmsAliveCounter=(raw['BmsAliveCounter'] + 1) % 16)
    frames[0].data = message.encode(raw, scaling=False, strict=False)
    assert decoder.feed(frames[0], 1.2)
    report = decoder.snapshot(1.2, 0.5)
    assert report.state == STATE_ERROR and report.state_name == 'UNKNOWN'
    assert report.reason.startswith('pack state raw 9 is not in the mapping')
    assert decoder.counts['unknown_state'] == 1


def test_request_frames_and_hold():
    mapping = protocol().mapping
    request = RequestEncoder(mapping.state_request)
    frames = [request.frame(STATE_DRIVE) for _ in range(3)]
    assert [decode_request(mapping.state_request, f) for f in frames] == [STATE_DRIVE] * 3
    counters = [mapping.state_request.dbc_message.decode(f.data)['RequestCounter']
                for f in frames]
    assert counters == [0, 1, 2]
    assert mapping.state_request.dbc_message.decode(frames[0].data)['RequestedState'] == 'Normal'
    with pytest.raises(ValueError):
        request.frame(STATE_ERROR)
    hold = RequestHold(2.0)
    assert hold.current(0.0) == STATE_STANDBY
    hold.set(STATE_DRIVE, 1.0)
    assert hold.current(2.9) == STATE_DRIVE and hold.current(3.1) == STATE_STANDBY
    forever = RequestHold(0.0)
    forever.set(STATE_CHARGE, 0.0)
    assert forever.current(1e6) == STATE_CHARGE


def test_the_driver_ignores_the_report_and_request_ids():
    proto = protocol()
    assembler = MeasurementAssembler(proto)
    request = RequestEncoder(proto.mapping.state_request).frame(STATE_DRIVE)
    frames = ReportEncoder(proto.mapping).frames(VALUES)
    for frame in frames[1:] + [request]:     # PBMS_State is a measurement message too
        assembler.feed(frame, 1.0)
    assert assembler.counts['unknown_id'] == 0 and assembler.frames_ignored == 3


def test_disagreements_beyond_the_bounds():
    mapping = protocol().mapping
    decoder = ReportDecoder(mapping)
    for frame in ReportEncoder(mapping).frames(VALUES):
        decoder.feed(frame, 1.0)
    report = decoder.snapshot(1.0, 0.5)
    control = ControlConfig(style='pack', soc_bound=0.05, current_limit_bound_a=10.0)
    assert disagreements(report, 0.52, (25.0, 85.0), control) == []
    rows = disagreements(report, 0.45, (5.0, 85.0), control)
    assert [r[0] for r in rows] == ['pack_soc', 'charge_current_limit_a']
    assert abs(rows[0][3] - 0.0932) < 1e-3 and rows[0][4] == 0.05
    assert disagreements(report, math.nan, (math.nan, math.nan), control) == []
    # our protection trips while the pack reports no fault: said; with a pack fault: not
    assert trip_disagreement(report, ('cell_overvoltage[3]',)) == \
        'bms_ros trips cell_overvoltage[3], the pack reports no fault'
    assert trip_disagreement(report, ()) is None
    assert trip_disagreement(decoder.snapshot(9.0, 0.5), ('x',)) is None    # stale: unknown
    assert ReportDecoder(mapping).feed(object(), 1.0) is False       # malformed: counted


def _known(**fields):
    """A fresh report in DRIVE (pack SoC 0.8, SoH 0.9, no voltage or current mapped)."""
    values = dict(state=STATE_DRIVE, state_name='DRIVE', reason='pack reports Normal',
                  stale=False, stale_fields=(), age_s=0.05, pack_soc=0.8, soh_capacity=0.9,
                  charge_current_limit_a=30.0, discharge_current_limit_a=90.0)
    values.update(fields)
    return PackReport(**values)


UNKNOWN = PackReport(state=STATE_ERROR, state_name='UNKNOWN', reason='no pack report received',
                     stale=True, stale_fields=('state',), age_s=math.inf)
MEASURED = {'pack_voltage_v': 52.0, 'pack_current_a': -12.0, 'current_stale': False,
            'cell_voltages_v': [3.25, 3.3, 9.9], 'cell_voltage_valid': [True, True, False],
            'temperatures_degc': [24.0, 31.5, 80.0], 'temperature_valid': [True, True, False]}


def test_battery_state_status_and_health_from_the_report():
    pack = Profile(default_profile_path()).pack
    fields = battery_state_fields(_known(), MEASURED, pack)
    # not mapped in the report: voltage and current from the measurement (current + = charging)
    assert fields['voltage'] == 52.0 and fields['current'] == -12.0
    assert fields['power_supply_status'] == 'DISCHARGING' and fields['present']
    assert fields['power_supply_health'] == 'GOOD'
    assert fields['cell_voltage'][:2] == [3.25, 3.3] and math.isnan(fields['cell_voltage'][2])
    assert fields['temperature'] == 31.5           # the hottest valid sensor, degC
    assert abs(fields['capacity'] - 0.9 * pack.capacity_ah) < 1e-9
    assert abs(fields['charge'] - 0.8 * 0.9 * pack.capacity_ah) < 1e-9
    assert fields['percentage'] == 0.8 and fields['power_supply_technology'] == 'LIFE'
    # the report's own current wins; charging above the idle current
    assert battery_state_fields(_known(pack_current_a=5.0), MEASURED,
                                pack)['power_supply_status'] == 'CHARGING'
    # STANDBY (contactors open): idle whatever the current; FULL from SoC 0.98
    standby = _known(state=STATE_STANDBY, state_name='STANDBY')
    assert battery_state_fields(standby, MEASURED, pack)['power_supply_status'] == \
        'NOT_CHARGING'
    full = _known(state=STATE_STANDBY, state_name='STANDBY', pack_soc=0.985)
    assert battery_state_fields(full, MEASURED, pack)['power_supply_status'] == 'FULL'
    # a stale measurement current is not used: no current, status UNKNOWN
    stale_current = dict(MEASURED, current_stale=True)
    fields = battery_state_fields(_known(), stale_current, pack)
    assert math.isnan(fields['current']) and fields['power_supply_status'] == 'UNKNOWN'
    # unknown report: status and health UNKNOWN, not present, percentage 0 (never NaN)
    fields = battery_state_fields(UNKNOWN, MEASURED, pack)
    assert fields['power_supply_status'] == 'UNKNOWN' and not fields['present']
    assert fields['power_supply_health'] == 'UNKNOWN' and fields['percentage'] == 0.0
    assert math.isnan(fields['capacity']) and math.isnan(fields['charge'])
    # no measurement yet: no cells, no temperature
    fields = battery_state_fields(_known(pack_voltage_v=51.0, pack_current_a=0.2), None, pack)
    assert fields['cell_voltage'] == [] and math.isnan(fields['temperature'])
    assert fields['voltage'] == 51.0 and fields['power_supply_status'] == 'NOT_CHARGING'
    overheat = _known(flags=[('overtemperature', 3, 'pack reports overtemperature')])
    assert battery_state_fields(overheat, MEASURED, pack)['power_supply_health'] == 'OVERHEAT'


def test_the_pack_report_node_needs_control_pack():
    require_pack_control(ControlConfig(style='pack'), 'p.yaml')
    with pytest.raises(ConfigError, match="p.yaml: can.control: the pack_report node needs "
                                          'control: pack'):
        require_pack_control(ControlConfig(), 'p.yaml')


def test_request_decision_refuses_drive_while_unknown():
    mapping = protocol().mapping
    request = RequestEncoder(mapping.state_request)
    assert request_decision(STATE_DRIVE, _known(), request) == \
        (True, 'DRIVE forwarded as RequestedState = '
               f'{request.value_of(STATE_DRIVE)}; the pack decides')
    assert request_decision(STATE_DRIVE, UNKNOWN, request) == \
        (False, 'DRIVE refused: no pack report received')
    assert request_decision(STATE_STANDBY, UNKNOWN, request)[0]
    assert request_decision(STATE_ERROR, _known(), request) == \
        (False, 'ERROR cannot be requested (STANDBY, DRIVE or CHARGE)')


def test_report_diagnostic_levels():
    assert report_diagnostic(UNKNOWN, STATE_STANDBY, 3)[:2] == \
        ('ERROR', 'UNKNOWN: no pack report received')
    level, message, values = report_diagnostic(_known(), STATE_DRIVE, 7)
    assert (level, message) == ('OK', 'DRIVE: pack reports Normal')
    assert values['requested_state'] == 'DRIVE' and values['requests_sent'] == '7'
    assert report_diagnostic(_known(stale=True, stale_fields=('pack_soc',)), 1, 0)[0] == 'WARN'
    assert report_diagnostic(_known(flags=[('derating', 1, 'x')]), 1, 0)[0] == 'WARN'


def test_second_opinion_status_and_its_log_once():
    opinion = SecondOpinion(ControlConfig(style='pack', soc_bound=0.05,
                                          current_limit_bound_a=10.0))
    first = opinion.status(_known())
    assert (first.level, first.message) == ('OK', 'no own estimate yet (own/estimate)')
    opinion.on_estimate(0.6)
    opinion.on_status(30.0, 90.0, [])
    status = opinion.status(_known())
    assert status.level == 'WARN' and status.warn_log
    assert status.message.startswith('pack and bms_ros disagree: pack_soc pack 0.8 vs ours 0.6')
    assert dict(status.values)['disagreeing'] == 'pack_soc'
    assert not opinion.status(_known()).warn_log          # the same disagreement: logged once
    opinion.on_estimate(0.79)
    assert opinion.status(_known()).level == 'OK'
    opinion.on_status(30.0, 90.0, ['cell_overvoltage[2]'])
    status = opinion.status(_known())
    assert status.level == 'WARN' and not status.warn_log   # trips alone are not logged
    assert dict(status.values)['disagreeing'] == 'trips'


def _profile(tmp_path, **can):
    path = tmp_path / 'profile.yaml'
    path.write_text(yaml.safe_dump({
        'pack': {'name': 'p', 'cells_series': 16, 'temperature_sensors': 8,
                 'cell': os.path.join(config_dir(), 'cells', 'lfp_a123_anr26650.yaml')},
        'can': {'dbc': DBC, 'mapping': MAPPING, **can}}))
    return str(path)


def test_graph_starts_the_nodes_of_each_style(tmp_path):
    from bms_ros.graph import SECOND_OPINION_REMAPS, suite
    from bms_ros.tools.bringup import ros_arguments
    _, nodes = suite(profile=_profile(tmp_path, control='pack'), simulate='false')
    assert [n.name for n in nodes] == ['can_driver', 'pack_report', 'state_estimator',
                                       'protection']
    estimator = nodes[2]
    assert dict(estimator.remappings)['estimate'] == 'own/estimate'
    assert dict(nodes[3].remappings)['protection_status'] == 'own/protection_status'
    argv = ros_arguments(estimator, 'pack_a')
    assert all(f'{a}:={b}' in argv for a, b in SECOND_OPINION_REMAPS)
    _, nodes = suite(profile=_profile(tmp_path, control='pack',
                                      pack_bms={'second_opinion': False}), simulate='false')
    assert [n.name for n in nodes] == ['can_driver', 'pack_report']
    _, nodes = suite(profile=_profile(tmp_path, control='pack',
                                      pack_bms={'second_opinion': False}), simulate='false',
                     motion_limits='true')   # the pack's own limits drive the motion limits
    assert [n.name for n in nodes] == ['can_driver', 'pack_report', 'motion_limits']
    _, nodes = suite(simulate='false')      # the shipped profile: style (a), unchanged
    assert [n.name for n in nodes] == ['can_driver', 'state_estimator', 'protection',
                                       'pack_supervisor', 'balancing']
    assert all(n.remappings == () for n in nodes)


from test.core.test_graph import _Node, _run_launch, launch_file  # noqa: E402,F401  (fixture)


def test_the_launch_file_follows_graph_in_style_b(tmp_path, launch_file):  # noqa: F811
    from bms_ros.graph import SECOND_OPINION_REMAPS, suite
    profile = _profile(tmp_path, control='pack')
    _, actions = _run_launch(launch_file, profile=profile, simulate='false')
    launched = {a.kwargs['name']: a.kwargs for a in actions if isinstance(a, _Node)}
    _, nodes = suite(profile=profile, simulate='false')
    assert sorted(launched) == sorted(n.name for n in nodes)
    for node in nodes:
        assert launched[node.name]['remappings'] == list(node.remappings)
    assert launched['protection']['remappings'] == list(SECOND_OPINION_REMAPS)
