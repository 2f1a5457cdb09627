"""A starter mapping (config/can/*_mapping.yaml, docs/can.md) guessed from a DBC.

Every message is listed with its period (the DBC's cycle time, else a TODO), its multiplexer
and branches (named choices as comments), and every signal with its size, scaling, unit and
choices as a comment. A signal becomes an active mapping line only where its name and unit make
the field likely:

- ``cell_voltages_v``: unit V (or mV) and 'cell' in the name;
- ``temperatures_degc``: unit degC / °C;
- ``pack_current_a``: unit A (or mA) (a 'discharge' current gets ``scale: -1``);
- ``pack_voltage_v`` / ``link_voltage_v``: unit V with pack/stack/battery or link/bus/dc;
- contactor states and commands: 1-bit signals whose message or name says contactor, relay
  or close, with negative / positive / precharge;
- ``cell_balancing`` / ``cell_bleed``: an unscaled multi-bit mask named bleed / balancing;

never from a 1-bit or boolean signal, nor from summary values (min, max, average, limits,
board or balancer temperatures). The rest stays commented out. The message's sender decides
the section: messages of the node that sends the cell voltages are ``measurement``, the others
``commands``. Blocks (the same signals in many multiplexer values) get a stride; named signals
(one branch each) get absolute indices from the number in their names.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, cast

from cantools.database.can import Database, Message, Signal

from .can_mapping import REQUIRED_COMMAND_FIELDS, REQUIRED_MEASUREMENT_FIELDS, is_boolean_signal

ARRAY_FIELDS = ('cell_voltages_v', 'temperatures_degc', 'cell_balancing', 'cell_bleed')
_FIELD_ORDER = ('cell_voltages_v', 'temperatures_degc', 'pack_current_a', 'pack_voltage_v',
                'link_voltage_v', 'negative_contactor_closed', 'positive_contactor_closed',
                'precharge_relay_closed', 'cell_balancing', 'negative_closed',
                'precharge_closed', 'positive_closed', 'cell_bleed')
# words (prefixes of CamelCase / snake_case parts) of summary values and flags, not a reading
_SUMMARY = ('max', 'min', 'avg', 'mean', 'average', 'delta', 'diff', 'limit', 'threshold',
            'allowed', 'request', 'target', 'setpoint', 'balanc', 'board', 'ambient', 'chip',
            'pcb', 'mcu', 'internal', 'ref')
_FLAGS = ('fault', 'error', 'err', 'weld', 'invalid', 'fail', 'diag', 'warn')
_COUNTER = re.compile(r'counter|alive|rolling|cnt|sqc|sequence', re.IGNORECASE)
_COMMAND_NAME = re.compile(r'command|cmd|request|req|ctrl|control', re.IGNORECASE)
_TEMPERATURE_UNITS = {'degc', '°c', 'c', 'deg c', 'degreec', 'celsius', 'degree_celsius'}
# (multiplexer signal name or None, stride or None, first value) of one message
_Layout = tuple[str | None, int | None, int]


@dataclass
class _Guess:
    signal: Signal                 # cantools Signal
    field: str | None = None       # None: left commented out
    index: int | None = None
    extra: dict[str, Any] = dc_field(default_factory=dict)     # scale, bitmask
    note: str = ''


def _has_word(name: str, words: Iterable[str]) -> bool:
    """True if a part of ``name`` (split at CamelCase, '_' and digits) starts with a word."""
    parts = [p.lower() for p in re.findall(r'[A-Z]?[a-z]+|[A-Z]+(?![a-z])', name)]
    return any(p.startswith(w) for p in parts for w in words)


def _unit(signal: Signal) -> str:
    return (signal.unit or '').strip()


def _last_number(name: str) -> int | None:
    numbers = re.findall(r'\d+', name)
    return int(numbers[-1]) if numbers else None


def _distinct_numbers(names: Sequence[str]) -> list[int] | None:
    """The last number of each name, or None if a name has none or two names share one."""
    numbers = [_last_number(name) for name in names]
    found = [n for n in numbers if n is not None]
    if len(found) != len(numbers) or len(set(found)) != len(found):
        return None
    return found


def _describe(signal: Signal) -> str:
    """Size, scaling, range, unit and choices of a signal, for a comment."""
    sign = 'signed' if signal.is_signed else 'unsigned'
    text = f'{signal.length} bit {sign}, x{signal.scale:g} {signal.offset:+g}'
    if signal.minimum is not None or signal.maximum is not None:
        text += f' [{signal.minimum if signal.minimum is not None else ""}|' \
                f'{signal.maximum if signal.maximum is not None else ""}]'
    if _unit(signal):
        text += f' {_unit(signal)}'
    if signal.choices:
        text += '; choices ' + ', '.join(f'{int(k)} {v}' for k, v in signal.choices.items())
    return text


def _value_field(message: Message, signal: Signal) -> str | None:
    """The float field a signal most likely carries, or None."""
    if is_boolean_signal(signal) or signal.conversion.is_float or signal.is_multiplexer:
        return None
    name = signal.name
    unit = _unit(signal)
    if _has_word(name, _SUMMARY + _FLAGS):
        return None
    if unit in ('V', 'mV') and 'cell' in name.lower():
        return 'cell_voltages_v'
    if unit.lower() in _TEMPERATURE_UNITS:
        return 'temperatures_degc'
    if unit in ('A', 'mA'):
        return 'pack_current_a'
    if unit in ('V', 'mV'):
        lower = name.lower()
        if re.search(r'link|bus|dc|load|output', lower):
            return 'link_voltage_v'
        if re.search(r'pack|stack|batt|total|sum', lower):
            return 'pack_voltage_v'
    return None


def _flag_field(message: Message, signal: Signal, section: str) -> str | None:
    """The contactor or balancing field of a flag / mask signal, or None."""
    text = f'{message.name} {signal.name}'.lower()
    if _has_word(signal.name, _FLAGS):
        return None
    if is_boolean_signal(signal) and re.search(r'contactor|relay|close', text):
        name = signal.name.lower()
        if 'pre' in name:
            return 'precharge_relay_closed' if section == 'measurement' else 'precharge_closed'
        if re.search(r'neg|minus', name):
            return 'negative_contactor_closed' if section == 'measurement' else 'negative_closed'
        if re.search(r'pos|plus', name):
            return 'positive_contactor_closed' if section == 'measurement' else 'positive_closed'
        return None
    if signal.length > 1 and not is_boolean_signal(signal) and not _unit(signal) \
            and signal.scale == 1 and signal.offset == 0 and not signal.is_signed \
            and re.search(r'bleed|balanc', text):
        return 'cell_balancing' if section == 'measurement' else 'cell_bleed'
    return None


def _section_of(message: Message, bms_nodes: set[str]) -> str:
    senders = set(message.senders or ())
    if senders and bms_nodes:
        return 'measurement' if senders & bms_nodes else 'commands'
    return 'commands' if _COMMAND_NAME.search(message.name) else 'measurement'


def _counter(message: Message) -> Signal | None:
    for s in message.signals:
        if _COUNTER.search(s.name) and not _has_word(s.name, _FLAGS) and not s.is_signed \
                and not s.multiplexer_ids and not s.is_multiplexer and not s.conversion.is_float:
            return s
    return None


def _top_mux(message: Message) -> Signal | None:
    return next((s for s in message.signals if s.is_multiplexer and s.multiplexer_signal is None),
                None)


def _branches_comment(message: Message) -> list[str]:
    """'branches: 0 Cells_000_002, ...' of every multiplexer with named choices."""
    parts = []
    for s in message.signals:
        if s.is_multiplexer:
            ids = sorted({i for t in message.signals if t.multiplexer_signal == s.name
                          for i in (t.multiplexer_ids or ())})
            text = f'{s.name}: values {_ranges(ids)}' if ids else f'{s.name}'
            if s.choices:
                text += ' (' + ', '.join(f'{int(k)} {v}' for k, v in s.choices.items()) + ')'
            parts.append(text)
    return parts


def _ranges(values: Iterable[int]) -> str:
    out: list[list[int]] = []
    for v in sorted(values):
        if out and v == out[-1][1] + 1:
            out[-1][1] = v
        else:
            out.append([v, v])
    return ', '.join(f'{a}' if a == b else f'{a}-{b}' for a, b in out)


def skeleton(database: Database, dbc_name: str, cells: int | None = None,
             sensors: int | None = None) -> str:
    """The YAML text of a starter mapping of ``database`` (cantools), for ``cells`` series
    cells and ``sensors`` temperature sensors (None: as many as the DBC's named signals).
    """
    messages = [m for m in database.messages if not m.is_container]
    # the node(s) sending cell voltages or temperatures are the pack: their frames are measurement
    bms_nodes: set[str] = set()
    for m in messages:
        if any(_value_field(m, s) in ('cell_voltages_v', 'temperatures_degc') for s in m.signals):
            bms_nodes.update(m.senders or ())
    sections = {m.name: _section_of(m, bms_nodes) for m in messages}
    guesses: dict[str, list[_Guess]] = {}
    for m in messages:
        out = []
        for s in m.signals:
            if s.is_multiplexer:
                continue
            g = _Guess(s)
            value = _value_field(m, s)
            if value is not None and sections[m.name] == 'measurement':
                g.field = value
                if _unit(s) in ('mV', 'mA'):
                    g.extra['scale'] = 0.001
                if value == 'pack_current_a' and 'discharg' in s.name.lower():
                    g.extra['scale'] = -g.extra.get('scale', 1.0)
                    g.note = 'discharge-positive: scale -1 gives + = charging; check the sign'
            else:
                g.field = _flag_field(m, s, sections[m.name])
                if g.field in ('cell_balancing', 'cell_bleed'):
                    g.extra['bitmask'] = True
            out.append(g)
        guesses[m.name] = out
    layouts = _assign_indices(messages, guesses, cells, sensors)
    return _render(messages, sections, guesses, layouts, dbc_name, cells, sensors)


def _assign_indices(messages: Sequence[Message], guesses: dict[str, list[_Guess]],
                    cells: int | None, sensors: int | None) -> dict[str, _Layout]:
    """Index of every array guess; message name -> (mux signal name, stride, first) layout."""
    layouts: dict[str, _Layout] = {}
    limits = {'cell_voltages_v': cells, 'temperatures_degc': sensors}
    taken_scalars: dict[str, str] = {}
    block_fields: set[str] = set()
    named: dict[str, list[_Guess]] = {f: [] for f in ARRAY_FIELDS}
    for m in messages:
        array = [g for g in guesses[m.name] if g.field in ARRAY_FIELDS]
        top = _top_mux(m)
        layouts[m.name] = (top.name if top else None, None, 0)
        if not any(len(g.signal.multiplexer_ids or ()) > 1 for g in array):
            for g in array:
                # named signals, or a message without blocks (an array guess has a field)
                named[cast(str, g.field)].append(g)
        else:
            # blocks: the same signals in many multiplexer values; the dominant field sets
            # the stride, the others stay commented out
            counts: dict[str, int] = {}
            for g in array:
                if g.field is not None:   # (an array guess has a field)
                    counts[g.field] = counts.get(g.field, 0) + 1
            main = max(counts, key=lambda f: counts[f])
            mux = next(g.signal.multiplexer_signal for g in array if g.field == main)
            mine = [g for g in array if g.field == main and g.signal.multiplexer_signal == mux
                    and len(g.signal.multiplexer_ids or ()) > 1]
            for g in array:
                if g not in mine:
                    g.field, g.note = None, f'not a {main} block signal of {mux}'
            if main in block_fields:
                for g in mine:
                    g.field = None
                    g.note = f'{main} already has blocks in another message: no element base'
            else:
                block_fields.add(main)
                mask = main in ('cell_balancing', 'cell_bleed')
                numbers = _distinct_numbers([g.signal.name for g in mine])
                if numbers is not None:
                    ordered = numbers
                    order = sorted(range(len(mine)), key=lambda i: ordered[i])
                else:
                    order = list(range(len(mine)))
                for index, i in enumerate(order):
                    mine[i].index = 0 if mask else index
                if mask:
                    for g in mine[1:]:
                        g.field, g.note = None, f'one {main} mask per block only'
                    mine = mine[:1]
                stride = mine[0].signal.length if mask else len(mine)
                # (block signals: more than one multiplexer value each)
                first = min(min(g.signal.multiplexer_ids or ()) for g in mine)
                layouts[m.name] = (mux, stride, first)
        for g in guesses[m.name]:
            if g.field is not None and g.field not in ARRAY_FIELDS:
                if g.field in taken_scalars:
                    g.note = f'{g.field} already guessed from {taken_scalars[g.field]}'
                    g.field = None
                else:
                    taken_scalars[g.field] = f'{m.name}.{g.signal.name}'
    for name, items in named.items():
        if name in block_fields:
            for g in items:
                g.field, g.note = None, f'{name} is mapped in blocks elsewhere'
            continue
        if name in ('cell_balancing', 'cell_bleed'):
            for k, g in enumerate(items):
                g.index = 0 if k == 0 else None
                if k:
                    g.field, g.note = None, f'one {name} mask without multiplexer only'
            continue
        numbers = _distinct_numbers([g.signal.name for g in items])
        if items and numbers is not None:
            low = min(numbers)
            indices = [n - low for n in numbers]
        else:
            indices = list(range(len(items)))
        limit = limits.get(name)
        for g, index in zip(items, indices):
            g.index = index
            if limit is not None and index >= limit:
                g.field, g.note = None, f'index {index}: beyond the pack ({limit})'
    return layouts


def _line(g: _Guess) -> str:
    parts = [f'signal: {g.signal.name}', f'field: {g.field}']
    if g.index is not None and g.field in ARRAY_FIELDS and not g.extra.get('bitmask'):
        parts.append(f'index: {g.index}')
    for key, value in g.extra.items():
        parts.append(f'{key}: {"true" if value is True else value}')
    return '{' + ', '.join(parts) + '}'


def _render(messages: Sequence[Message], sections: dict[str, str],
            guesses: dict[str, list[_Guess]], layouts: dict[str, _Layout], dbc_name: str,
            cells: int | None, sensors: int | None) -> str:
    size = f'{cells if cells is not None else "all"} cells, ' \
           f'{sensors if sensors is not None else "all"} temperature sensors'
    lines = [f'# Starter mapping of {dbc_name} (python -m bms_ros.tools.dbc_skeleton), for '
             f'{size}.',
             '# Guessed lines are active; check every one against the DBC\'s documentation, '
             'then uncomment',
             '# what else you need (format: docs/can.md). Field value = DBC physical value * '
             'scale + offset.']
    mapped = {g.field for gs in guesses.values() for g in gs if g.field}
    for section, required in (('measurement', REQUIRED_MEASUREMENT_FIELDS),
                              ('commands', REQUIRED_COMMAND_FIELDS)):
        missing = [f for f in required if f not in mapped]
        if missing:
            lines.append(f'# TODO {section}: nothing guessed for {", ".join(missing)} '
                         '(required)')
    for section in ('measurement', 'commands'):
        lines.append(f'{section}:')
        for m in (m for m in messages if sections[m.name] == section):
            lines += _render_message(m, section, guesses[m.name], layouts[m.name])
    return '\n'.join(lines) + '\n'


def _render_message(m: Message, section: str, guesses: list[_Guess],
                    layout: _Layout) -> list[str]:
    active = any(g.field for g in guesses)
    c = '' if active else '# '
    senders = ', '.join(m.senders or ()) or 'no sender'
    kind = '29-bit' if m.is_extended_frame else '11-bit'
    out = [f'  # {m.name}: id 0x{m.frame_id:X} ({kind}), DLC {m.length}, from {senders}'
           + ('' if active else '; nothing guessed')]
    if m.comment:
        out.append('  #   ' + ' '.join(m.comment.split())[:150])
    out.append(f'  {c}- message: {m.name}')
    if m.cycle_time:
        out.append(f'  {c}  period_s: {m.cycle_time / 1000.0:g}    # cycle time {m.cycle_time} ms '
                   'in the DBC')
    elif section == 'measurement':
        out.append('  #   period_s: TODO    # no cycle time in the DBC: required for a '
                   'measurement message')
    else:
        out.append('  #   period_s: TODO    # no cycle time in the DBC: without one the command '
                   'is sent on change only')
    mux, stride, first = layout
    if mux is not None:
        text = f'signal: {mux}'
        if stride is not None:
            text += f', stride: {stride}'
            if first:
                text += f', first: {first}'
        why = 'blocks: element = index + stride * (mux - first)' if stride is not None \
            else 'no stride: absolute indices'
        out.append(f'  {c}  multiplexer: {{{text}}}    # {why}')
        for branch in _branches_comment(m):
            out.append(f'  #     {branch}')
    counter = _counter(m)
    if counter is not None:
        out.append(f'  {c}  counter: {counter.name}    # rolling counter? remove it unless it '
                   'counts +1 per frame')
    out.append(f'  {c}  signals:')
    fields = {f: k for k, f in enumerate(_FIELD_ORDER)}
    guessed = sorted((g for g in guesses if g.field),
                     key=lambda g: (fields.get(g.field or '', 99), g.index or 0))
    for g in guessed + sorted((g for g in guesses if not g.field), key=lambda g: g.signal.name):
        if counter is not None and g.signal is counter:
            continue
        comment = _describe(g.signal) + (f'; {g.note}' if g.note else '')
        if g.field:
            out.append(f'  {c}    - {_line(g)}    # {comment}')
        else:
            out.append(f'  #     - {{signal: {g.signal.name}, field: TODO}}    # {comment}')
    return out
