"""Encode -> decode round trips for both DBCs, malformed frames, staleness, random frames."""
import functools
import os

import can
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bms_ros.core.can_codec import (
    COUNTER_REASONS,
    MESSAGE_FIELDS,
    REJECT_REASONS,
    VALUE_REASONS,
    CanProtocol,
    CommandEncoder,
    MeasurementAssembler,
    PackEncoder,
)
from bms_ros.core.errors import EncodeError
from bms_ros.core.profile import config_dir

CAN_DIR = os.path.join(config_dir(), 'can')
PROTOCOLS = {
    'bms_ros': ('bms_ros.dbc', 'bms_ros_mapping.yaml'),
    'alt_bms': ('alt_bms.dbc', 'alt_bms_mapping.yaml'),
}
# quantisation (half a step) of each DBC: cell V, degC, A, pack V
STEP = {
    'bms_ros': dict(cell=0.001, temp=0.1, current=0.001, voltage=0.01),
    'alt_bms': dict(cell=0.0001, temp=1.0, current=0.001, voltage=0.1),
}


@functools.lru_cache(maxsize=None)
def protocol(name, cells=16, sensors=8):
    """A loaded protocol (cached: its objects are read-only)."""
    dbc, mapping = PROTOCOLS[name]
    return CanProtocol.from_files(os.path.join(CAN_DIR, dbc), os.path.join(CAN_DIR, mapping),
                                  cells, sensors)


def pack_state(cells=16, sensors=8, seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        cell_voltages_v=rng.uniform(2.5, 4.2, cells),
        temperatures_degc=rng.uniform(-30.0, 80.0, sensors),
        pack_current_a=float(rng.uniform(-900.0, 900.0)),
        pack_voltage_v=float(rng.uniform(40.0, 420.0)),
        link_voltage_v=float(rng.uniform(0.0, 420.0)),
        negative_contactor_closed=True, positive_contactor_closed=False,
        precharge_relay_closed=True,
        cell_balancing=rng.uniform(size=cells) > 0.5)


def assemble(proto, frames, now_s=0.0):
    assembler = MeasurementAssembler(proto)
    for frame in frames:
        assembler.feed(frame, now_s)
    return assembler


def assert_equal_within_quantisation(name, got, state):
    step = STEP[name]
    np.testing.assert_allclose(got.cell_voltages_v, state['cell_voltages_v'],
                               atol=step['cell'] / 2 + 1e-9)
    np.testing.assert_allclose(got.temperatures_degc, state['temperatures_degc'],
                               atol=step['temp'] / 2 + 1e-9)
    assert got.pack_current_a == pytest.approx(state['pack_current_a'],
                                               abs=step['current'] / 2 + 1e-9)
    assert got.pack_voltage_v == pytest.approx(state['pack_voltage_v'],
                                               abs=step['voltage'] / 2 + 1e-9)
    assert got.link_voltage_v == pytest.approx(state['link_voltage_v'],
                                               abs=step['voltage'] / 2 + 1e-9)
    assert got.negative_contactor_closed is state['negative_contactor_closed']
    assert got.positive_contactor_closed is state['positive_contactor_closed']
    assert got.precharge_relay_closed is state['precharge_relay_closed']
    np.testing.assert_array_equal(got.cell_balancing, state['cell_balancing'])


@pytest.mark.parametrize('name', PROTOCOLS)
@pytest.mark.parametrize('cells, sensors', [(16, 8), (97, 50), (1000, 1000)])
def test_round_trip_equal_within_quantisation(name, cells, sensors):
    proto = protocol(name, cells, sensors)
    state = pack_state(cells, sensors, seed=cells)
    frames = PackEncoder(proto).encode_all(state)
    assembler = assemble(proto, frames, now_s=100.0)
    got = assembler.snapshot(100.05, 0.5)
    assert_equal_within_quantisation(name, got, state)
    assert got.cell_voltage_valid.all() and got.temperature_valid.all()
    assert not (got.cell_voltages_stale or got.temperatures_stale or got.current_stale
                or got.contactors_stale or got.balancing_stale)
    assert got.cell_voltages_stamp == got.current_stamp == 100.0
    assert (got.frames_received, got.frames_rejected) == (len(frames), 0)
    assert sum(got.counts.values()) == 0
    assert set(MESSAGE_FIELDS) <= set(vars(got))


def test_current_sign_is_charge_positive_on_both_buses():
    state = pack_state()
    state['pack_current_a'] = -250.0                     # discharging
    raw = {}
    for name in PROTOCOLS:
        proto = protocol(name)
        frames = PackEncoder(proto).encode_all(state)
        current = next(m for m in proto.measurement_messages
                       if 'pack_current_a' in {s.field for s in m.signals})
        frame = next(f for f in frames if f.arbitration_id == current.frame_id)
        raw[name] = current.dbc_message.decode(bytes(frame.data))
        assert assemble(proto, frames).snapshot(0.0, 1.0).pack_current_a == -250.0
    assert raw['bms_ros']['PackCurrent'] == -250.0
    assert raw['alt_bms']['AltBMS_DischargeCurrent'] == 250.0    # + = discharging on that bus


@pytest.mark.parametrize('name', PROTOCOLS)
def test_nan_travels_as_invalid_marker(name):
    proto = protocol(name)
    state = pack_state()
    state['cell_voltages_v'][5] = np.nan
    state['temperatures_degc'][7] = np.nan
    state['link_voltage_v'] = float('nan')
    assembler = assemble(proto, PackEncoder(proto).encode_all(state))
    got = assembler.snapshot(0.0, 1.0)
    assert np.isnan(got.cell_voltages_v[5]) and not got.cell_voltage_valid[5]
    assert got.cell_voltage_valid.sum() == 15
    assert np.isnan(got.temperatures_degc[7]) and not got.temperature_valid[7]
    assert np.isnan(got.link_voltage_v)
    assert got.counts['invalid_marker'] == 3
    assert got.frames_rejected == 0
    assert not got.cell_voltages_stale      # received, just invalid


@pytest.mark.parametrize('name', PROTOCOLS)
def test_values_beyond_the_dbc_range_are_rejected_values(name):
    proto = protocol(name)
    state = pack_state()
    state['cell_voltages_v'][0] = 5.5          # DBC range of both: [0|5] V
    state['pack_current_a'] = 5000.0           # beyond the sensor range, within the raw type
    got = assemble(proto, PackEncoder(proto).encode_all(state)).snapshot(0.0, 1.0)
    assert not got.cell_voltage_valid[0] and np.isnan(got.cell_voltages_v[0])
    assert np.isnan(got.pack_current_a)
    assert got.counts['out_of_range'] == 2
    assert got.counts['invalid_marker'] == 0


def _frame_of(proto, frames, field_name):
    message = next(m for m in proto.measurement_messages
                   if field_name in {s.field for s in m.signals})
    return message, [f for f in frames if f.arbitration_id == message.frame_id]


@pytest.mark.parametrize('name', PROTOCOLS)
def test_malformed_frames_are_counted_by_reason(name):
    proto = protocol(name)
    frames = PackEncoder(proto).encode_all(pack_state())
    message, cell_frames = _frame_of(proto, frames, 'cell_voltages_v')
    good = cell_frames[0]
    ext = message.is_extended
    bad = [
        can.Message(arbitration_id=0x7FF, data=b'\x00' * 8, is_extended_id=False),   # unknown
        can.Message(arbitration_id=message.frame_id, data=bytes(good.data)[:5],
                    is_extended_id=ext),                                             # short
        can.Message(arbitration_id=message.frame_id, data=bytes(good.data) + b'\x00',
                    is_extended_id=ext, is_fd=True),                                 # long
        can.Message(arbitration_id=0x20000080, is_error_frame=True, is_extended_id=True),
        can.Message(arbitration_id=message.frame_id, is_remote_frame=True, dlc=message.length,
                    is_extended_id=ext),
        can.Message(arbitration_id=message.frame_id, data=b'\xff' * message.length,
                    is_extended_id=ext),                          # multiplexer value not in DBC
        # same number as an 11-bit id but 29-bit (or the other way round): another frame
        can.Message(arbitration_id=message.frame_id & 0x7FF, data=bytes(good.data),
                    is_extended_id=not ext),
        object(),                                                 # not a frame at all
    ]
    assembler = MeasurementAssembler(proto)
    for frame in bad:
        assert assembler.feed(frame, 0.0) is False
    got = assembler.snapshot(0.0, 1.0)
    assert got.counts['unknown_id'] == 2
    assert got.counts['wrong_dlc'] == 2
    assert got.counts['error_frame'] == 1
    assert got.counts['remote_frame'] == 1
    assert got.counts['decode_error'] == 2
    assert got.frames_rejected == len(bad)
    assert got.frames_received == len(bad)
    assert not got.cell_voltage_valid.any()
    assert got.cell_voltages_stale


def test_commands_seen_on_the_bus_are_ignored_not_rejected():
    proto = protocol('bms_ros')
    assembler = MeasurementAssembler(proto)
    for frame in CommandEncoder(proto).encode_contactor_command(True, False, True):
        assert assembler.feed(frame, 0.0) is False
    assert (assembler.frames_rejected, assembler.frames_ignored) == (0, 1)


def test_real_value_beyond_the_pack_is_counted():
    big = protocol('bms_ros', cells=20, sensors=8)
    small = protocol('bms_ros', cells=16, sensors=8)
    frames = PackEncoder(big).encode_all(pack_state(cells=20))
    got = assemble(small, frames).snapshot(0.0, 1.0)
    assert got.cell_voltage_valid.all()
    # cells 16..19 in one frame, bleed bits of cells 16..19 set in the random state
    assert got.counts['unmapped_index'] >= 4


def test_padding_slots_of_a_short_last_block_are_not_counted():
    proto = protocol('alt_bms', cells=16, sensors=8)       # 6 blocks of 3 = 18 slots
    got = assemble(proto, PackEncoder(proto).encode_all(pack_state())).snapshot(0.0, 1.0)
    assert got.counts['unmapped_index'] == 0 and got.counts['invalid_marker'] == 0


@pytest.mark.parametrize('name', PROTOCOLS)
def test_staleness_per_group_and_element(name):
    proto = protocol(name)
    encoder = PackEncoder(proto)
    frames = encoder.encode_all(pack_state())
    assembler = assemble(proto, frames, now_s=10.0)
    later = encoder.encode_all(pack_state())      # the next frames (rolling counters +1)
    # at 10.4 s only the current frame is refreshed
    _, current_frames = _frame_of(proto, later, 'pack_current_a')
    assembler.feed(current_frames[0], 10.4)
    got = assembler.snapshot(10.6, 0.5)
    assert got.cell_voltages_stale and got.temperatures_stale and got.contactors_stale
    assert not got.current_stale
    assert got.current_stamp == 10.4 and got.cell_voltages_stamp == 10.0
    assert not got.cell_voltage_valid.any() and np.isnan(got.cell_voltages_v).all()
    assert got.negative_contactor_closed is False        # stale booleans read false
    assert not got.cell_balancing.any()
    assert got.pack_current_a == pytest.approx(pack_state()['pack_current_a'], abs=1e-3)
    assert set(got.stale_groups) == {'cell_voltages', 'temperatures', 'contactors', 'balancing'}
    # one cell block refreshed: only those cells valid, the group still stale
    message, cell_frames = _frame_of(proto, later, 'cell_voltages_v')
    assembler.feed(cell_frames[0], 10.0)           # in sequence, but old by 10.6 s
    assembler.feed(cell_frames[1], 10.6)
    got = assembler.snapshot(10.6, 0.5)
    stride = message.mux_stride
    assert got.cell_voltage_valid.tolist() == [stride <= i < 2 * stride for i in range(16)]
    assert got.cell_voltages_stale


def test_never_received_is_stale_with_nan_stamps():
    got = MeasurementAssembler(protocol('bms_ros')).snapshot(0.0, 0.5)
    assert got.cell_voltages_stale and got.current_stale and got.contactors_stale
    assert np.isnan(got.cell_voltages_stamp) and np.isnan(got.current_stamp)
    assert np.isnan(got.pack_current_a) and not got.cell_voltage_valid.any()


@pytest.mark.parametrize('name', PROTOCOLS)
def test_every_measurement_message_of_the_project_dbc_has_a_counter(name):
    messages = protocol(name).measurement_messages
    with_counter = {m.name for m in messages if m.counter_signal is not None}
    if name == 'bms_ros':
        assert with_counter == {m.name for m in messages}
        assert {m.counter_modulo for m in messages} == {16}
    else:       # the second protocol keeps its one alive counter: counters are optional
        assert with_counter == {'AltBMS_Relays'}


@pytest.mark.parametrize('name', PROTOCOLS)
def test_due_frames_follow_the_mapping_periods(name):
    proto = protocol(name, cells=96, sensors=48)
    encoder = PackEncoder(proto)
    state = pack_state(96, 48)
    counts = {}
    t = 0.0
    while t < 1.0 - 1e-9:             # 1 s in 1 ms steps
        for frame in encoder.due_frames(t, state):
            counts[frame.arbitration_id] = counts.get(frame.arbitration_id, 0) + 1
        t += 0.001
    for message in proto.measurement_messages:
        blocks = len(message.mux_values) or 1
        expected = round(1.0 / message.period_s) * blocks
        assert counts[message.frame_id] == pytest.approx(expected, abs=blocks), message.name


@pytest.mark.parametrize('name', PROTOCOLS)
def test_commands_round_trip(name):
    proto = protocol(name, cells=100, sensors=8)
    commands = CommandEncoder(proto)
    pack = PackEncoder(proto)
    for neg, pre, pos in [(True, True, False), (True, False, True), (False, False, False)]:
        frames = commands.encode_contactor_command(neg, pre, pos)
        assert len(frames) == 1
        assert pack.decode_command(frames[0]) == {
            'kind': 'contactor', 'negative_closed': neg, 'precharge_closed': pre,
            'positive_closed': pos}
    bleed = np.zeros(100, dtype=bool)
    bleed[[0, 31, 32, 47, 48, 99]] = True
    decoded = None
    for frame in commands.encode_balancing_command(bleed):
        decoded = pack.decode_command(frame)
    assert decoded['kind'] == 'balancing'
    np.testing.assert_array_equal(decoded['cell_bleed'], bleed)
    assert pack.rejected['counter_jump'] == 0
    # measurement frames and junk are not commands
    assert pack.decode_command(pack.encode_all(pack_state(100))[0]) is None
    assert pack.decode_command(can.Message(arbitration_id=1, is_error_frame=True)) is None
    assert pack.rejected['error_frame'] == 1


def test_balancing_command_of_wrong_length_is_refused():
    commands = CommandEncoder(protocol('bms_ros'))
    with pytest.raises(EncodeError, match='cell_bleed: expected 16 values'):
        commands.encode_balancing_command(np.zeros(15, dtype=bool))


def test_state_of_wrong_shape_is_refused():
    encoder = PackEncoder(protocol('bms_ros'))
    state = pack_state()
    state['cell_voltages_v'] = state['cell_voltages_v'][:15]
    with pytest.raises(EncodeError, match=r'cell_voltages_v: expected 16 values'):
        encoder.encode_all(state)
    state = pack_state()
    del state['pack_voltage_v']
    with pytest.raises(EncodeError, match="state has no field 'pack_voltage_v'"):
        encoder.encode_all(state)


def test_state_may_be_an_object():
    class State:
        pass
    obj = State()
    vars(obj).update(pack_state())
    proto = protocol('bms_ros')
    got = assemble(proto, PackEncoder(proto).encode_all(obj)).snapshot(0.0, 1.0)
    assert_equal_within_quantisation('bms_ros', got, pack_state())


_IDS = {name: [m.frame_id for m in protocol(name).measurement_messages] for name in PROTOCOLS}


def _frames(name):
    ids = st.one_of(st.sampled_from(_IDS[name]), st.integers(0, 0x1FFFFFFF))
    return st.builds(
        lambda ident, ext, data, err, rtr: can.Message(
            arbitration_id=ident & (0x1FFFFFFF if ext else 0x7FF), is_extended_id=ext,
            data=data, is_error_frame=err, is_remote_frame=rtr and not err, check=False),
        ids, st.booleans(), st.binary(min_size=0, max_size=8),
        st.sampled_from([False] * 9 + [True]), st.sampled_from([False] * 9 + [True]))


@pytest.mark.parametrize('name', PROTOCOLS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_frames_never_raise_and_are_counted(name, data):
    proto = protocol(name)
    assembler = MeasurementAssembler(proto)
    frames = data.draw(st.lists(_frames(name), max_size=30))
    accepted = sum(bool(assembler.feed(frame, 1.0)) for frame in frames)
    got = assembler.snapshot(1.0, 0.5)
    assert got.frames_received == len(frames)
    # every frame is accepted, rejected (by a reason) or ignored (our own command ids, which
    # another controller on the bus may send)
    assert accepted + got.frames_rejected + assembler.frames_ignored == len(frames)
    assert got.frames_rejected == sum(got.counts[r] for r in REJECT_REASONS)
    assert set(got.counts) == set(REJECT_REASONS + VALUE_REASONS + COUNTER_REASONS)
    finite = np.isfinite(got.cell_voltages_v)
    assert (finite == got.cell_voltage_valid).all()
    assert (got.cell_voltages_v[finite] >= 0).all() and (got.cell_voltages_v[finite] <= 5).all()


# ---------------------------------------------------------------------------------------------
# Rolling counters: a repeat or jump drops the frame's values; N bad in a row mark it stale

def _status_frame(proto, counter, closed):
    """A Pack_Status frame with a chosen rolling counter (negative contactor ``closed``)."""
    mm = next(m for m in proto.measurement_messages if m.name == 'Pack_Status')
    data = mm.dbc_message.encode({'NegativeContactorClosed': int(closed),
                                  'PositiveContactorClosed': 0, 'PrechargeRelayClosed': 0,
                                  'StatusCounter': counter % 16})
    return can.Message(arbitration_id=mm.frame_id, data=data, is_extended_id=False)


def _feed_status(assembler, sequence, t0=0.0):
    """Feed (counter, closed) pairs 10 ms apart; the feed time of the last one (s)."""
    t = t0
    for k, (counter, closed) in enumerate(sequence):
        t = t0 + 0.01 * k
        assert assembler.feed(_status_frame(assembler.protocol, counter, closed), t) is True
    return t


def _negative(assembler, now_s):
    snap = assembler.snapshot(now_s, 0.5)
    return snap.negative_contactor_closed, snap.contactors_stale, snap


def test_counter_in_sequence_wraps_without_errors():
    assembler = MeasurementAssembler(protocol('bms_ros'))
    t = _feed_status(assembler, [(c, True) for c in range(40)])   # wraps 15 -> 0 twice
    closed, stale, snap = _negative(assembler, t)
    assert (closed, stale) == (True, False)
    assert snap.counts['counter_repeat'] == snap.counts['counter_jump'] == 0


def test_counter_repeat_drops_the_frame_values_and_its_stamp():
    assembler = MeasurementAssembler(protocol('bms_ros'))
    _feed_status(assembler, [(0, True), (1, True)])                    # used at 0.00, 0.01 s
    assembler.feed(_status_frame(assembler.protocol, 1, False), 0.30)  # repeat: dropped
    closed, stale, snap = _negative(assembler, 0.30)
    assert (closed, stale) == (True, False)                  # the repeat's False not used
    assert (snap.counts['counter_repeat'], snap.counts['counter_jump']) == (1, 0)
    # not stamped fresh: 0.52 s is more than 0.5 s after the last used frame (0.01 s)
    assert _negative(assembler, 0.52)[1] is True


def test_a_lost_frame_costs_the_next_frame_only():
    assembler = MeasurementAssembler(protocol('bms_ros'))
    _feed_status(assembler, [(0, True), (1, True)])
    assembler.feed(_status_frame(assembler.protocol, 3, False), 0.02)  # 2 lost: jump, dropped
    assert _negative(assembler, 0.02)[0] is True
    assembler.feed(_status_frame(assembler.protocol, 4, False), 0.03)  # in sequence: used
    closed, stale, snap = _negative(assembler, 0.03)
    assert (closed, stale) == (False, False)
    assert (snap.counts['counter_repeat'], snap.counts['counter_jump']) == (0, 1)
    assert snap.counter_stale == ()


def test_frozen_sender_marks_the_group_stale_until_three_good_frames():
    assembler = MeasurementAssembler(protocol('bms_ros'))
    _feed_status(assembler, [(0, True), (1, True), (2, True)])
    _feed_status(assembler, [(2, True), (2, True)], t0=0.03)           # two repeats
    closed, stale, _ = _negative(assembler, 0.04)
    assert (closed, stale) == (True, False)                  # 2 < counter_errors_stale
    assembler.feed(_status_frame(assembler.protocol, 2, True), 0.05)   # the third: stale
    closed, stale, snap = _negative(assembler, 0.05)
    assert (closed, stale) == (False, True)                  # at once, not after 0.5 s
    assert snap.counter_stale == ('Pack_Status',) and snap.counts['counter_repeat'] == 3
    assert 'contactors' in snap.stale_groups
    # recovery: good frames 3 and 4 are withheld, the third good one (5) is used
    for counter, t in ((3, 0.06), (4, 0.07)):
        assembler.feed(_status_frame(assembler.protocol, counter, True), t)
        assert _negative(assembler, t)[:2] == (False, True)
    assembler.feed(_status_frame(assembler.protocol, 5, True), 0.08)
    closed, stale, snap = _negative(assembler, 0.08)
    assert (closed, stale, snap.counter_stale) == (True, False, ())
    assert snap.counts['counter_repeat'] == 3 and snap.counts['counter_jump'] == 0


def test_a_bad_frame_during_recovery_starts_the_good_run_again():
    assembler = MeasurementAssembler(protocol('bms_ros'))
    _feed_status(assembler, [(0, True)] + [(0, True)] * 3)             # stale
    _feed_status(assembler, [(1, True), (2, True), (2, True), (3, True), (4, True)], t0=0.1)
    assert _negative(assembler, 0.14)[1] is True          # 1, 2 good; repeat; 3, 4 good
    assembler.feed(_status_frame(assembler.protocol, 5, True), 0.15)
    assert _negative(assembler, 0.15)[:2] == (True, False)


def test_replayed_old_frames_keep_the_message_stale():
    assembler = MeasurementAssembler(protocol('bms_ros'))
    _feed_status(assembler, [(c, True) for c in range(6)])             # 0..5 used
    # a stuck sender replays its last three frames over and over (counters 3, 4, 5)
    _feed_status(assembler, [(c, False) for c in (3, 4, 5) * 4], t0=0.1)
    closed, stale, snap = _negative(assembler, 0.21)
    assert (closed, stale, snap.counter_stale) == (False, True, ('Pack_Status',))
    # 3 4 5 step back and are not resynchronised; after three that follow each other the
    # sequence is taken up (expecting 6), which the next replayed 3 breaks again: 12 jumps
    assert (snap.counts['counter_jump'], snap.counts['counter_repeat']) == (12, 0)


def test_a_restarted_sender_is_taken_up_after_three_frames_in_a_row():
    assembler = MeasurementAssembler(protocol('bms_ros'))
    _feed_status(assembler, [(c, True) for c in range(6)])
    # restarts at 0 (a step back from the expected 6): 0 1 2 dropped and stale, 3 4 5 recover
    _feed_status(assembler, [(c, False) for c in range(6)], t0=0.1)
    closed, stale, snap = _negative(assembler, 0.15)
    assert (closed, stale, snap.counter_stale) == (False, False, ())
    assert snap.counts['counter_jump'] == 3
    _feed_status(assembler, [(6, True)], t0=0.16)
    assert _negative(assembler, 0.16)[0] is True


def test_counter_errors_stale_is_configurable():
    assembler = MeasurementAssembler(protocol('bms_ros'), counter_errors_stale=1)
    _feed_status(assembler, [(0, True), (0, True)])
    assert _negative(assembler, 0.01)[1] is True
    _feed_status(assembler, [(1, True)], t0=0.02)          # one good frame clears it
    assert _negative(assembler, 0.02)[:2] == (True, False)
    with pytest.raises(ValueError, match='counter_errors_stale'):
        MeasurementAssembler(protocol('bms_ros'), counter_errors_stale=0)


def _cell_frames(proto, encoder, volts):
    state = pack_state()
    state['cell_voltages_v'] = np.full(16, volts)
    return _frame_of(proto, encoder.encode_all(state), 'cell_voltages_v')[1]


def test_multiplexed_blocks_share_one_counter_sequence():
    proto = protocol('bms_ros')
    encoder = PackEncoder(proto)
    mm = next(m for m in proto.measurement_messages if m.name == 'Pack_CellVoltages')
    frames = _cell_frames(proto, encoder, 3.3) + _cell_frames(proto, encoder, 3.3)
    raw = [mm.dbc_message.decode(bytes(f.data), decode_choices=False) for f in frames]
    assert [r['CellVoltageCounter'] for r in raw] == list(range(8))   # one sequence ...
    assert [r['CellVoltageMux'] for r in raw] == [0, 1, 2, 3] * 2     # ... over all blocks
    assembler = assemble(proto, frames)
    assert assembler.counts['counter_jump'] == assembler.counts['counter_repeat'] == 0


def test_a_lost_cell_block_drops_the_next_block_only():
    proto = protocol('bms_ros')
    encoder = PackEncoder(proto)
    assembler = MeasurementAssembler(proto)
    for frame in _cell_frames(proto, encoder, 3.3):
        assembler.feed(frame, 0.0)
    second = _cell_frames(proto, encoder, 3.4)
    for frame in second[:2] + second[3:]:                  # block 2 lost on the bus
        assembler.feed(frame, 0.1)
    got = assembler.snapshot(0.1, 0.5)
    expected = np.array([3.4] * 8 + [3.3] * 8)             # blocks 2 (lost), 3 (dropped)
    np.testing.assert_allclose(got.cell_voltages_v, expected, atol=5e-4)
    assert got.counts['counter_jump'] == 1 and not got.cell_voltages_stale
    for frame in _cell_frames(proto, encoder, 3.5):        # the next cycle: all used
        assembler.feed(frame, 0.2)
    got = assembler.snapshot(0.2, 0.5)
    np.testing.assert_allclose(got.cell_voltages_v, np.full(16, 3.5), atol=5e-4)
    assert got.counts['counter_jump'] == 1


def test_a_frozen_cell_message_replaying_its_last_cycle_goes_stale():
    proto = protocol('bms_ros')
    encoder = PackEncoder(proto)
    assembler = MeasurementAssembler(proto)
    for frame in _cell_frames(proto, encoder, 3.3):
        assembler.feed(frame, 0.0)
    cycle = _cell_frames(proto, encoder, 3.4)
    for frame in cycle:
        assembler.feed(frame, 0.1)
    for k in range(3):                                     # the sender freezes: same 4 frames
        for frame in cycle:
            assembler.feed(frame, 0.2 + 0.1 * k)
    got = assembler.snapshot(0.4, 0.5)
    assert got.cell_voltages_stale and not got.cell_voltage_valid.any()
    assert got.counter_stale == ('Pack_CellVoltages',)
    # every replayed block carries its own last counter, which changed from cycle to cycle
    # before (4 blocks: +4 each cycle): all repeats, in sequence or not
    assert got.counts['counter_jump'] == 0 and got.counts['counter_repeat'] == 3 * 4


@pytest.mark.parametrize('field, message, valid, blocks', [
    ('cell_voltages_v', 'Pack_CellVoltages', 'cell_voltage_valid', 24),
    ('temperatures_degc', 'Pack_Temperatures', 'temperature_valid', 12)])
def test_a_frozen_96s_message_replaying_its_long_cycle_goes_stale(field, message, valid, blocks):
    """24 (12) blocks per cycle: the 4-bit counter wraps inside the cycle, so the replay's
    step back looks like lost frames; the blocks repeating their own counters give it away.
    """
    proto = protocol('bms_ros', cells=96, sensors=48)
    encoder = PackEncoder(proto)
    assembler = MeasurementAssembler(proto)
    state = pack_state(96, 48)
    for t in (0.0, 0.1):
        for frame in _frame_of(proto, encoder.encode_all(state), field)[1]:
            assembler.feed(frame, t)
    assert message not in assembler.snapshot(0.1, 0.5).counter_stale
    cycle = _frame_of(proto, encoder.encode_all(state), field)[1]
    assert len(cycle) == blocks
    for k in range(4):                                     # the last cycle, then 3 replays
        for frame in cycle:
            assembler.feed(frame, 0.2 + 0.1 * k)
    got = assembler.snapshot(0.5, 0.5)
    assert not getattr(got, valid).any() and got.counter_stale == (message,)
    assert got.counts['counter_jump'] + got.counts['counter_repeat'] == 3 * blocks
    # and genuine frames again (the counter goes on): taken up, all valid
    for t in (0.6, 0.7):
        for frame in _frame_of(proto, encoder.encode_all(state), field)[1]:
            assembler.feed(frame, t)
    got = assembler.snapshot(0.7, 0.5)
    assert getattr(got, valid).all() and got.counter_stale == ()


def test_sixteen_blocks_per_cycle_are_normal_traffic_even_with_a_lost_frame():
    """64 cells: each block's counter is the same every cycle; that alone is no replay."""
    proto = protocol('bms_ros', cells=64, sensors=8)
    encoder = PackEncoder(proto)
    assembler = MeasurementAssembler(proto)
    state = pack_state(64, 8)
    for k in range(5):
        frames = _frame_of(proto, encoder.encode_all(state), 'cell_voltages_v')[1]
        assert len(frames) == 16
        if k == 2:
            del frames[5]                                  # one frame lost on the bus
        for frame in frames:
            assembler.feed(frame, 0.1 * k)
    got = assembler.snapshot(0.4, 0.5)
    assert got.cell_voltage_valid.all() and not got.cell_voltages_stale
    assert (got.counts['counter_jump'], got.counts['counter_repeat']) == (1, 0)


# frames replayed in a cycle -> (counter_repeat, counter_jump) after 6 cycles: every frame is
# dropped, except (4 and 5 frames) those following the third, taken up as a new sequence
REPLAYS = {1: (6, 0), 2: (0, 12), 3: (0, 18), 4: (0, 18), 5: (0, 18)}


@pytest.mark.parametrize('cycle', sorted(REPLAYS))
def test_a_replayed_cycle_of_up_to_five_frames_stays_stale(cycle):
    assembler = MeasurementAssembler(protocol('bms_ros'))
    _feed_status(assembler, [(c, True) for c in range(10)])            # 0..9 used
    replay = [(c, True) for c in range(10 - cycle, 10)] * 6            # the last frames again
    t = _feed_status(assembler, replay, t0=0.1)
    closed, stale, snap = _negative(assembler, t)
    assert (closed, stale, snap.counter_stale) == (False, True, ('Pack_Status',))
    assert (snap.counts['counter_repeat'], snap.counts['counter_jump']) == REPLAYS[cycle]


def test_a_replayed_cycle_longer_than_half_the_counter_drops_one_frame_per_cycle():
    assembler = MeasurementAssembler(protocol('bms_ros'))
    _feed_status(assembler, [(c, True) for c in range(12)])            # 0..11 used
    _feed_status(assembler, [(c, False) for c in range(12)] * 3, t0=0.2)
    closed, stale, snap = _negative(assembler, 0.55)
    # the documented limit of a 4-bit counter: looks like 4 frames lost per cycle
    assert (closed, stale, snap.counter_stale) == (False, False, ())
    assert snap.counts['counter_jump'] == 3



def test_encode_all_of_some_messages_leaves_the_others_counters_alone():
    """A sender of the current frame alone must not skip counter values of the others."""
    proto = protocol('bms_ros')
    encoder = PackEncoder(proto)
    state = pack_state()
    first = encoder.encode_all(state)
    current_only = encoder.encode_all(state, keys=proto.frame_keys(('pack_current_a',)))
    assert [f.arbitration_id for f in current_only] == [256]
    # everything after it decodes without a single counter error
    assembler = assemble(proto, first + current_only + encoder.encode_all(state))
    assert assembler.counts['counter_jump'] == assembler.counts['counter_repeat'] == 0
    assert_equal_within_quantisation('bms_ros', assembler.snapshot(0.0, 1.0), state)
    # encoding everything and sending the current frame alone costs the others a frame each
    encoder = PackEncoder(proto)
    first = encoder.encode_all(state)
    filtered = [f for f in encoder.encode_all(state) if f.arbitration_id == 256]
    assembler = assemble(proto, first + filtered + encoder.encode_all(state))
    assert assembler.counts['counter_jump'] == len(proto.measurement_messages) - 1
