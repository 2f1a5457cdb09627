"""core/pack_report.py: control style (b), a pack with its own BMS (statereq_bms.dbc)."""
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
    ReportDecoder,
    ReportEncoder,
    RequestEncoder,
    RequestHold,
    battery_health,
    check_style,
    control_style_of_file,
    decode_request,
    disagreements,
    estimate_fields,
    load_control,
    pack_state_fields,
    protection_fields,
    trip_disagreement,
)
from bms_ros.core.pack_state_machine import (
    STATE_CHARGE,
    STATE_DRIVE,
    STATE_ERROR,
    STATE_OFF,
    STATE_STANDBY,
)
from bms_ros.core.profile import config_dir

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
