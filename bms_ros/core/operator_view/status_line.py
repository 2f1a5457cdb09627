"""The status line: one field formatter per name (FIELDS), dropped in DROP_ORDER to fit a width."""
from __future__ import annotations

from collections.abc import Callable, Sequence

from .words import (
    LEVEL_WORDS,
    LINE_WIDTH,
    STATE_NAMES,
    TOPIC_SOURCES,
    Latest,
    Message,
    contactor_text,
    finite,
    limit_name,
    num,
)

# a field's text from the latest messages (None: its topic has not arrived)
Formatter = Callable[[Latest], 'str | None']


def _state(latest: Latest) -> str | None:
    state = latest.get('pack_state')
    return None if state is None else f'{state.get("state_name") or "?":<9}'


def _soc(latest: Latest) -> str | None:
    battery = latest.get('battery_state')
    return None if battery is None else f'SoC {num(100 * battery["percentage"], ".1f")}%'


def _current(latest: Latest) -> str | None:
    battery = latest.get('battery_state')
    return None if battery is None else f'{num(battery["current"], "+.1f")}A'


def _voltage(latest: Latest) -> str | None:
    battery = latest.get('battery_state')
    return None if battery is None else f'{num(battery["voltage"], ".1f")}V'


def _measured(field: str, text: Callable[[list[float]], str], missing: str) -> Formatter:
    """A field formatter of the measurement's finite ``field`` values: ``text(values)``, or
    ``missing`` when none is finite; None before a measurement arrived.
    """
    def field_text(latest: Latest) -> str | None:
        measurement = latest.get('measurement')
        if measurement is None:
            return None
        values = finite(measurement[field])
        return text(values) if values else missing
    return field_text


_cells = _measured('cell_voltages_v', lambda v: f'{min(v):.3f}-{max(v):.3f}V', 'cells n/a')
_spread = _measured('cell_voltages_v', lambda v: f'spread {1000 * (max(v) - min(v)):.0f}mV',
                    'spread n/a')
_tmax = _measured('temperatures_degc', lambda v: f'T {max(v):.1f}C', 'T n/a')
_tmin = _measured('temperatures_degc', lambda v: f'Tmin {min(v):.1f}C', 'Tmin n/a')


def _limits(latest: Latest) -> str | None:
    status = latest.get('protection_status')
    if status is None:
        return None
    return (f'lim +{num(status["charge_current_limit_a"], ".0f", "?")}'
            f'/-{num(status["discharge_current_limit_a"], ".0f", "?")}A')


def _soh(latest: Latest) -> str | None:
    estimate = latest.get('estimate')
    return None if estimate is None else f'SoH {num(100 * estimate["soh_capacity"], ".0f")}%'


def _contactors(latest: Latest) -> str | None:
    state = latest.get('pack_state')
    return None if state is None else contactor_text(state)


def _requested(latest: Latest) -> str | None:
    state = latest.get('pack_state')
    if state is None:
        return None
    return f'req {STATE_NAMES.get(state.get("requested_state", -1), "?")}'


def _balancing(latest: Latest) -> str | None:
    balancing = latest.get('balancing_status')
    if balancing is None:
        return None
    bleeding = sum(1 for b in balancing.get('cell_bleed') or () if b)
    return f'bal {bleeding} cells' if bleeding else 'bal idle'


def _reason(latest: Latest) -> str | None:
    state = latest.get('pack_state')
    return None if state is None or not state.get('reason') else str(state['reason'])


def protection_summary(status: Message, width: int | None = None) -> str:
    """'ok', or the highest level with the limits at it: 'TRIP cell_overvoltage[3] +1'.

    ``width``: at most this many characters (names beyond it become '+N').
    """
    level = status['max_level']
    word = LEVEL_WORDS.get(level, str(level))
    if not level:
        return word
    names: list[str] = []
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


def _runtime(latest: Latest) -> str | None:
    from ..energy.text import runtime_text  # issue 16: time to empty / full
    return runtime_text(latest.get('estimate'))


def _protection(latest: Latest, width: int | None = None) -> str | None:
    status = latest.get('protection_status')
    return None if status is None else protection_summary(status, width)


# name -> (topics it needs, formatter); the order is the order on the line
FIELDS: dict[str, tuple[tuple[str, ...], Formatter]] = {
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


def parse_fields(text: str) -> tuple[str, ...]:
    """Field names from 'state,soc,...' (ValueError naming an unknown one)."""
    names = tuple(name.strip() for name in text.split(',') if name.strip())
    unknown = [name for name in names if name not in FIELDS]
    if unknown or not names:
        raise ValueError(f'unknown field(s) {", ".join(unknown) or "(none given)"}; known: '
                         f'{", ".join(FIELDS)}')
    return names


def needed_topics(fields: Sequence[str]) -> list[str]:
    """Topics the fields read, in TOPIC_SOURCES order."""
    wanted = {topic for name in fields for topic in FIELDS[name][0]}
    return [topic for topic in TOPIC_SOURCES if topic in wanted]


def missing_text(latest: Latest, fields: Sequence[str]) -> str:
    """'' when every topic the fields need has arrived, else what is missing and from whom."""
    missing = [f'{topic} (from {TOPIC_SOURCES[topic]})' for topic in needed_topics(fields)
               if latest.get(topic) is None]
    return ', '.join(missing)


def status_line(latest: Latest, fields: Sequence[str] = DEFAULT_FIELDS,
                width: int | None = LINE_WIDTH) -> str:
    """One status line of ``fields`` joined by ' | '. With a ``width`` (None: unbounded) the
    fields of DROP_ORDER go first until the protection field has its full text or at least
    PROTECTION_MIN_WIDTH columns; its names beyond that become '+N'; never longer than width.
    """
    texts: dict[str, str] = {}
    for name in fields:
        text = FIELDS[name][1](latest) if name != 'protection' else None
        if name != 'protection' and text is None:
            continue
        texts[name] = text if name == 'state' and text is not None else (text or '').rstrip()
    status = latest.get('protection_status')
    if 'protection' in fields and status is not None:
        texts['protection'] = protection_summary(status)
    elif 'protection' in texts:
        del texts['protection']
    if not texts:
        return 'waiting for the suite (nothing received yet)'

    def joined(parts: dict[str, str]) -> str:
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
        if full is not None and status is not None:
            others = len(joined({k: v for k, v in texts.items() if k != 'protection'}))
            texts['protection'] = protection_summary(status, max(4, width - others - 3))
    line = joined(texts)
    if width is not None and len(line) > width:
        line = line[:width - 3] + '...'
    return line
