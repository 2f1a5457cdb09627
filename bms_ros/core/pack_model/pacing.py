"""Real-time pacing of the simulated pack: how far to advance the model at a tick.

Simulated time follows the wall clock times ``time_scale``; a tick never does more than
``max_work_s`` wall seconds' worth of simulation (plus one step), so a CPU that cannot keep up
lets simulated time slip instead of bursting to catch up.
"""
from __future__ import annotations


class RealTimePacer:
    """Simulated seconds due at each tick, against a monotonic wall clock (s)."""

    def __init__(self, wall_start_s: float, sim_start_s: float, time_scale: float,
                 step_s: float, max_work_s: float) -> None:
        self.wall_start_s = wall_start_s
        self.sim_start_s = sim_start_s
        self.time_scale = time_scale
        self.budget_s = max_work_s * time_scale + step_s   # simulated s per tick at most
        self.slipped = False                               # time has slipped at least once
        self.slipped_s = 0.0                               # wall s lost to slips, in total

    def due_s(self, wall_now_s: float, sim_time_s: float) -> tuple[float, bool]:
        """(simulated s to advance now, True if time slipped for the first time at this tick)."""
        behind = self.sim_start_s + (wall_now_s - self.wall_start_s) * self.time_scale \
            - sim_time_s
        first_slip = False
        if behind > self.budget_s:
            first_slip = not self.slipped
            self.slipped = True
            self.sim_start_s -= behind - self.budget_s
            self.slipped_s += (behind - self.budget_s) / self.time_scale
            behind = self.budget_s
        return max(behind, 0.0), first_slip


def next_tick_s(next_s: float, now_s: float, tick_s: float) -> float:
    """The next tick's wall time (s) after ``next_s``: no burst of catch-up ticks after a stall."""
    next_s += tick_s
    return now_s if next_s < now_s - tick_s else next_s
