"""Voltage-based top balancing: per-cell hysteresis on the clean (bleed-off) cell voltages.

A cell starts bleeding when it is more than ``threshold_v`` above the lowest cell and stops
when it is less than ``threshold_v - hysteresis_v`` above it. Decisions use only voltages
measured with the bleed resistors off (the off part of the duty cycle, after ``settle_s``), so
the bleed current's IR drop does not fool the comparison.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from .config import BalancingConfig


class VoltageStrategy:
    """Which cells want to bleed, from the mean clean voltages of the latest off window."""

    def __init__(self, config: BalancingConfig, cells_series: int) -> None:
        self.config = config
        self.n = int(cells_series)
        self.wanted = np.zeros(self.n, dtype=bool)     # the hysteresis state
        self._clean_window: float | None = None        # off window of the clean samples
        self._clean_sum_v = np.zeros(self.n)           # their sum, for the window mean
        self._clean_count = 0
        self._decided_window: float | None = None      # window of the last decision

    def reset(self) -> None:
        """Forget the hysteresis state (inhibited or mode changed): nothing wanted."""
        self.wanted = np.zeros(self.n, dtype=bool)

    def collect_clean(self, volts: NDArray[np.float64], valid: NDArray[np.bool_],
                      stamp_s: float) -> None:
        """Sum the clean cell voltages of one off window (bleed off, settled), for its mean."""
        cfg = self.config
        if cfg.duty_off_s <= 0.0:
            # no duty cycle: every measurement is a window of its own
            window, clean = stamp_s, True
        else:
            cycle_s = cfg.duty_on_s + cfg.duty_off_s
            window = math.floor(stamp_s / cycle_s)
            clean = stamp_s - window * cycle_s >= cfg.duty_on_s + cfg.settle_s
        if not clean or not np.all(valid):
            return
        if window != self._clean_window:
            self._clean_window, self._clean_count = window, 0
            self._clean_sum_v = np.zeros(self.n)
        self._clean_sum_v += volts
        self._clean_count += 1

    def decide(self, volts: NDArray[np.float64], on_phase: bool, threshold_v: float,
               hysteresis_v: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Update the hysteresis once an off window is complete (in the on phase).

        Returns (excess V, priority) of ``volts`` over the lowest cell.
        """
        if self._clean_count and self._clean_window != self._decided_window and on_phase:
            self._decided_window = self._clean_window
            clean_v = self._clean_sum_v / self._clean_count
            clean_excess = clean_v - clean_v.min()
            start = clean_excess > threshold_v
            stop = clean_excess < threshold_v - hysteresis_v
            self.wanted = (self.wanted | start) & ~stop
        excess = volts - volts.min()
        return excess, excess
