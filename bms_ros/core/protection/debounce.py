"""Debounce and hysteresis of limit levels, and the inverse-time integrator of over-current.

Everything is vectorised over channels (cells, sensors) and takes the time ``now_s``
(seconds, any monotonic clock) as an argument, so it is unit-testable without sleeping.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from .limits import TimeCurrentLimit

BoolArray = NDArray[np.bool_]


class LevelMonitor:
    """Debounced on/off state of ``n_levels`` levels over ``n_channels`` channels.

    A level is raised once it has been violated continuously for ``debounce_s`` and cleared once
    it has been inside its hysteresis band continuously for ``release_s``. A value that is
    neither violated nor cleared (inside the hysteresis band) keeps the state; an unknown value
    (NaN) also keeps the state and any running timer, because no information is not good news.
    """

    def __init__(self, n_levels: int, n_channels: int, debounce_s: float,
                 release_s: float) -> None:
        self.debounce_s = float(debounce_s)
        self.release_s = float(release_s)
        shape = (n_levels, n_channels)
        self.active = np.zeros(shape, dtype=bool)
        self._raise_since_s = np.full(shape, np.nan)
        self._clear_since_s = np.full(shape, np.nan)
        self._unchanged = np.zeros(shape, dtype=bool)   # read-only "no level changed"
        self._unchanged.flags.writeable = False
        self._is_quiet = True

    def update(self, violated: ArrayLike, cleared: ArrayLike, known: ArrayLike,
               now_s: float) -> tuple[BoolArray, BoolArray]:
        """Advance to ``now_s``; return (raised, released) masks of the levels that changed.

        violated: value beyond the level; cleared: value back inside by the hysteresis;
        known: the value was measured (False keeps timers running). All (levels, channels).
        """
        violated = np.asarray(violated, dtype=bool)
        active = self.active
        if self._is_quiet and not violated.any():
            # nothing raised, nothing violated, no timer running: the arrays below would
            # come out as they are (the common case at every measurement; saves most of the
            # protection node's CPU at rest, issue 18)
            return self._unchanged, self._unchanged
        cleared = np.asarray(cleared, dtype=bool)
        if np.shape(known) != violated.shape:
            known = np.broadcast_to(np.asarray(known, dtype=bool), violated.shape)
        else:
            known = np.asarray(known, dtype=bool)
        # raise timer: starts at the first violation, stops on a known non-violation
        # a timer started "in the future" (the clock went back) restarts now, never waits
        self._raise_since_s[self._raise_since_s > now_s] = now_s
        self._clear_since_s[self._clear_since_s > now_s] = now_s
        pending = ~active & violated
        start = np.where(np.isnan(self._raise_since_s), now_s, self._raise_since_s)
        self._raise_since_s = np.where(pending, start,
                                       np.where(~active & ~known, self._raise_since_s, np.nan))
        raised = pending & (now_s - self._raise_since_s >= self.debounce_s)
        # clear timer: the mirror image, on the hysteresis band
        pending = active & cleared
        start = np.where(np.isnan(self._clear_since_s), now_s, self._clear_since_s)
        self._clear_since_s = np.where(pending, start,
                                       np.where(active & ~known, self._clear_since_s, np.nan))
        released = pending & (now_s - self._clear_since_s >= self.release_s)
        self.active = (active | raised) & ~released
        self._raise_since_s[raised] = np.nan
        self._clear_since_s[released] = np.nan
        self._note_quiet()
        return raised, released

    def _note_quiet(self) -> None:
        """Whether no level is raised and no timer runs (then a non-violation changes nothing)."""
        self._is_quiet = bool(not self.active.any() and np.isnan(self._raise_since_s).all()
                              and np.isnan(self._clear_since_s).all())

    @property
    def is_quiet(self) -> bool:
        """True while no level is raised and no timer runs."""
        return self._is_quiet

    def hold(self, level_index: int, mask: ArrayLike) -> None:
        """Raise one level at once on the channels of ``mask`` and stop their release timers.

        For a latched trip whose condition is back (or restored after a restart): it is
        present without a new debounce and must be gone for a full ``release_s`` again.
        """
        mask = np.asarray(mask, dtype=bool)
        self.active[level_index] |= mask
        self._raise_since_s[level_index][mask] = np.nan
        self._clear_since_s[level_index][mask] = np.nan
        self._note_quiet()

    def release_started_s(self, level_index: int, channel: int) -> float:
        """Since when a raised level has been inside its hysteresis band (NaN: it is not)."""
        return float(self._clear_since_s[level_index, channel])

    def force_clear(self, level_index: int, channel: int) -> None:
        """Drop one level of one channel and its timers (after a reset of its latched trip).

        A condition that returns afterwards is raised again after exactly ``debounce_s``.
        """
        self.active[level_index, channel] = False
        self._raise_since_s[level_index, channel] = np.nan
        self._clear_since_s[level_index, channel] = np.nan
        self._note_quiet()


def threshold_masks(values: ArrayLike, thresholds: ArrayLike, hysteresis: float, high: bool,
                    gate: ArrayLike | None = None) -> tuple[BoolArray, BoolArray, BoolArray]:
    """(violated, cleared, known) of each level for each value, shapes (levels, channels).

    High limits are violated at value >= threshold and cleared below threshold - hysteresis
    (low limits mirrored), as foxBMS sets on >= and clears on <. Where ``gate`` is False the
    limit does not apply (e.g. charge temperatures while not charging) and counts as cleared.
    """
    values = np.atleast_1d(np.asarray(values, dtype=float))[None, :]
    thresholds = np.asarray(thresholds, dtype=float)[:, None]
    known = np.isfinite(values)
    with np.errstate(invalid='ignore'):
        if high:
            violated = values >= thresholds
            cleared = values < thresholds - hysteresis
        else:
            violated = values <= thresholds
            cleared = values > thresholds + hysteresis
    violated = violated & known
    cleared = cleared & known
    if gate is not None:
        gate = np.asarray(gate, dtype=bool)
        if gate.ndim:      # (a scalar gate broadcasts by itself)
            gate = np.broadcast_to(gate, values.shape)
        violated = violated & gate
        cleared = cleared | ~gate
        known = known | ~gate
    shape = np.broadcast_shapes(violated.shape, thresholds.shape)
    # (broadcast only what is not yet of the full shape: np.broadcast_to costs ~10 us a call)
    return tuple(mask if mask.shape == shape else np.broadcast_to(mask, shape)
                 for mask in (violated, cleared, known))  # type: ignore[return-value]


class InverseTimeIntegrator:
    """Fraction of the time-current budget used (0 = cold, >= 1 = trip), like a relay's disc.

    Above the curve's first current the fraction grows by dt / t_allowed(I); below it, it
    decays to zero in ``curve_decay_s``. A NaN current holds the fraction.
    """

    def __init__(self, limit: TimeCurrentLimit, max_step_s: float = 1.0) -> None:
        self.limit = limit
        self.max_step_s = max_step_s  # a gap in measurements must not count as one long pulse
        self.fraction = 0.0
        self._last_s: float | None = None

    def update(self, current_a: float, now_s: float) -> float:
        """Integrate up to ``now_s`` with the magnitude ``current_a`` (A); return the fraction."""
        dt = 0.0 if self._last_s is None else min(max(now_s - self._last_s, 0.0),
                                                   self.max_step_s)
        self._last_s = now_s
        if not np.isfinite(current_a):
            return self.fraction
        allowed = float(self.limit.allowed_time_s(current_a))
        if np.isfinite(allowed):
            # capped at 1: after a trip the decay (the cool-down of the conductors) starts from 1
            self.fraction = min(1.0, self.fraction + dt / allowed)
        else:
            self.fraction = max(0.0, self.fraction - dt / self.limit.curve_decay_s)
        return self.fraction
