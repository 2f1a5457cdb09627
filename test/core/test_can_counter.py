"""RollingCounter on its own (core/can_counter.py); through the assembler: test_can_codec.py."""
from bms_ros.core.can_counter import COUNTER_REASONS, RollingCounter


def counter(limit=3, modulo=16):
    return RollingCounter(modulo, limit, dict.fromkeys(COUNTER_REASONS, 0))


def feed(rule, values, branch=None):
    return [rule.accept(v, branch) for v in values]


def test_in_sequence_with_wrap_is_accepted():
    rule = counter()
    assert feed(rule, [14, 15, 0, 1]) == [True] * 4
    assert rule.counts == {'counter_repeat': 0, 'counter_jump': 0} and not rule.stale


def test_a_lost_frame_costs_the_frame_after_it_only():
    rule = counter()
    assert feed(rule, [0, 1, 3, 4, 5]) == [True, True, False, True, True]
    assert rule.counts['counter_jump'] == 1 and not rule.stale


def test_a_frozen_sender_goes_stale_and_recovers_after_limit_good_frames():
    rule = counter(limit=3)
    assert feed(rule, [0, 1, 1, 1]) == [True, True, False, False]
    assert not rule.stale
    assert feed(rule, [1]) == [False] and rule.stale          # 3 bad in a row
    assert rule.counts['counter_repeat'] == 3
    # the sequence goes on from the frozen value: withheld until 3 good frames in a row
    assert feed(rule, [2, 3, 4, 5]) == [False, False, True, True]
    assert not rule.stale


def test_a_restarted_sender_is_taken_up_after_limit_frames_in_sequence():
    rule = counter(limit=3)
    feed(rule, [8, 9, 10])
    # a step back (restart at 7; expected 11): not a forward jump of less than half the
    # range, so no resynchronisation at once; 3 frames in sequence start the new one
    assert feed(rule, [7, 8, 9]) == [False, False, False]
    assert rule.stale and rule.counts['counter_jump'] == 3
    assert feed(rule, [10, 11, 12]) == [False, False, True] and not rule.stale


def test_a_replayed_block_is_a_repeat_even_in_sequence():
    rule = counter(limit=3, modulo=4)
    # blocks 0..2 with a counter that changes every cycle, then block 0 replayed with its old
    # counter while it also happens to follow the previous frame
    for value, block in [(0, 0), (1, 1), (2, 2), (3, 0), (0, 1), (1, 2)]:
        assert rule.accept(value, block)
    assert rule.accept(2, 0) is True                           # block 0 changed: 3 -> 2
    assert rule.accept(3, 1) is True
    assert rule.accept(0, 2) is True
    assert rule.accept(1, 0) is True
    assert rule.accept(2, 1) is True
    assert rule.accept(0, 2) is False                          # block 2 had 0 last time
    assert rule.counts['counter_repeat'] == 1
