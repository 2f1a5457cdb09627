"""Staleness of an assembled measurement: which elements are too old, which groups read stale.

:func:`assemble` turns the decoder's per-element values and receive stamps into an
:class:`AssembledMeasurement`: an element older than ``stale_timeout_s`` is invalid (NaN /
false), a group (``can_mapping_model.GROUPS``, named as PackMeasurement's ``*_stale`` /
``*_stamp`` fields) is stale if any of its mapped elements is, and its stamp is the oldest of
them. A flag that is not 0 or 1 is unknown, and unknown contactor feedback is never "open".
"""
from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .can_mapping_model import GROUPS, MEASUREMENT_FIELDS
from .measurement import Measurement


@dataclass
class AssembledMeasurement(Measurement):
    """A :class:`Measurement` from the assembler (stamps: receive times, s, on the caller's
    clock) with the driver's diagnostics, which are not in PackMeasurement.
    """

    balancing_stale: bool = True
    stale_groups: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    counter_stale: tuple[str, ...] = ()      # messages marked stale by their rolling counter
    # {device: {reason: count}}
    device_counts: dict[str, dict[str, int]] = field(default_factory=dict)


def assemble(values: Mapping[str, NDArray[np.float64]], stamps: Mapping[str, NDArray[np.float64]],
             mapped_fields: Collection[str], now_s: float, stale_timeout_s: float, *,
             counts: dict[str, int], device_counts: dict[str, dict[str, int]], received: int,
             rejected: int, counter_stale: tuple[str, ...]) -> AssembledMeasurement:
    """The measurement at ``now_s`` (s) from per-field ``values`` and receive ``stamps`` (s, the
    same clock; -inf: never); ``mapped_fields``: the fields a signal provides.
    """
    oldest = now_s - stale_timeout_s
    out: dict[str, Any] = {}
    fresh: dict[str, Any] = {}
    for name, (kind, _) in MEASUREMENT_FIELDS.items():
        ok = stamps[name] >= oldest
        fresh[name] = ok
        v = values[name]
        valid = ok & np.isfinite(v)
        if kind == 'bool':
            out[name] = valid & (v > 0.5)
        else:
            out[name] = np.where(valid, v, np.nan)
        out[name + '#valid'] = valid
    stale: dict[str, bool] = {}
    group_stamp: dict[str, float] = {}
    for group, names in GROUPS.items():
        mapped = [n for n in names if n in mapped_fields]
        if not mapped:
            stale[group] = True
            group_stamp[group] = math.nan
            continue
        # a flag that is not 0 or 1 is unknown, and unknown feedback is never "open"
        stale[group] = not all(bool(fresh[n].all()) and (MEASUREMENT_FIELDS[n][0] != 'bool'
                                                         or bool(out[n + '#valid'].all()))
                               for n in mapped)
        all_stamps = np.concatenate([stamps[n] for n in mapped])
        first = float(all_stamps.min())
        group_stamp[group] = first if math.isfinite(first) else math.nan
    return AssembledMeasurement(
        cell_voltages_v=out['cell_voltages_v'],
        cell_voltage_valid=out['cell_voltages_v#valid'],
        temperatures_degc=out['temperatures_degc'],
        temperature_valid=out['temperatures_degc#valid'],
        pack_current_a=float(out['pack_current_a'][0]),
        pack_voltage_v=float(out['pack_voltage_v'][0]),
        link_voltage_v=float(out['link_voltage_v'][0]),
        negative_contactor_closed=bool(out['negative_contactor_closed'][0]),
        positive_contactor_closed=bool(out['positive_contactor_closed'][0]),
        precharge_relay_closed=bool(out['precharge_relay_closed'][0]),
        cell_balancing=out['cell_balancing'],
        cell_voltages_stamp=group_stamp['cell_voltages'],
        temperatures_stamp=group_stamp['temperatures'],
        current_stamp=group_stamp['current'],
        cell_voltages_stale=stale['cell_voltages'],
        temperatures_stale=stale['temperatures'],
        current_stale=stale['current'],
        contactors_stale=stale['contactors'],
        frames_received=received,
        frames_rejected=rejected,
        balancing_stale=stale['balancing'],
        stale_groups=tuple(g for g in GROUPS if stale[g] and any(
            n in mapped_fields for n in GROUPS[g])),
        counts=counts, counter_stale=counter_stale, device_counts=device_counts,
        charger_present=bool(out['charger_present'][0]),
        charger_present_valid=bool(out['charger_present#valid'][0]))
