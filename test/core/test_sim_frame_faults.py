"""Frame faults of the simulated pack: a measurement message silent or frozen on the bus."""
import os
import re

import numpy as np
import pytest

from bms_ros.core.can_codec import CanProtocol, MeasurementAssembler, PackEncoder
from bms_ros.core.pack_model import PackModel
from bms_ros.core.profile import config_dir
from bms_ros.core.sim_faults import FaultError
from bms_ros.core.sim_frame_faults import FrameFaults

CONFIG = config_dir()
LFP_PROFILE = os.path.join(CONFIG, 'profiles', 'lfp_16s.yaml')
STATUS = 3          # Pack_Status in config/can/bms_ros_mapping.yaml (contactor feedback)
CELLS = 0           # Pack_CellVoltages: 4 multiplexed frames per period for 16 cells


@pytest.fixture(scope='module')
def protocol():
    return CanProtocol.from_files(os.path.join(CONFIG, 'can', 'bms_ros.dbc'),
                                  os.path.join(CONFIG, 'can', 'bms_ros_mapping.yaml'), 16, 8)


@pytest.fixture
def pack(protocol):
    model = PackModel.from_profile(LFP_PROFILE)
    return model, PackEncoder(protocol), FrameFaults(protocol)


def run(pack, start_s, seconds, step_s=0.005):
    """Frames sent from ``start_s`` for ``seconds`` of bus time (5 ms ticks, as the node), the model
    advancing so values change; [(t, frame)].
    """
    model, encoder, faults = pack
    out = []
    for k in range(int(round(seconds / step_s))):
        t = start_s + k * step_s
        model.advance(step_s)
        out += [(t, f) for f in faults.apply(encoder.due_frames(t, model.measured()))]
    return out


def ids(frames):
    return [f.arbitration_id for _, f in frames]


def test_message_indices_follow_the_mapping(protocol, pack):
    _, _, faults = pack
    assert faults.messages == ('Pack_CellVoltages', 'Pack_Temperatures', 'Pack_CurrentVoltage',
                               'Pack_Status', 'Pack_BalancingFeedback')
    assert faults.messages == tuple(m.name for m in protocol.measurement_messages)


def test_silent_message_stops_while_the_others_keep_coming(protocol, pack):
    _, _, faults = pack
    before = run(pack, 0.0, 1.0)
    status_id = protocol.measurement_messages[STATUS].frame_id
    assert ids(before).count(status_id) == 10
    text = faults.inject('can_silent', STATUS)
    assert 'Pack_Status (message 3) silent' in text
    during = run(pack, 1.0, 2.0)                          # 20 periods of the status message
    assert status_id not in ids(during)
    counts = {m.name: ids(during).count(m.frame_id) for m in protocol.measurement_messages}
    # 2 s: cells 4 blocks and temperatures 2 blocks at 10 Hz, current at 100 Hz, balancing 10 Hz
    assert counts == {'Pack_CellVoltages': 80, 'Pack_Temperatures': 40,
                      'Pack_CurrentVoltage': 200, 'Pack_Status': 0, 'Pack_BalancingFeedback': 20}
    assert faults.frames_suppressed == 20
    assert faults.active() == [('can_silent', STATUS, 0.0)]
    faults.clear('can_silent', STATUS)
    after = run(pack, 3.0, 1.0)
    assert ids(after).count(status_id) == 10


def test_silent_status_leaves_the_contactor_group_stale_at_the_receiver(protocol, pack):
    _, _, faults = pack
    assembler = MeasurementAssembler(protocol)
    for t, f in run(pack, 0.0, 1.0):
        assembler.feed(f, t)
    assert not assembler.snapshot(1.0, 0.5).contactors_stale
    faults.inject('can_silent', STATUS)
    for t, f in run(pack, 1.0, 1.0):
        assembler.feed(f, t)
    m = assembler.snapshot(2.0, 0.5)
    assert m.contactors_stale and not (m.cell_voltages_stale or m.current_stale
                                       or m.temperatures_stale)


def test_frozen_message_repeats_its_last_frames_byte_for_byte(protocol, pack):
    model, _, faults = pack
    run(pack, 0.0, 1.0)
    cell_id = protocol.measurement_messages[CELLS].frame_id
    faults.inject('can_frozen', CELLS)
    frozen = [f for _, f in run(pack, 1.0, 1.0) if f.arbitration_id == cell_id]
    assert len(frozen) == 40                              # 4 multiplexed frames x 10 periods
    first = [bytes(f.data) for f in frozen[:4]]
    assert len(set(first)) == 4                           # the four blocks differ
    assert all([bytes(f.data) for f in frozen[k:k + 4]] == first for k in range(0, 40, 4))
    assert faults.frames_repeated == 40
    # meanwhile the pack itself moved on: fresh frames would differ
    assert model.sim_time_s > 1.9
    faults.clear('can_frozen', -1)
    fresh = [bytes(f.data) for _, f in run(pack, 2.0, 0.3) if f.arbitration_id == cell_id]
    assert fresh[:4] != first


def test_frozen_status_repeats_its_rolling_counter(protocol, pack):
    _, _, faults = pack
    status = protocol.measurement_messages[STATUS]
    assert status.counter_signal == 'StatusCounter'
    decode = status.dbc_message.decode
    fresh = [decode(bytes(f.data))['StatusCounter'] for _, f in run(pack, 0.0, 0.5)
             if f.arbitration_id == status.frame_id]
    assert len(set(fresh)) == 5                           # counting while healthy
    faults.inject('can_frozen', STATUS)
    frozen = [f for _, f in run(pack, 0.5, 1.0) if f.arbitration_id == status.frame_id]
    assert len(frozen) == 10
    assert {bytes(f.data) for f in frozen} == {bytes(frozen[0].data)}
    assert decode(bytes(frozen[0].data))['StatusCounter'] == fresh[-1]
    # the receiver sees each repeat as a counter error (named counter_repeat where the codec
    # tells repeats from jumps)
    assembler = MeasurementAssembler(protocol)
    for f in frozen:
        assembler.feed(f, 0.0)
    counts = assembler.counts
    assert counts.get('counter_repeat', 0) + counts['counter_jump'] == 9


def test_frozen_before_any_frame_holds_the_first_period(protocol, pack):
    _, _, faults = pack
    faults.inject('can_frozen', STATUS)
    frames = [f for _, f in run(pack, 0.0, 0.5)
              if f.arbitration_id == protocol.measurement_messages[STATUS].frame_id]
    assert len(frames) == 5 and len({bytes(f.data) for f in frames}) == 1


def test_clear_all_resumes_every_message(protocol, pack):
    _, _, faults = pack
    faults.inject('can_silent', 2)
    faults.inject('can_frozen', 4)
    assert faults.clear('all') == 'all frame faults cleared'
    assert faults.active() == []
    current_id = protocol.measurement_messages[2].frame_id
    assert ids(run(pack, 0.0, 0.5)).count(current_id) == 50      # 100 Hz


@pytest.mark.parametrize('fault, index, message', [
    ('can_silent', 5, "can_silent: message index 5 out of range 0..4 (0 Pack_CellVoltages, "
                      "1 Pack_Temperatures, 2 Pack_CurrentVoltage, 3 Pack_Status, "
                      "4 Pack_BalancingFeedback)"),
    ('can_frozen', -1, 'can_frozen: message index -1 out of range 0..4'),
    ('can_frozen', 'status', "can_frozen: message index 'status' out of range"),
    ('can_melted', 0, "unknown frame fault 'can_melted'"),
])
def test_bad_frame_fault_requests_are_refused(pack, fault, index, message):
    _, _, faults = pack
    with pytest.raises(FaultError, match=re.escape(message)):
        faults.inject(fault, index)
    assert faults.active() == []


def test_the_model_names_frame_faults_and_refuses_them(pack):
    model, _, _ = pack
    with pytest.raises(FaultError, match='can_silent is a frame fault'):
        model.inject_fault('can_silent', 0)
    with pytest.raises(FaultError, match=r"known: .*can_frozen, can_silent"):
        model.inject_fault('gremlins', 0)
    assert np.isfinite(model.measured()['cell_voltages_v']).all()
