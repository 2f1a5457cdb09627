"""The full-screen view (bmsctl top): pack, limits, cells, temperatures, protection, events."""
from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from .words import (
    LEVEL_WORDS,
    LINE_WIDTH,
    STATE_NAMES,
    Latest,
    Message,
    contactor_text,
    finite,
    limit_name,
    num,
)


def bar(value: float | None, low: float, high: float, width: int) -> str:
    """A horizontal bar of ``width`` cells for ``value`` in [low, high] (blocks and dots)."""
    if value is None or not math.isfinite(value) or width <= 0:
        return '?' * max(width, 0)
    fraction = 0.0 if high <= low else min(1.0, max(0.0, (value - low) / (high - low)))
    full = int(round(fraction * width))
    return '#' * full + '.' * (width - full)


def cell_panel(measurement: Message, balancing: Message | None = None, width: int = LINE_WIDTH,
               bar_width: int = 12) -> list[str]:
    """Lines of the cell panel: a header with min/max/spread, then one bar per cell."""
    cells = list(measurement['cell_voltages_v'])
    valid = list(measurement.get('cell_voltage_valid') or [True] * len(cells))
    bleed = list((balancing or {}).get('cell_bleed') or [False] * len(cells))
    usable = [(i, float(v)) for i, v in enumerate(cells)
              if math.isfinite(v) and (i >= len(valid) or valid[i])]
    if not usable:
        return ['no valid cell voltage']
    low_i, low = min(usable, key=lambda item: item[1])
    high_i, high = max(usable, key=lambda item: item[1])
    mean = float(np.mean([v for _, v in usable]))
    lines = [f'min {low:.3f} V (cell {low_i})  max {high:.3f} V (cell {high_i})  '
             f'spread {1000 * (high - low):.0f} mV  mean {mean:.3f} V'
             + ('  stale' if measurement.get('cell_voltages_stale') else '')]
    # bars span the pack's own range (plus a margin) so the spread is visible
    margin = max(0.005, 0.25 * (high - low))
    lo, hi = low - margin, high + margin
    entries = []
    for i, v in enumerate(cells):
        ok = math.isfinite(v) and (i >= len(valid) or valid[i])
        mark = '*' if i < len(bleed) and bleed[i] else ' '
        value = f'{v:.3f}' if ok else ' NaN '
        entries.append(f'{i:3d} {value} {bar(v if ok else math.nan, lo, hi, bar_width)}{mark}')
    columns = max(1, min(4, (width + 2) // (len(entries[0]) + 2)))
    rows = math.ceil(len(entries) / columns)
    for r in range(rows):
        lines.append('  '.join(entries[c * rows + r] for c in range(columns)
                               if c * rows + r < len(entries)))
    return lines


def temperature_panel(measurement: Message, width: int = LINE_WIDTH) -> list[str]:
    """Lines of the temperature panel: min/max, then every sensor."""
    temps = list(measurement['temperatures_degc'])
    values = finite(temps)
    if not values:
        return ['no valid temperature']
    lines = [f'min {min(values):.1f} C  max {max(values):.1f} C  spread '
             f'{max(values) - min(values):.1f} K'
             + ('  stale' if measurement.get('temperatures_stale') else '')]
    entries = [f'T{i}: {num(t, "5.1f", "  NaN")}' for i, t in enumerate(temps)]
    per_line = max(1, (width + 2) // (len(entries[0]) + 2))
    for k in range(0, len(entries), per_line):
        lines.append('  '.join(entries[k:k + per_line]))
    return lines


def pack_panel(latest: Latest) -> list[str]:
    """Lines of the pack panel: state, request, reason, contactors, SoC, SoH, V, I."""
    lines = []
    state = latest.get('pack_state')
    if state is not None:
        lines.append(f'state {state.get("state_name")}  requested '
                     f'{STATE_NAMES.get(state.get("requested_state", -1), "?")}')
        if state.get('reason'):
            lines.append(f'reason: {state["reason"]}')
        commanded = state.get('commanded') or {}
        wanted = contactor_text({'negative_contactor_closed': commanded.get('negative_closed'),
                                 'precharge_relay_closed': commanded.get('precharge_closed'),
                                 'positive_contactor_closed': commanded.get('positive_closed')})
        lines.append(f'contactors: feedback {contactor_text(state)}, commanded {wanted}; '
                     f'link {num(state.get("link_voltage_v"), ".1f")} V')
    battery = latest.get('battery_state')
    estimate = latest.get('estimate')
    if battery is not None:
        lines.append(f'SoC {num(100 * battery["percentage"], ".1f")} %  '
                     f'{num(battery["voltage"], ".2f")} V  {num(battery["current"], "+.2f")} A')
    if estimate is not None:
        lines.append(f'SoH capacity {num(100 * estimate["soh_capacity"], ".1f")} %  '
                     f'resistance {num(estimate["soh_resistance"], ".2f")} x new  '
                     f'capacity {num(estimate["capacity_ah"], ".2f")} Ah  remaining '
                     f'{num(estimate["remaining_charge_ah"], ".2f")} Ah')
    return lines or ['waiting for pack_state, battery_state and estimate']


def limits_panel(latest: Latest) -> list[str]:
    """Lines of the current limits: the estimator's (short / long horizon), protection's."""
    lines = []
    estimate = latest.get('estimate')
    status = latest.get('protection_status')
    if estimate is not None:
        lines.append(f'estimate {num(estimate["horizon_short_s"], ".0f")} s: charge '
                     f'{num(estimate["charge_current_limit_a"], ".1f")} A, discharge '
                     f'{num(estimate["discharge_current_limit_a"], ".1f")} A')
        lines.append(f'estimate {num(estimate["horizon_long_s"], ".0f")} s: charge '
                     f'{num(estimate["charge_current_limit_long_a"], ".1f")} A, discharge '
                     f'{num(estimate["discharge_current_limit_long_a"], ".1f")} A')
    if status is not None:
        lines.append(f'allowed (protection): charge {num(status["charge_current_limit_a"], ".1f")}'
                     f' A, discharge {num(status["discharge_current_limit_a"], ".1f")} A')
    return lines or ['waiting for estimate and protection_status']


def protection_panel(status: Message | None) -> list[str]:
    """Lines of the protection panel: level, then every active level and latched trip."""
    if status is None:
        return ['waiting for protection_status']
    lines = [f'{LEVEL_WORDS.get(status["max_level"], "?")}'
             + ('  trip latched: reset with `bmsctl reset --reason ...`'
                if status.get('trip_latched') else '')]
    events = sorted(status.get('active') or (), key=lambda e: (-e['level'], limit_name(e)))
    for event in events:
        lines.append(f'{LEVEL_WORDS.get(event["level"], "?"):5} {limit_name(event)}: '
                     f'{event.get("message", "")}')
    return lines


def stamp_text(stamp: Message | None) -> str:
    """Local wall time hh:mm:ss of a builtin_interfaces/Time dict ('--:--:--' if zero)."""
    seconds = (stamp or {}).get('sec', 0) + 1e-9 * (stamp or {}).get('nanosec', 0)
    if seconds <= 0:
        return '--:--:--'
    return time.strftime('%H:%M:%S', time.localtime(seconds))


def events_panel(events: Sequence[Message], count: int = 8) -> list[str]:
    """The last ``count`` protection events, newest last, with their times."""
    if not events:
        return ['no protection event yet']
    lines = []
    for event in list(events)[-count:]:
        verb = 'raised' if event['active'] else 'cleared'
        level = LEVEL_WORDS.get(event['level'], '?')
        lines.append(f'{stamp_text(event.get("header", {}).get("stamp"))} '
                     f'{level:5} {verb:7} {event.get("message", "")}')
    return lines


def view_panels(latest: Latest, events: Sequence[Message] = (),
                width: int = LINE_WIDTH) -> list[tuple[str, list[str]]]:
    """(title, lines) of every panel of the full-screen view, top to bottom."""
    measurement = latest.get('measurement')
    panels = [('pack', pack_panel(latest)), ('current limits', limits_panel(latest))]
    if measurement is not None:
        panels.append(('cell voltages (* bleeding)',
                       cell_panel(measurement, latest.get('balancing_status'), width - 4)))
        panels.append(('temperatures', temperature_panel(measurement, width - 4)))
    else:
        panels.append(('cells and temperatures', ['waiting for measurement']))
    panels.append(('protection', protection_panel(latest.get('protection_status'))))
    panels.append(('recent events', events_panel(events)))
    return panels


def view_text(latest: Latest, events: Sequence[Message] = (), width: int = LINE_WIDTH) -> str:
    """The whole view as plain text (the view without rich, and its tests)."""
    out = []
    for title, lines in view_panels(latest, events, width):
        out.append(f'-- {title} ' + '-' * max(0, width - len(title) - 4))
        out += [line[:width] for line in lines]
    return '\n'.join(out)
