"""PromptPolicy: which received batches make the CAN driver publish before its timer."""
import os

import can
import pytest

from bms_ros.core.can_bus import load_can_settings
from bms_ros.core.can_codec import CanProtocol, MeasurementAssembler, PackEncoder
from bms_ros.core.errors import ConfigError
from bms_ros.core.profile import Profile, config_dir
from bms_ros.core.prompt_publish import CURRENT_FIELD, PROMPT_FIELDS, PromptPolicy

CAN_DIR = os.path.join(config_dir(), 'can')


@pytest.fixture(scope='module', params=[('bms_ros.dbc', 'bms_ros_mapping.yaml'),
                                        ('alt_bms.dbc', 'alt_bms_mapping.yaml')])
def protocol(request):
    dbc, mapping = request.param
    return CanProtocol.from_files(os.path.join(CAN_DIR, dbc), os.path.join(CAN_DIR, mapping),
                                  16, 8)


def pack_state(current_a, cell_5_v=3.3):
    """A 16-cell pack state at ``current_a`` (A) with cell 5 at ``cell_5_v``, the rest 3.3 V."""
    cells = [3.3] * 16
    cells[5] = cell_5_v
    return dict(cell_voltages_v=cells, temperatures_degc=[25.0] * 8,
                pack_current_a=current_a, pack_voltage_v=52.8, link_voltage_v=52.8,
                negative_contactor_closed=True, positive_contactor_closed=True,
                precharge_relay_closed=False, cell_balancing=[False] * 16)


def frames_by_group(protocol, current_a):
    """{'group': [frames]} of one encoded pack state: cells/temps/contactors, current, other."""
    state = pack_state(current_a)
    fields = {}
    for m in protocol.measurement_messages:
        fields[m.frame_id] = {s.field for s in m.signals}
    groups = {'limit': [], 'current': [], 'other': []}
    for frame in PackEncoder(protocol).encode_all(state):
        names = fields[frame.arbitration_id]
        if names & PROMPT_FIELDS:
            groups['limit'].append(frame)
        elif CURRENT_FIELD in names:
            groups['current'].append(frame)
        else:
            groups['other'].append(frame)
    return groups


def assess(policy, protocol, batch):
    """(wanted, urgent) of ``batch`` fed to a fresh assembler (no counter history)."""
    assembler = MeasurementAssembler(protocol)
    assembler.feed_many(batch, 0.0)
    return policy.assess(batch, assembler)


def decide(policy, protocol, batch):
    assembler = MeasurementAssembler(protocol)
    assembler.feed_many(batch, 0.0)
    return policy.wanted(batch, assembler)


@pytest.mark.parametrize('current_a, expected', [(-89.9, False), (-90.0, True), (-400.0, True),
                                                 (95.0, True), (10.0, False)])
def test_a_current_frame_prompts_at_or_above_the_threshold(protocol, current_a, expected):
    policy = PromptPolicy(protocol, 0.02, current_a=90.0)
    groups = frames_by_group(protocol, current_a)
    assert groups['current'], 'the DBC has a current frame without limit-relevant signals'
    assert decide(policy, protocol, groups['current']) is expected
    assert decide(policy, protocol, groups['other']) is False


def test_cell_frames_always_prompt_without_a_window_and_nothing_when_disabled(protocol):
    groups = frames_by_group(protocol, -500.0)
    assert decide(PromptPolicy(protocol, 0.02), protocol, groups['limit'][:1])
    assert not decide(PromptPolicy(protocol, 0.02, current_a=0.0), protocol, groups['current'])
    off = PromptPolicy(protocol, 0.0, current_a=90.0)          # prompt publish turned off
    assert not decide(off, protocol, groups['limit'] + groups['current'])


def with_invalid_current(protocol, frame):
    """The frame again, its current signal set to the mapping's invalid marker (raw)."""
    message = protocol.mapping.database.get_message_by_frame_id(frame.arbitration_id)
    raw = message.decode(frame.data, decode_choices=False, scaling=False)
    (signal,) = [s for m in protocol.measurement_messages if m.frame_id == frame.arbitration_id
                 for s in m.signals if s.field == CURRENT_FIELD]
    raw[signal.signal] = signal.invalid_raw
    return can.Message(arbitration_id=frame.arbitration_id, is_extended_id=frame.is_extended_id,
                       data=message.encode(raw, scaling=False, strict=False))


def test_an_invalid_current_does_not_prompt(protocol):
    """A current frame carrying the invalid marker decodes as NaN: nothing to hurry for."""
    policy = PromptPolicy(protocol, 0.02, current_a=90.0)
    (frame,) = frames_by_group(protocol, -500.0)['current']
    assert decide(policy, protocol, [frame])
    invalid = with_invalid_current(protocol, frame)
    assembler = MeasurementAssembler(protocol)
    assembler.feed_many([invalid], 0.0)
    assert assembler.latest(CURRENT_FIELD) != assembler.latest(CURRENT_FIELD)   # NaN
    assert not policy.wanted([invalid], assembler)


def test_a_same_numbered_frame_of_the_other_id_kind_does_not_prompt(protocol):
    policy = PromptPolicy(protocol, 0.02)
    frame = frames_by_group(protocol, 0.0)['limit'][0]
    twin = can.Message(arbitration_id=frame.arbitration_id, data=frame.data,
                       is_extended_id=not frame.is_extended_id)
    assert not policy.wanted([twin], MeasurementAssembler(protocol))


def test_prompt_current_is_validated(tmp_path):
    profile_path = os.path.join(config_dir(), 'profiles', 'lfp_16s.yaml')
    assert load_can_settings(Profile(profile_path)).prompt_current_a == 90.0
    text = open(profile_path, encoding='utf-8').read().replace(
        'prompt_current_a: 90.0', 'prompt_current_a: -5.0').replace(
        '../', os.path.join(config_dir(), ''))
    bad = tmp_path / 'bad.yaml'
    bad.write_text(text)
    with pytest.raises(ConfigError, match=r'bad\.yaml: can\.prompt_current_a'):
        load_can_settings(Profile(str(bad)))


def _cell_batch(protocol, volts):
    """The cell-voltage frames alone of a pack state with cell 5 at ``volts``."""
    return PackEncoder(protocol).encode_all(pack_state(0.0, volts),
                                            keys=protocol.frame_keys(('cell_voltages_v',)))


def test_a_crossing_is_urgent_once_then_rate_limited(protocol):
    """Leaving the cell window (or reaching the current threshold) skips the minimum interval
    once; staying beyond is an ordinary prompt; coming back and leaving again is urgent again.
    """
    policy = PromptPolicy(protocol, 0.02, current_a=90.0, cell_voltage_v=(2.5, 3.62))
    seen = [assess(policy, protocol, _cell_batch(protocol, volts))
            for volts in (3.30, 3.70, 3.71, 3.30, 2.40, 2.40)]
    # inside the window a cell frame waits for the timer; beyond it every one asks
    assert seen == [(False, False), (True, True), (True, False), (False, False), (True, True),
                    (True, False)]
    current = frames_by_group(protocol, -400.0)['current']
    quiet = frames_by_group(protocol, -10.0)['current']
    assert [assess(policy, protocol, b) for b in (current, current, quiet, current)] == [
        (True, True), (True, False), (False, False), (True, True)]


def test_the_cell_window_is_validated(tmp_path):
    import yaml

    from ..profile_copy import absolute_paths
    path = os.path.join(config_dir(), 'profiles', 'lfp_16s.yaml')
    with open(path, encoding='utf-8') as stream:
        data = absolute_paths(yaml.safe_load(stream), os.path.dirname(path))
    data['can']['prompt_cell_voltage_v'] = [3.62, 2.5]
    bad = tmp_path / 'p.yaml'
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r'can.prompt_cell_voltage_v: expected \[low, high\] '
                                          r'with low < high, got \[3.62, 2.5\]'):
        load_can_settings(Profile(bad))
    assert load_can_settings(Profile(path)).prompt_cell_voltage_v == (2.5, 3.62)


def _group_batch(encoder, field, **state):
    """The frames carrying ``field`` alone of a pack state at rest (``state`` overrides); one
    encoder for a sequence, so the rolling counters advance.
    """
    return encoder.encode_all({**pack_state(0.0), **state},
                              keys=encoder.protocol.frame_keys((field,)))


def test_contactor_feedback_prompts_on_a_change_and_temperatures_wait_for_the_timer(protocol):
    """At rest inside the window only a change of the contactor feedback asks for a publish
    (the supervisor's sequences wait on it); temperature frames go out on the timer.
    """
    policy = PromptPolicy(protocol, 0.02, current_a=90.0, cell_voltage_v=(2.5, 3.62))
    assembler = MeasurementAssembler(protocol)
    encoder = PackEncoder(protocol)

    def seen(**state):
        batch = _group_batch(encoder, state.pop('field', 'positive_contactor_closed'), **state)
        assembler.feed_many(batch, 0.0)
        return policy.assess(batch, assembler)
    closed, opened = {}, {'positive_contactor_closed': False}
    assert [seen(**s) for s in (closed, closed, opened, opened, closed)] == [
        (True, False), (False, False), (True, False), (False, False), (True, False)]
    assert seen(field='temperatures_degc', temperatures_degc=[60.0] * 8) == (False, False)
