"""SoC-based balancing: a plan of charge to remove per cell, from the estimated cell SoC.

From the estimator's per-cell SoC (low-pass filtered) and capacity, a plan of charge to remove
is made: ``(soc_i - soc_min - stop_level) * capacity_i`` Ah for each cell whose excess over the
lowest cell is above ``soc_threshold`` (``stop_level = soc_threshold - soc_hysteresis``). Each
cell bleeds until its planned charge is removed (counted as V/R over the time it was commanded
on) or the live estimate says it has reached the stop level. This works on LFP's flat OCV
plateau, where a 5 % SoC spread shows as 1-2 mV.
"""
from __future__ import annotations

import logging
import math

import numpy as np
from numpy.typing import NDArray

from .config import BalancingConfig

log = logging.getLogger(__name__)


class SocStrategy:
    """The filtered cell SoC and the plan of charge still to remove."""

    def __init__(self, config: BalancingConfig, cells_series: int) -> None:
        self.config = config
        self.n = int(cells_series)
        self.soc_raw: NDArray[np.float64] | None = None        # last accepted cell SoC, 0..1
        self.soc_filtered: NDArray[np.float64] | None = None   # its first-order low-pass, 0..1
        self.capacity_ah: NDArray[np.float64] | None = None
        self.stamp_s = math.nan           # stamp of the last accepted estimate (NaN: none yet)
        self.plan_ah = np.zeros(self.n)   # charge still to remove per cell
        self.plan_active = False
        self._plan_done_s: float | None = None

    def take_estimate(self, soc: NDArray[np.float64], capacity_ah: NDArray[np.float64],
                      stamp_s: float) -> None:
        """Filter a validated estimate (cell SoC clipped to 0..1, capacity Ah, stamp s)."""
        tau = self.config.soc_filter_time_s
        if self.soc_filtered is None or tau <= 0.0:
            self.soc_filtered = soc.copy()
        elif stamp_s > self.stamp_s:  # a repeated or older stamp leaves the filter alone
            self.soc_filtered += (1.0 - math.exp(-(stamp_s - self.stamp_s) / tau)) * (
                soc - self.soc_filtered)
        self.soc_raw = soc
        self.capacity_ah = capacity_ah
        self.stamp_s = stamp_s

    def account(self, charge_ah: NDArray[np.float64]) -> None:
        """Count the charge bled per cell (Ah) against the plan."""
        if self.plan_active:
            self.plan_ah = np.maximum(self.plan_ah - charge_ah, 0.0)

    def clear_plan(self) -> None:
        """Drop the plan (mode changed or plan done)."""
        self.plan_ah = np.zeros(self.n)
        self.plan_active = False

    @property
    def wanted(self) -> NDArray[np.bool_]:
        """Cells with planned charge left to remove."""
        return self.plan_ah > 0.0

    def decide(self, now_s: float, soc_threshold: float, charge_removed_ah: NDArray[np.float64]
               ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Keep or make the plan of charge to remove; (excess SoC, priority Ah)."""
        cfg = self.config
        soc, capacity = self.soc_filtered, self.capacity_ah
        assert soc is not None and capacity is not None, 'decide() before take_estimate()'
        if not cfg.estimate_includes_bleed:
            soc = soc - charge_removed_ah / capacity
        excess = soc - soc.min()
        stop_level = soc_threshold - cfg.soc_hysteresis
        if self.plan_active:
            # the live estimate has a say too: a cell already at the stop level is done
            self.plan_ah[excess <= stop_level] = 0.0
            if not np.any(self.plan_ah > 0.0):
                self.clear_plan()
                self._plan_done_s = now_s
        ready = self._plan_done_s is None or now_s - self._plan_done_s >= cfg.soc_replan_delay_s \
            or now_s < self._plan_done_s
        if not self.plan_active and ready and excess.max() > soc_threshold:
            self.plan_ah = np.where(excess > soc_threshold,
                                    (excess - stop_level) * capacity, 0.0)
            self.plan_active = True
            log.info('balancing plan: remove %s Ah', np.round(self.plan_ah, 4).tolist())
        return excess, self.plan_ah.copy()
