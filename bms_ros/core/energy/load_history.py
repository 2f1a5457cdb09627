"""The pack's load: its present (low-passed) power and a profile learnt from the recent past.

Power is measured current x pack voltage (W, + = charging); "drawn" power is its negative.
The profile keeps the drawn energy of fixed blocks (profile_block_s) over profile_window_s and
gives the time-weighted mean drawn power, the spread of block means, and E[P^2] / E[P]^2 (the
I^2 R losses of a varying load exceed those of its mean). Samples on a charger are left out.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from .config import EnergyConfig


@dataclass
class LoadProfileStats:
    """The learnt load: drawn power statistics (W, + = discharging) over ``duration_s``."""

    mean_drawn_w: float
    block_std_w: float         # std of the block means
    peak_drawn_w: float        # 95th percentile of the blocks' highest sample
    loss_factor: float         # E[P^2] / E[P]^2 over the samples (>= 1): the R0 losses
    duration_s: float
    blocks: int
    rc_loss_factor: float = 1.0   # E[P_rc^2] / E[P]^2, P_rc low-passed at tau1: the R1 losses


class LoadTracker:
    """Low-pass of the pack power and block statistics of the drawn power."""

    def __init__(self, config: EnergyConfig, rc_time_constant_s: float = 0.0) -> None:
        self.config = config
        self.rc_time_constant_s = float(rc_time_constant_s)   # tau1 of the cell's RC pair, s
        self.t_s: float | None = None
        self.power_w = float('nan')        # low-passed, + = charging
        self.current_a = float('nan')      # low-passed, + = charging
        self.power_var_w2 = 0.0            # low-passed variance around power_w
        self.rc_drawn_w = float('nan')     # drawn power low-passed at tau1 (the RC pair's)
        # (t_end_s, seconds, drawn Ws, drawn W^2 s, peak W, low-passed W^2 s)
        self._blocks: deque[tuple[float, ...]] = deque()
        self._block = self._new_block()    # the running one
        self._block_start_s = math.nan    # set by the first measurement
        self.rejected = 0

    def update(self, t_s: float, current_a: float, voltage_v: float,
               on_charger: bool = False) -> bool:
        """One measurement: time (s), pack current (A, + = charging), pack voltage (V)."""
        if not (math.isfinite(t_s) and math.isfinite(current_a) and math.isfinite(voltage_v)
                and voltage_v > 0.0):
            self.rejected += 1
            return False
        p = current_a * voltage_v
        if self.t_s is None or not math.isfinite(self.power_w):
            self.t_s, self.power_w, self.current_a = t_s, p, current_a
            self.rc_drawn_w = -p
            self._block_start_s = t_s
            return True
        dt = t_s - self.t_s
        if dt <= 0.0:
            self.rejected += 1
            return False
        tau = self.config.load_filter_s
        a = 1.0 - math.exp(-dt / tau) if tau > 0.0 else 1.0
        err = p - self.power_w
        self.power_w += a * err
        self.current_a += a * (current_a - self.current_a)
        self.power_var_w2 = (1.0 - a) * (self.power_var_w2 + a * err * err)
        tau_rc = self.rc_time_constant_s
        a_rc = 1.0 - math.exp(-dt / tau_rc) if tau_rc > 0.0 else 1.0
        self.rc_drawn_w += a_rc * (-p - self.rc_drawn_w)
        self.t_s = t_s
        if not on_charger and dt <= 10.0 * self.config.profile_block_s:
            drawn = -p
            self._block[0] += dt
            self._block[1] += drawn * dt
            self._block[2] += drawn * drawn * dt
            self._block[3] = max(self._block[3], drawn)
            self._block[4] += self.rc_drawn_w * self.rc_drawn_w * dt
        if t_s - self._block_start_s >= self.config.profile_block_s:
            if self._block[0] > 0.0:
                self._blocks.append((t_s, *self._block))
            self._block = self._new_block()
            self._block_start_s = t_s
            while self._blocks and t_s - self._blocks[0][0] > self.config.profile_window_s:
                self._blocks.popleft()
        return True

    @staticmethod
    def _new_block() -> list[float]:
        return [0.0, 0.0, 0.0, -math.inf, 0.0]   # seconds, Ws, W^2 s, peak W, low-passed W^2 s

    @property
    def drawn_power_w(self) -> float:
        """The present filtered drawn power (W, + = discharging)."""
        return -self.power_w

    @property
    def power_std_w(self) -> float:
        """Standard deviation of the filtered pack power (W)."""
        return math.sqrt(max(self.power_var_w2, 0.0))

    def profile(self) -> LoadProfileStats | None:
        """Statistics of the learnt profile, or None before one full block."""
        blocks = list(self._blocks)
        if not blocks:
            return None
        seconds = sum(b[1] for b in blocks) + self._block[0]
        energy = sum(b[2] for b in blocks) + self._block[1]
        square = sum(b[3] for b in blocks) + self._block[2]
        rc_square = sum(b[5] for b in blocks) + self._block[4]
        if seconds <= 0.0:
            return None
        mean = energy / seconds
        means = [b[2] / b[1] for b in blocks if b[1] > 0.0]
        var = sum((m - mean) ** 2 for m in means) / max(len(means) - 1, 1)
        loss = (square / seconds) / (mean * mean) if mean > 0.0 else 1.0
        # low-passing cannot add variance: 1 <= rc_loss <= loss (up to the filter's start)
        rc_loss = (rc_square / seconds) / (mean * mean) if mean > 0.0 else 1.0
        peaks = sorted(b[4] for b in blocks if b[1] > 0.0)
        peak = peaks[min(len(peaks) - 1, int(0.95 * len(peaks)))]
        loss = max(loss, 1.0)
        return LoadProfileStats(mean, math.sqrt(var), max(peak, mean), loss, seconds,
                                len(means), min(max(rc_loss, 1.0), loss))
