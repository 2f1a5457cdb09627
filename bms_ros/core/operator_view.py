"""Operator texts: the status line, the full-screen view's panels and the replies of bmsctl.

Pure functions from messages-as-dicts (the bms_interfaces / sensor_msgs field names; nested
messages as dicts, arrays as lists) to text, so they are tested without ROS. ``latest`` maps a
topic name (TOPIC_SOURCES) to the latest message dict of that topic, or None.
docs/operator.md explains every field.
"""
import math
import time

import numpy as np

LINE_WIDTH = 80                      # columns of the default status line
LEVEL_WORDS = {0: 'ok', 1: 'WARN', 2: 'ALARM', 3: 'TRIP'}
STATE_NAMES = {0: 'OFF', 1: 'STANDBY', 2: 'PRECHARGE', 3: 'DRIVE', 4: 'CHARGE', 5: 'ERROR'}

# topic -> the node that publishes it (named when a topic is missing)
TOPIC_SOURCES = {
    'pack_state': 'pack_supervisor',
    'battery_state': 'state_estimator',
    'estimate': 'state_estimator',
    'measurement': 'can_driver',
    'protection_status': 'protection',
    'balancing_status': 'balancing',
}


def _finite(values):
    return [float(v) for v in values or () if v is not None and math.isfinite(v)]


def _num(value, spec, missing='n/a'):
    return format(value, spec) if value is not None and math.isfinite(value) else missing


def limit_name(event):
    """'cell_overvoltage[3]' of an event dict (no index for a pack-wide one)."""
    index = event.get('index', -1)
    return event['limit_id'] + (f'[{index}]' if index is not None and index >= 0 else '')


def contactor_text(state):
    """Feedback of the three contactors of a pack_state dict: 'NEG+POS closed', 'all open'."""
    closed = [name for name, key in (('NEG', 'negative_contactor_closed'),
                                     ('PRE', 'precharge_relay_closed'),
                                     ('POS', 'positive_contactor_closed')) if state.get(key)]
    return '+'.join(closed) + ' closed' if closed else 'all open'


# ----------------------------------------------------------------------------- status line

def _state(latest):
    state = latest.get('pack_state')
    return None if state is None else f'{state.get("state_name") or "?":<9}'


def _soc(latest):
    battery = latest.get('battery_state')
    return None if battery is None else f'SoC {_num(100 * battery["percentage"], ".1f")}%'


def _current(latest):
    battery = latest.get('battery_state')
    return None if battery is None else f'{_num(battery["current"], "+.1f")}A'


def _voltage(latest):
    battery = latest.get('battery_state')
    return None if battery is None else f'{_num(battery["voltage"], ".1f")}V'


def _measured(field, text, missing):
    """A field formatter of the measurement's finite ``field`` values: ``text(values)``, or
    ``missing`` when none is finite; None before a measurement arrived.
    """
    def field_text(latest):
        measurement = latest.get('measurement')
        if measurement is None:
            return None
        values = _finite(measurement[field])
        return text(values) if values else missing
    return field_text


_cells = _measured('cell_voltages_v', lambda v: f'{min(v):.3f}-{max(v):.3f}V', 'cells n/a')
_spread = _measured('cell_voltages_v', lambda v: f'spread {1000 * (max(v) - min(v)):.0f}mV',
                    'spread n/a')
_tmax = _measured('temperatures_degc', lambda v: f'T {max(v):.1f}C', 'T n/a')
_tmin = _measured('temperatures_degc', lambda v: f'Tmin {min(v):.1f}C', 'Tmin n/a')


def _limits(latest):
    status = latest.get('protection_status')
    if status is None:
        return None
    return (f'lim +{_num(status["charge_current_limit_a"], ".0f", "?")}'
            f'/-{_num(status["discharge_current_limit_a"], ".0f", "?")}A')


def _soh(latest):
    estimate = latest.get('estimate')
    return None if estimate is None else f'SoH {_num(100 * estimate["soh_capacity"], ".0f")}%'


def _contactors(latest):
    state = latest.get('pack_state')
    return None if state is None else contactor_text(state)


def _requested(latest):
    state = latest.get('pack_state')
    if state is None:
        return None
    return f'req {STATE_NAMES.get(state.get("requested_state"), "?")}'


def _balancing(latest):
    balancing = latest.get('balancing_status')
    if balancing is None:
        return None
    bleeding = sum(1 for b in balancing.get('cell_bleed') or () if b)
    return f'bal {bleeding} cells' if bleeding else 'bal idle'


def _reason(latest):
    state = latest.get('pack_state')
    return None if state is None or not state.get('reason') else state['reason']


def protection_summary(status, width=None):
    """'ok', or the highest level with the limits at it: 'TRIP cell_overvoltage[3] +1'.

    ``width``: at most this many characters (names beyond it become '+N').
    """
    level = status['max_level']
    word = LEVEL_WORDS.get(level, str(level))
    if not level:
        return word
    names = []
    for event in sorted(status.get('active') or (), key=lambda e: (e['limit_id'], e['index'])):
        if event['level'] == level and limit_name(event) not in names:
            names.append(limit_name(event))
    text = word
    for k, name in enumerate(names):
        rest = len(names) - k - 1
        candidate = f'{text} {name}' if k == 0 else f'{text},{name}'
        more = f' +{rest}' if rest else ''
        if width is not None and len(candidate + more) > width:
            return f'{text} +{len(names) - k}' if len(f'{text} +{len(names) - k}') <= width \
                else word
        text = candidate
    return text


def _runtime(latest):
    from .energy.text import runtime_text  # issue 16: time to empty / full
    return runtime_text(latest.get('estimate'))


def _protection(latest, width=None):
    status = latest.get('protection_status')
    return None if status is None else protection_summary(status, width)


# name -> (topics it needs, formatter); the order is the order on the line
FIELDS = {
    'state': (('pack_state',), _state),
    'soc': (('battery_state',), _soc),
    'current': (('battery_state',), _current),
    'voltage': (('battery_state',), _voltage),
    'cells': (('measurement',), _cells),
    'spread': (('measurement',), _spread),
    'tmax': (('measurement',), _tmax),
    'tmin': (('measurement',), _tmin),
    'limits': (('protection_status',), _limits),
    'soh': (('estimate',), _soh),
    'runtime': (('estimate',), _runtime),
    'contactors': (('pack_state',), _contactors),
    'requested': (('pack_state',), _requested),
    'balancing': (('balancing_status',), _balancing),
    'protection': (('protection_status',), _protection),
    'reason': (('pack_state',), _reason),
}
DEFAULT_FIELDS = ('state', 'soc', 'current', 'cells', 'tmax', 'limits', 'protection')
# a line too long for its width drops these first, so a trip's names stay readable
DROP_ORDER = ('reason', 'balancing', 'requested', 'contactors', 'tmin', 'spread', 'soh',
              'runtime', 'voltage', 'limits', 'tmax', 'current')
PROTECTION_MIN_WIDTH = 28     # columns the protection field keeps before fields are dropped
WIDE_FIELDS = ('state', 'requested', 'soc', 'soh', 'runtime', 'current', 'voltage', 'cells',
               'spread', 'tmin', 'tmax', 'limits', 'contactors', 'balancing', 'protection',
               'reason')


def parse_fields(text):
    """Field names from 'state,soc,...' (ValueError naming an unknown one)."""
    names = tuple(name.strip() for name in text.split(',') if name.strip())
    unknown = [name for name in names if name not in FIELDS]
    if unknown or not names:
        raise ValueError(f'unknown field(s) {", ".join(unknown) or "(none given)"}; known: '
                         f'{", ".join(FIELDS)}')
    return names


def needed_topics(fields):
    """Topics the fields read, in TOPIC_SOURCES order."""
    wanted = {topic for name in fields for topic in FIELDS[name][0]}
    return [topic for topic in TOPIC_SOURCES if topic in wanted]


def missing_text(latest, fields):
    """'' when every topic the fields need has arrived, else what is missing and from whom."""
    missing = [f'{topic} (from {TOPIC_SOURCES[topic]})' for topic in needed_topics(fields)
               if latest.get(topic) is None]
    return ', '.join(missing)


def status_line(latest, fields=DEFAULT_FIELDS, width=LINE_WIDTH):
    """One status line of ``fields`` joined by ' | '. With a ``width`` (None: unbounded) the
    fields of DROP_ORDER go first until the protection field has its full text or at least
    PROTECTION_MIN_WIDTH columns; its names beyond that become '+N'; never longer than width.
    """
    texts = {}
    for name in fields:
        text = FIELDS[name][1](latest) if name != 'protection' else None
        if name != 'protection' and text is None:
            continue
        texts[name] = text if name == 'state' else (text or '').rstrip()
    status = latest.get('protection_status')
    if 'protection' in fields and status is not None:
        texts['protection'] = protection_summary(status)
    elif 'protection' in texts:
        del texts['protection']
    if not texts:
        return 'waiting for the suite (nothing received yet)'

    def joined(parts):
        return ' | '.join(parts[name] for name in fields if name in parts)

    if width is not None:
        dropping = [name for name in DROP_ORDER if name in texts]
        full = texts.get('protection')
        while len(joined(texts)) > width and dropping:
            if full is not None:
                others = len(joined({k: v for k, v in texts.items() if k != 'protection'}))
                if width - others - 3 >= min(len(full), PROTECTION_MIN_WIDTH):
                    break
            del texts[dropping.pop(0)]
        if full is not None:
            others = len(joined({k: v for k, v in texts.items() if k != 'protection'}))
            texts['protection'] = protection_summary(status, max(4, width - others - 3))
    line = joined(texts)
    if width is not None and len(line) > width:
        line = line[:width - 3] + '...'
    return line


# ----------------------------------------------------------------------------- full screen

def bar(value, low, high, width):
    """A horizontal bar of ``width`` cells for ``value`` in [low, high] (blocks and dots)."""
    if value is None or not math.isfinite(value) or width <= 0:
        return '?' * max(width, 0)
    fraction = 0.0 if high <= low else min(1.0, max(0.0, (value - low) / (high - low)))
    full = int(round(fraction * width))
    return '#' * full + '.' * (width - full)


def cell_panel(measurement, balancing=None, width=LINE_WIDTH, bar_width=12):
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


def temperature_panel(measurement, width=LINE_WIDTH):
    """Lines of the temperature panel: min/max, then every sensor."""
    temps = list(measurement['temperatures_degc'])
    finite = _finite(temps)
    if not finite:
        return ['no valid temperature']
    lines = [f'min {min(finite):.1f} C  max {max(finite):.1f} C  spread '
             f'{max(finite) - min(finite):.1f} K'
             + ('  stale' if measurement.get('temperatures_stale') else '')]
    entries = [f'T{i}: {_num(t, "5.1f", "  NaN")}' for i, t in enumerate(temps)]
    per_line = max(1, (width + 2) // (len(entries[0]) + 2))
    for k in range(0, len(entries), per_line):
        lines.append('  '.join(entries[k:k + per_line]))
    return lines


def pack_panel(latest):
    """Lines of the pack panel: state, request, reason, contactors, SoC, SoH, V, I."""
    lines = []
    state = latest.get('pack_state')
    if state is not None:
        lines.append(f'state {state.get("state_name")}  requested '
                     f'{STATE_NAMES.get(state.get("requested_state"), "?")}')
        if state.get('reason'):
            lines.append(f'reason: {state["reason"]}')
        commanded = state.get('commanded') or {}
        wanted = contactor_text({'negative_contactor_closed': commanded.get('negative_closed'),
                                 'precharge_relay_closed': commanded.get('precharge_closed'),
                                 'positive_contactor_closed': commanded.get('positive_closed')})
        lines.append(f'contactors: feedback {contactor_text(state)}, commanded {wanted}; '
                     f'link {_num(state.get("link_voltage_v"), ".1f")} V')
    battery = latest.get('battery_state')
    estimate = latest.get('estimate')
    if battery is not None:
        lines.append(f'SoC {_num(100 * battery["percentage"], ".1f")} %  '
                     f'{_num(battery["voltage"], ".2f")} V  {_num(battery["current"], "+.2f")} A')
    if estimate is not None:
        lines.append(f'SoH capacity {_num(100 * estimate["soh_capacity"], ".1f")} %  '
                     f'resistance {_num(estimate["soh_resistance"], ".2f")} x new  '
                     f'capacity {_num(estimate["capacity_ah"], ".2f")} Ah  remaining '
                     f'{_num(estimate["remaining_charge_ah"], ".2f")} Ah')
    return lines or ['waiting for pack_state, battery_state and estimate']


def limits_panel(latest):
    """Lines of the current limits: the estimator's (short / long horizon), protection's."""
    lines = []
    estimate = latest.get('estimate')
    status = latest.get('protection_status')
    if estimate is not None:
        lines.append(f'estimate {_num(estimate["horizon_short_s"], ".0f")} s: charge '
                     f'{_num(estimate["charge_current_limit_a"], ".1f")} A, discharge '
                     f'{_num(estimate["discharge_current_limit_a"], ".1f")} A')
        lines.append(f'estimate {_num(estimate["horizon_long_s"], ".0f")} s: charge '
                     f'{_num(estimate["charge_current_limit_long_a"], ".1f")} A, discharge '
                     f'{_num(estimate["discharge_current_limit_long_a"], ".1f")} A')
    if status is not None:
        lines.append(f'allowed (protection): charge {_num(status["charge_current_limit_a"], ".1f")}'
                     f' A, discharge {_num(status["discharge_current_limit_a"], ".1f")} A')
    return lines or ['waiting for estimate and protection_status']


def protection_panel(status):
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


def stamp_text(stamp):
    """Local wall time hh:mm:ss of a builtin_interfaces/Time dict ('--:--:--' if zero)."""
    seconds = (stamp or {}).get('sec', 0) + 1e-9 * (stamp or {}).get('nanosec', 0)
    if seconds <= 0:
        return '--:--:--'
    return time.strftime('%H:%M:%S', time.localtime(seconds))


def events_panel(events, count=8):
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


def view_panels(latest, events=(), width=LINE_WIDTH):
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


def view_text(latest, events=(), width=LINE_WIDTH):
    """The whole view as plain text (the view without rich, and its tests)."""
    out = []
    for title, lines in view_panels(latest, events, width):
        out.append(f'-- {title} ' + '-' * max(0, width - len(title) - 4))
        out += [line[:width] for line in lines]
    return '\n'.join(out)


# ----------------------------------------------------------------------------- replies

def reset_reply(success, message, still_latched=()):
    """bmsctl's line for a ResetTrips response: granted, partly granted or refused, each list
    once (the protection node's message already names what stays latched and why).
    """
    text = message.strip()
    if text.startswith('refused: '):
        text = text[len('refused: '):]
    if success:
        line = f'reset granted: {text}'
    elif text.startswith('reset '):
        line = f'reset partly granted: cleared {text[len("reset "):]}'
    else:
        line = f'reset refused: {text}'
    if still_latched and 'still latched' not in text:
        line += f' (still latched: {", ".join(still_latched)})'
    return line
