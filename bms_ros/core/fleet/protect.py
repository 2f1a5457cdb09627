"""Protection in the batched replay: the node's Protection over the screen's windows.

Protection runs, on every measurement and its status-period timeouts as in the node, only in
the windows ``screen.protection_windows`` gives (or over the whole bag), each window with a
fresh Protection sharing one TripLatch (a latched trip stays latched).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from ..profile import Profile
from ..protection import LEVEL_NAMES, Event, Protection, TripLatch, load_protection_config
from .results import BagResult, ReplayOptions
from .rows import Columns, row, to_measurement
from .screen import hot_masks, protection_windows


def protect(result: BagResult, columns: Columns, t_s: NDArray[np.float64], profile: Profile,
            options: ReplayOptions) -> None:
    """Protection over the windows (or the whole bag) as the offline replay runs it; the
    events, counts and final latch into ``result``.
    """
    pconfig = load_protection_config(profile.section('protection'), profile.pack)
    n = len(t_s)
    if options.protection_windows:
        windows = protection_windows(t_s, hot_masks(columns, t_s, pconfig), pconfig)
    else:
        windows = [(0, n - 1)]
    latch = TripLatch(None)
    t0 = float(t_s[0])
    for first, last in windows:
        protection = Protection(pconfig, profile.pack.cells_series,
                                profile.pack.temperature_sensors, latch, now_s=float(t_s[first]))
        next_status = float(t_s[first]) + pconfig.status_period_s
        for k in range(first, last + 1):
            now = float(t_s[k])
            while next_status < now:
                events = protection.check_timeout(next_status)
                _record(result, events, next_status, t0)
                next_status += pconfig.status_period_s
            view = row(columns, k, float(columns['pack_current_a'][k]))
            events = protection.evaluate(to_measurement(view), now)
            _record(result, events, now, t0)
            result.evaluated += 1
        result.protection_rejected += int(protection.measurements_rejected)
    result.final_trip_latched = bool(latch.trips)


def _record(result: BagResult, events: Iterable[Event], now_s: float, t0: float) -> None:
    for e in events:
        stamp = e.stamp_s or now_s
        result.events.append({
            't_s': stamp - t0, 'limit_id': e.limit_id, 'level': int(e.level),
            'level_name': LEVEL_NAMES[e.level], 'index': int(e.index), 'value': float(e.value),
            'threshold': float(e.threshold), 'unit': e.unit, 'active': bool(e.active),
            'latched': bool(e.latched), 'message': e.message})
