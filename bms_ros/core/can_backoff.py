"""Exponential back-off between reconnect attempts (the CAN bus; s on the monotonic clock)."""
from __future__ import annotations

import time
from collections.abc import Callable


class Backoff:
    """The delay before the next attempt: ``min_s`` after a success, doubled after each
    failure up to ``max_s``.
    """

    def __init__(self, min_s: float, max_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.min_s = min_s
        self.max_s = max_s
        self.delay_s = min_s            # the wait after the next failure
        self.next_attempt_s = 0.0       # no attempt before this time (s, ``clock``)
        self._clock = clock

    def failed(self) -> None:
        """An attempt failed: the next one after ``delay_s``, which then doubles."""
        self.next_attempt_s = self._clock() + self.delay_s
        self.delay_s = min(self.delay_s * 2.0, self.max_s)

    def succeeded(self) -> None:
        """An attempt succeeded: the next failure waits ``min_s`` again."""
        self.delay_s = self.min_s

    def wait_s(self) -> float:
        """Time until the next attempt is due (s; <= 0: due now)."""
        return self.next_attempt_s - self._clock()
