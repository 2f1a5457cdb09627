"""State of health per cell, vectorised over cells: capacity (and R0, re-exported).

:class:`CapacityEstimator`: charge counted between two OCV anchors and between SoC pairs of
the filter (see its docstring). It is the one owner of each cell's capacity (value, variance):
the filter (:mod:`.soc_filter`) holds a mirror, written only from here via
:func:`.anchors.push_capacity`; the estimate reports this one.

:class:`ResistanceEstimator` (R0 by recursive least squares on current steps) lives with its
temperature law in :mod:`.resistance` and is re-exported here for existing importers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..ocv import FloatOrArray
from .resistance import ResistanceEstimator

if TYPE_CHECKING:
    from ..cell import CellSpec
    from .config import EstimatorConfig

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = ['CapacityEstimator', 'ResistanceEstimator']

PAIR_GATE_SIGMA = 3.0       # a pair this many standard deviations off the estimate is dropped
PAIR_REVERSAL_SOC = 0.02    # the SoC has turned back this far: the last extreme was a turning point


class CapacityEstimator:
    """Per-cell capacity (Ah) from the charge counted between two OCV anchors.

    An anchor is a SoC read from the relaxed OCV (after ``rest_time_s`` at rest, or at start-up
    after the pack was off) with its standard deviation (OCV noise / OCV slope). Between two
    anchors the counted charge dQ (Ah, offset-corrected) and the SoC change dz give one
    measurement Q = dQ / dz whose variance follows from both anchors' doubts and the current
    sensor's; it is fused with the present estimate by inverse-variance weighting (a scalar
    Kalman update with a slow random walk for ageing). Pairs with |dz| < ``capacity_min_delta_soc``
    carry too little information and are skipped. This uses only OCV and counted charge, so the
    ECM's error under load never leaks into the capacity; on LFP's flat plateau the anchors'
    doubts are large and the pairs are weighted down or skipped by themselves.
    """

    def __init__(self, cell: CellSpec, n_cells: int, config: EstimatorConfig) -> None:
        self.cell = cell
        self.config = config
        self.n = int(n_cells)
        self.capacity_ah = np.full(self.n, cell.capacity_ah)
        self.variance = np.full(self.n, (config.initial_capacity_std * cell.capacity_ah) ** 2)
        # no anchor or pair measured yet, nor a capacity restored: the datasheet's prior holds
        self.from_datasheet = np.ones(self.n, dtype=bool)
        self.anchor_soc = np.full(self.n, np.nan)
        self.anchor_var = np.full(self.n, np.nan)
        self.counted_ah = np.zeros(self.n)
        self.counted_var = np.zeros(self.n)       # Ah^2: current noise (random walk)
        self.offset_doubt_ah = np.zeros(self.n)   # Ah: an offset doubt adds up linearly
        self.counted_time_s = np.zeros(self.n)
        # d capacity / d current offset (Ah per A): a capacity learnt from charge counted with
        # an offset error carries that error, so the two doubts are correlated
        self.offset_sensitivity_h = np.zeros(self.n)
        self.updates = np.zeros(self.n, dtype=np.int64)
        # SoC pairs (see :meth:`pair`): the reference point and the charge counted since it
        self.pair_soc = np.full(self.n, np.nan)
        self.pair_var = np.full(self.n, np.nan)
        self.pair_share = np.zeros(self.n)       # cov(SoC, capacity_inverse) / its variance
        self.cand_soc = np.full(self.n, np.nan)  # the point farthest from the reference
        self.cand_var = np.full(self.n, np.nan)
        self.cand_share = np.zeros(self.n)
        self.cand_counted_ah = np.zeros(self.n)  # the since-reference sums at the candidate
        self.cand_counted_var = np.zeros(self.n)
        self.cand_offset_doubt_ah = np.zeros(self.n)
        self.cand_time_s = np.zeros(self.n)
        self.pair_counted_ah = np.zeros(self.n)
        self.pair_counted_var = np.zeros(self.n)
        self.pair_offset_doubt_ah = np.zeros(self.n)
        self.pair_time_s = np.zeros(self.n)
        self.pair_updates = np.zeros(self.n, dtype=np.int64)

    def set(self, capacity_ah: ArrayLike, capacity_std_ah: ArrayLike | None = None) -> None:
        """Restore values (persisted state), clamped to the configured ratio window."""
        cap = np.broadcast_to(np.asarray(capacity_ah, dtype=float), (self.n,))
        nominal = self.cell.capacity_ah
        self.capacity_ah = np.clip(np.where(np.isfinite(cap), cap, nominal),
                                   self.config.capacity_min_ratio * nominal,
                                   self.config.capacity_max_ratio * nominal)
        self.offset_sensitivity_h = np.zeros(self.n)
        self.from_datasheet[:] = False
        if capacity_std_ah is not None:
            std = np.broadcast_to(np.asarray(capacity_std_ah, dtype=float), (self.n,))
            default = self.config.initial_capacity_std * nominal
            self.variance = np.where(np.isfinite(std) & (std > 0), std, default) ** 2

    @property
    def std_ah(self) -> FloatArray:
        """Standard deviation of the capacity per cell (Ah)."""
        return np.sqrt(self.variance)

    def count(self, dt_s: float, current_a: FloatOrArray, current_std_a: float,
              offset_std_a: FloatOrArray) -> None:
        """Add the charge of one step (A, + = charging) and its doubt; ages the estimate."""
        self.counted_ah += current_a * dt_s / 3600.0
        # sensor noise averages out (random walk); an offset doubt adds up linearly
        self.counted_var += (current_std_a * dt_s / 3600.0) ** 2
        self.offset_doubt_ah += offset_std_a * dt_s / 3600.0
        self.counted_time_s += dt_s
        if self.config.capacity_from_pairs:
            self.pair_counted_ah += current_a * dt_s / 3600.0
            self.pair_counted_var += (current_std_a * dt_s / 3600.0) ** 2
            self.pair_offset_doubt_ah += offset_std_a * dt_s / 3600.0
            self.pair_time_s += dt_s
        self.variance += (self.config.capacity_noise_per_sqrt_s * self.cell.capacity_ah) ** 2 * dt_s

    def _fuse(self, use: BoolArray, dz: FloatArray, counted_ah: FloatArray,
              counted_var: FloatArray, offset_ah: FloatArray, time_s: FloatArray,
              end_var: FloatArray, frozen: bool = False) -> BoolArray:
        """One measurement Q = counted / dz per cell in ``use`` fused with the estimate.

        This is the recursive weighted total least squares of ``counted = Q dz`` (both sides
        uncertain) with the weight frozen at the present estimate: the pair weighs
        dz^2 / (Q^2 var(dz) + var(counted)), the prior weighs 1 / variance (Plett's AWTLS
        with one pair at a time; ageing is the random walk of :meth:`count`, not a fading
        factor). ``frozen``: the weight at the present estimate (pairs; a pair whose SoC
        change is mostly the count's can measure nonsense, which must not weigh itself);
        else at the measured value (anchors). Returns the mask of cells whose capacity
        changed.
        """
        dz_u = np.where(use, dz, 1.0)
        measured = counted_ah / dz_u
        # a measurement outside the plausible window is a pair gone wrong: skip it
        nominal = self.cell.capacity_ah
        use = use & (measured > self.config.capacity_min_ratio * nominal) & \
            (measured < self.config.capacity_max_ratio * nominal)
        if not use.any():
            return use
        weight_q = self.capacity_ah if frozen else measured
        prior_var = self._prior_var(measured)
        if frozen:
            # a pair far outside both doubts is a pair gone wrong (the filter sure but off)
            doubt = (weight_q ** 2 * end_var + counted_var + offset_ah ** 2) / dz_u ** 2
            use &= (measured - self.capacity_ah) ** 2 <= PAIR_GATE_SIGMA ** 2 * (
                doubt + prior_var)
            if not use.any():
                return use
        # frozen: the weight once more at the fused value (two steps of iterated WTLS)
        for _ in range(2 if frozen else 1):
            meas_var = (weight_q ** 2 * end_var + counted_var + offset_ah ** 2) / dz_u ** 2
            gain = np.where(use, prior_var / (prior_var + meas_var), 0.0)
            weight_q = self.capacity_ah + gain * (np.where(use, measured, 0.0)
                                                  - np.where(use, self.capacity_ah, 0.0))
        self.capacity_ah = self.capacity_ah + gain * (np.where(use, measured, 0.0)
                                                      - np.where(use, self.capacity_ah, 0.0))
        self.variance = np.where(use, (1.0 - gain) * prior_var, self.variance)
        self.from_datasheet &= ~use
        # counted = sum (i - offset) dt: d measured / d offset = -time / dz
        self.offset_sensitivity_h = (1.0 - gain) * self.offset_sensitivity_h \
            + gain * (-time_s / 3600.0 / dz_u)
        return use

    def _prior_var(self, measured: FloatArray) -> FloatArray:
        """The estimate's variance as a prior for ``measured`` (Ah per cell). Where it is still
        the datasheet's (no anchor, pair or restored capacity) and the measurement is below it,
        the doubt below is ``capacity_fade_std``: a cell met for the first time may have aged
        anywhere down to its end of life, but hardly holds more than its datasheet says
        (a split normal prior; its posterior's mode lies on the measurement's side).
        """
        cfg = self.config
        extra = (max(cfg.capacity_fade_std ** 2 - cfg.initial_capacity_std ** 2, 0.0)
                 * self.cell.capacity_ah ** 2)
        if extra == 0.0:
            return self.variance
        below = self.from_datasheet & (measured < self.capacity_ah)
        out: FloatArray = np.where(below, self.variance + extra, self.variance)
        return out

    def pair(self, soc: FloatArray, soc_var: FloatArray, cells: ArrayLike,
             soc_capacity_cov: FloatArray, capacity_inverse: FloatArray,
             capacity_inverse_var: FloatArray) -> BoolArray:
        """A confident SoC of the filter (``soc_var`` its variance) on the cells in mask.

        Only points where the filter is sure *and* the OCV is steep are passed in (the caller
        decides). Pairs run from one turning point of the SoC to the next: the first point is
        the reference, the point farthest from it the candidate; once the SoC has turned back
        by ``PAIR_REVERSAL_SOC`` from a candidate at least ``capacity_pair_min_delta_soc``
        away, reference and candidate give one capacity measurement (see :meth:`_fuse`) and
        the candidate becomes the reference.

        The filter's SoC is partly counted with the present capacity, so its change is pulled
        toward counted / capacity. ``soc_capacity_cov`` (the filter's cov(SoC error,
        capacity_inverse error)), ``capacity_inverse`` (nominal / capacity, as the filter counts
        with it) and its variance undo that: with beta the change of cov / var(capacity_inverse)
        between the two points (the share of the SoC change that came from counting, per unit
        of capacity_inverse), Q = (counted - beta Q_nominal) / (dz - beta capacity_inverse),
        and the ends' doubts are those left given the capacity. Returns the mask of cells
        whose capacity changed (the caller then resets the filter's covariance with it).
        """
        changed = np.zeros(self.n, dtype=bool)
        cells = np.asarray(cells, dtype=bool) & np.isfinite(soc) & self.config.estimate_capacity
        if not cells.any():
            return changed
        var_q = np.maximum(capacity_inverse_var, 1e-12)
        share = soc_capacity_cov / var_q
        # the SoC doubt left once the capacity is given
        var = np.maximum(soc_var - soc_capacity_cov ** 2 / var_q, 0.1 * soc_var)
        start = cells & ~np.isfinite(self.pair_soc)
        if start.any():
            self._set_reference(start, soc, var, share)
        dz = soc - self.pair_soc
        farther = cells & ~start & (~np.isfinite(self.cand_soc)
                                    | (np.abs(dz) > np.abs(self.cand_soc - self.pair_soc)))
        if farther.any():
            self.cand_soc = np.where(farther, soc, self.cand_soc)
            self.cand_var = np.where(farther, var, self.cand_var)
            self.cand_share = np.where(farther, share, self.cand_share)
            for name in self._SINCE:
                setattr(self, 'cand_' + name, np.where(farther, getattr(self, 'pair_' + name),
                                                       getattr(self, 'cand_' + name)))
        dz_cand = self.cand_soc - self.pair_soc
        use = cells & ~farther & np.isfinite(dz_cand) \
            & (np.abs(soc - self.cand_soc) >= PAIR_REVERSAL_SOC) \
            & (np.abs(dz_cand) >= self.config.capacity_pair_min_delta_soc)
        if not use.any():
            return changed
        beta = self.cand_share - self.pair_share
        dz_left = np.where(use, dz_cand - beta * capacity_inverse, 1.0)
        counted = self.cand_counted_ah - beta * self.cell.capacity_ah
        # what is left of the change after the count's share must still say something
        inform = use & (np.abs(dz_left) >= 0.25 * self.config.capacity_pair_min_delta_soc)
        changed = self._fuse(inform, dz_left, counted, self.cand_counted_var,
                             self.cand_offset_doubt_ah, self.cand_time_s,
                             self.pair_var + self.cand_var, frozen=True)
        self.pair_updates += changed
        # the candidate becomes the reference, the charge since it carried over
        for name in self._SINCE:
            setattr(self, 'pair_' + name, np.where(
                use, getattr(self, 'pair_' + name) - getattr(self, 'cand_' + name),
                getattr(self, 'pair_' + name)))
        # the filter's SoC moves with the new capacity (anchors.push_capacity): so does the new
        # reference, counted with the same old capacity (its share of the capacity error)
        d_qinv = np.where(changed, self.cell.capacity_ah / self.capacity_ah - capacity_inverse, 0.0)
        self.pair_soc = np.where(use, self.cand_soc + self.cand_share * d_qinv, self.pair_soc)
        self.pair_var = np.where(use, self.cand_var, self.pair_var)
        self.pair_share = np.where(use, self.cand_share, self.pair_share)
        self.cand_soc = np.where(use, np.nan, self.cand_soc)
        # set_capacity zeroes the filter's covariance now: shares are counted from here
        self.pair_share = np.where(changed, self.pair_share - share, self.pair_share)
        return changed

    _SINCE = ('counted_ah', 'counted_var', 'offset_doubt_ah', 'time_s')

    def _set_reference(self, cells: BoolArray, soc: FloatArray, var: FloatArray,
                       share: FloatOrArray) -> None:
        """Start the pairs of the cells in mask from this point (no candidate yet)."""
        self.pair_soc = np.where(cells, soc, self.pair_soc)
        self.pair_var = np.where(cells, var, self.pair_var)
        self.pair_share = np.where(cells, share, self.pair_share)
        self.cand_soc = np.where(cells, np.nan, self.cand_soc)
        for name in self._SINCE:
            setattr(self, 'pair_' + name, np.where(cells, 0.0, getattr(self, 'pair_' + name)))

    def anchor(self, soc: FloatOrArray, soc_std: FloatOrArray, cells: ArrayLike) -> BoolArray:
        """An OCV anchor of the cells in mask; returns the mask of cells whose capacity changed."""
        cells = np.asarray(cells, dtype=bool) & np.isfinite(soc)
        soc = np.where(cells, soc, np.nan)
        var = np.asarray(soc_std, dtype=float) ** 2
        dz = soc - self.anchor_soc
        offset_ah = self.offset_doubt_ah
        use = cells & np.isfinite(dz) & (np.abs(dz) >= self.config.capacity_min_delta_soc) \
            & self.config.estimate_capacity
        changed = np.zeros(self.n, dtype=bool)
        if use.any():
            changed = self._fuse(use, dz, self.counted_ah, self.counted_var, offset_ah,
                                 self.counted_time_s, self.anchor_var + var)
            self.updates += changed
        # the new anchor replaces the old one unless the old one, carried forward by counting,
        # is still the better reference (e.g. a rest on LFP's plateau after a rest when full)
        carried_var = self.anchor_var + (self.counted_var + offset_ah ** 2) / self.capacity_ah ** 2
        replace = cells & (changed | ~np.isfinite(self.anchor_soc) | (var <= carried_var))
        self.anchor_soc = np.where(replace, soc, self.anchor_soc)
        self.anchor_var = np.where(replace, var, self.anchor_var)
        self.counted_ah = np.where(replace, 0.0, self.counted_ah)
        self.counted_var = np.where(replace, 0.0, self.counted_var)
        self.offset_doubt_ah = np.where(replace, 0.0, offset_ah)
        self.counted_time_s = np.where(replace, 0.0, self.counted_time_s)
        # an anchor is a confident point too: the pairs start from it, so no charge interval
        # is measured twice (once between anchors and once by a pair over it)
        self._set_reference(replace, soc, var, np.nan)      # its share: see fill_pair_share
        return changed

    def fill_pair_share(self, soc_capacity_cov: FloatArray,
                        capacity_inverse_var: FloatArray) -> None:
        """The filter's cov(SoC, capacity_inverse) / var(capacity_inverse) at an anchor just
        taken (after its updates): the pairs' reference share (see :meth:`pair`).
        """
        share = soc_capacity_cov / np.maximum(capacity_inverse_var, 1e-12)
        self.pair_share = np.where(np.isnan(self.pair_share), share, self.pair_share)

    def recount_offset(self, d_offset_a: FloatArray, offset_std_a: FloatArray) -> None:
        """The charge counted since the references (last anchor, pair reference, candidate)
        with an offset now known to be ``d_offset_a`` (A) more: less by it x the time counted;
        the offset doubt of that charge now ``offset_std_a`` (A) x that time.
        """
        for prefix, time_name in (('', 'counted_time_s'), ('pair_', 'pair_time_s'),
                                  ('cand_', 'cand_time_s')):
            hours = getattr(self, time_name) / 3600.0
            name = prefix + 'counted_ah'
            setattr(self, name, getattr(self, name) - d_offset_a * hours)
            setattr(self, prefix + 'offset_doubt_ah', offset_std_a * hours)

    def joint(self, cells: BoolArray, capacity_ah: FloatArray, std_ah: FloatArray) -> None:
        """The filter's joint update moved the capacity of the cells in mask (its mirror is
        the estimate there): take its value and doubt.
        """
        if not cells.any():
            return
        self.capacity_ah = np.where(cells, capacity_ah, self.capacity_ah)
        self.variance = np.where(cells, std_ah ** 2, self.variance)

    def forget_anchor(self, cells: ArrayLike | None = None) -> None:
        """Drop the last anchor (SoC set by hand, a gap in the data)."""
        mask = np.ones(self.n, dtype=bool) if cells is None else np.asarray(cells, dtype=bool)
        self.anchor_soc[mask] = np.nan
        self.pair_soc[mask] = np.nan
