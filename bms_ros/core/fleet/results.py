"""What the batched replay takes and gives: its options, one bag's result, the carried state."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ReplayOptions:
    """Decimation of the estimator feed (s; fraction of the R0 step) and output sampling."""

    max_feed_s: float = 1.0
    rest_feed_s: float = 10.0              # after relax_s of rest
    relax_s: float = 0.0                   # > 0: feed at the load rate early in a rest
    step_fraction: float = 0.25
    sample_period_s: float = 10.0          # trajectory sampling of the estimate
    protection_windows: bool = True
    # a bag's capacity measurement is kept when its doubt from the two OCV reads is at most
    # this share of it (a rest on the LFP plateau: 3 mV is 3-15 points of SoC there)
    capacity_max_std: float = 0.02


@dataclass
class CarriedState:
    """What one bag hands to the next bag of the same pack (the estimator's learnt state)."""

    cell_soc: list[float]
    cell_capacity_ah: list[float]
    cell_capacity_std_ah: list[float]
    cell_r0_ohm: list[float]
    current_offset_a: float
    end_unix_s: float


@dataclass
class BagResult:
    """What the cores made of one bag; times unix s, SoC 0..1, A + = charging."""

    start_unix_s: float = math.nan
    end_unix_s: float = math.nan
    duration_s: float = 0.0
    measurements: int = 0
    fed: int = 0                            # measurements fed to the estimator
    evaluated: int = 0                      # measurements protection evaluated
    estimator_rejected: int = 0
    protection_rejected: int = 0
    t_s: list[float] = field(default_factory=list)            # since the first measurement
    pack_soc: list[float] = field(default_factory=list)
    cell_soc_start: list[float] = field(default_factory=list)  # after the start-up anchor
    cell_soc: list[float] = field(default_factory=list)       # at the end
    cell_soc_std: list[float] = field(default_factory=list)
    cell_capacity_ah: list[float] = field(default_factory=list)
    cell_capacity_std_ah: list[float] = field(default_factory=list)
    cell_r0_ohm: list[float] = field(default_factory=list)
    capacity_ah: float = math.nan                     # usable at the present imbalance
    current_offset_a: float = math.nan
    anchored_at_end: bool = False                     # the final rest re-anchored from OCV
    capacity_updates: list[int] = field(default_factory=list)
    # charge counted between the relaxed OCV of the initial and of the final rest / their
    # SoC change, per cell, and its doubt from the OCV reads (Ah; NaN without both rests,
    # below capacity_min_delta_soc or with a doubt over ReplayOptions.capacity_max_std)
    cell_capacity_measured_ah: list[float] = field(default_factory=list)
    cell_capacity_measured_std_ah: list[float] = field(default_factory=list)
    bleed_ah: list[float] = field(default_factory=list)      # charge bled per cell (Ah, >= 0)
    charge_ah: float = 0.0                            # charge counted (Ah, + = charged)
    throughput_ah: float = 0.0                        # |charge| moved
    cell_voltage_spread_v: float = math.nan           # at the end (rest)
    # dicts: t_s, limit_id, level, index...
    events: list[dict[str, Any]] = field(default_factory=list)
    final_trip_latched: bool = False
    wall_s: float = 0.0

    def trips(self) -> list[dict[str, Any]]:
        """The events that raised a trip (level 3, active)."""
        return [e for e in self.events if e['level'] == 3 and e['active']]

    def carried(self) -> CarriedState:
        """The state the next bag of this pack starts from."""
        return CarriedState(list(self.cell_soc), list(self.cell_capacity_ah),
                            list(self.cell_capacity_std_ah), list(self.cell_r0_ohm),
                            float(self.current_offset_a), float(self.end_unix_s))
