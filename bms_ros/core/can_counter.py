"""Rolling counters of measurement messages: :class:`RollingCounter`, one per message.

A mapping's ``counter:`` is one sequence per message, shared by all its multiplexer branches,
+1 per frame as :class:`~bms_ros.core.can_encode.PackEncoder` sends them. A frame whose counter
is not the successor of the previous one has its values dropped (not stamped), counted as
``counter_repeat`` (same value again: a frozen sender) or ``counter_jump``. A jump forward by
less than half the counter range (frames lost) resynchronises at once, so a lost frame costs
the one frame after it. A repeat or a step back (an old frame replayed) does not: the sequence
is taken up again only after ``counter_errors_stale`` frames that follow each other (a sender
that restarted). ``counter_errors_stale`` bad frames in a row mark the message stale: every
element it maps is invalidated at once (its groups read stale) and its values stay withheld
until ``counter_errors_stale`` good frames in a row; the frame completing that run is used.
A multiplexed block whose counter changed between its last good frames but now equals the one of
its previous frame is a replayed block (``counter_repeat``) even when it follows the frame
before: a frozen sender replaying a cycle longer than half the counter range (the 24 cell
blocks of a 96s pack) is caught too; a cycle of a multiple of the counter range (16 blocks),
where every block's counter is the same each cycle anyway, cannot be.
"""
from __future__ import annotations

from collections.abc import Hashable

COUNTER_REASONS = ('counter_repeat', 'counter_jump')
COUNTER_ERRORS_STALE = 3     # default of can.counter_errors_stale


class RollingCounter:
    """The rolling-counter rule of one message (module docstring); not thread-safe.

    ``modulo``: the counter's range (2 ** bits); ``limit``: bad frames in a row that mark the
    message stale, and good ones in a row that clear it; ``counts``: the message's reason
    counts, where ``counter_repeat`` and ``counter_jump`` are added.
    """

    __slots__ = ('modulo', 'limit', 'counts', 'last', 'expected', 'candidate_next',
                 'candidate_run', 'bad_run', 'good_run', 'stale', 'branch_last')

    def __init__(self, modulo: int, limit: int, counts: dict[str, int]) -> None:
        self.modulo = modulo
        self.limit = limit
        self.counts = counts
        self.last: int | None = None
        self.expected: int | None = None
        self.candidate_next: int | None = None
        self.candidate_run = 0
        self.bad_run = 0
        self.good_run = 0
        self.stale = False          # the message is stale by its counter now
        # block (multiplexer value) -> (its last counter, whether its counter changed between
        # its last good frames: false when the cycle is a multiple of the counter range)
        self.branch_last: dict[Hashable, tuple[int, bool]] = {}

    def accept(self, value: int, branch: Hashable | None) -> bool:
        """Take one frame's counter ``value`` of block ``branch`` (None: not multiplexed);
        False: drop this frame's values (and ``stale`` may have turned true).
        """
        modulo = self.modulo
        limit = self.limit
        expected = self.expected
        in_sequence = expected is None or value == expected
        replayed = False
        seen = None
        if branch is not None:
            # a block whose counter normally changes from cycle to cycle comes with the same
            # counter as its last frame: replayed (a frozen cycle of any length)
            seen = self.branch_last.get(branch)
            replayed = seen is not None and seen[1] and seen[0] == value
        if in_sequence and not replayed:                   # first frame, or in sequence
            self.expected = (value + 1) % modulo
            self.last = value
            self.bad_run = self.candidate_run = 0
            self.candidate_next = None
            if branch is not None:
                self.branch_last[branch] = (value, seen is not None and seen[0] != value)
            if not self.stale:
                return True
            self.good_run += 1
            if self.good_run < limit:
                return False
            self.stale = False
            return True
        if branch is not None:
            self.branch_last[branch] = (value, seen is not None and seen[1])
        if value == self.last or replayed:
            self.counts['counter_repeat'] += 1
        else:
            self.counts['counter_jump'] += 1
        if in_sequence:                                    # a replayed block in sequence
            self.expected = (value + 1) % modulo
        elif value != self.last and expected is not None \
                and (value - expected) % modulo < modulo // 2:
            self.expected = (value + 1) % modulo             # frames lost: resynchronise
            self.candidate_run = 0
        else:                                              # repeated or replayed frame
            self.candidate_run = self.candidate_run + 1 if value == self.candidate_next else 1
            self.candidate_next = (value + 1) % modulo
            if self.candidate_run >= limit:                # a new sequence: take it up
                self.expected = self.candidate_next
                self.candidate_run = 0
        self.last = value
        self.good_run = 0
        self.bad_run += 1
        if self.bad_run >= limit:
            self.stale = True
        return False
