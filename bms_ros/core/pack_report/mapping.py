"""The ``pack_report:`` and ``state_request:`` sections of a CAN mapping, checked against the DBC.

:func:`load_report_sections` (called by can_mapping.load_mapping) gives the report messages
(:class:`ReportMessage`, each with its :class:`ReportSignal` list) and the
:class:`StateRequestMap`; :func:`report_keys` the frame keys the measurement decoder ignores.
Sections: see the package docstring.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import can
from cantools.database.can import Database, Message, Signal

from ..can_raw import dbc_raw_range, invalid_raw_of, type_range
from ..pack_state_machine import STATE_CHARGE, STATE_DRIVE, STATE_NAMES, STATE_STANDBY

if TYPE_CHECKING:
    from ..can_mapping import CanMapping
    from ..config import Section

# can_mapping's "did you mean" (name, known names) and flag check, passed in (no import cycle)
Suggest = Callable[[str, Sequence[str]], str]
IsBoolean = Callable[[Signal], bool]
# report field -> kind: 'state' (named states), 'float', 'bool', 'flag' (nonzero = active)
REPORT_FIELDS = {
    'state': 'state',
    'pack_soc': 'float',
    'soh_capacity': 'float',
    'charge_current_limit_a': 'float',
    'discharge_current_limit_a': 'float',
    'pack_voltage_v': 'float',
    'link_voltage_v': 'float',
    'pack_current_a': 'float',
    'negative_contactor_closed': 'bool',
    'positive_contactor_closed': 'bool',
    'precharge_relay_closed': 'bool',
    'fault': 'flag',
    'warning': 'flag',
}
REQUESTABLE = {'STANDBY': STATE_STANDBY, 'DRIVE': STATE_DRIVE, 'CHARGE': STATE_CHARGE}
STATE_OF_NAME = {name: state for state, name in STATE_NAMES.items()}
_REPORT_MESSAGE_KEYS = ('message', 'period_s', 'counter', 'signals')
_REPORT_SIGNAL_KEYS = ('signal', 'field', 'scale', 'offset', 'invalid_raw', 'states', 'name')
_REQUEST_KEYS = ('message', 'period_s', 'signal', 'values', 'counter')
_EXT = 1 << 29


def frame_key(msg: can.Message) -> int:
    """The frame key of a received frame: its id, with the extended flag bit if extended."""
    return msg.arbitration_id | _EXT if msg.is_extended_id else msg.arbitration_id


@dataclass
class ReportSignal:
    """One DBC signal of the pack report mapped onto one report field."""

    signal: str
    field: str
    kind: str
    gain: float
    bias: float
    invalid_raw: int | None  # None: no marker
    raw_min: int
    raw_max: int
    states: dict[int, int]  # state kind: raw -> our state (int)
    name: str               # flag kind: the event's limit_id
    choices: dict[int, str]  # raw -> DBC choice name (for messages)


@dataclass
class ReportMessage:
    """One DBC message of the pack report."""

    name: str
    frame_id: int
    is_extended: bool
    length: int
    period_s: float | None
    counter_signal: str | None
    counter_modulo: int
    signals: list[ReportSignal]
    dbc_message: Message

    @property
    def key(self) -> int:
        """The frame key: the id, with the extended flag bit if extended."""
        return self.frame_id | _EXT if self.is_extended else self.frame_id


@dataclass
class StateRequestMap:
    """The state-request frame: our requestable state -> raw value of its signal."""

    name: str
    frame_id: int
    is_extended: bool
    period_s: float | None
    signal: str
    values: dict[int, int]  # our state (int) -> raw
    counter_signal: str | None
    counter_modulo: int
    other_signals: tuple[str, ...]
    dbc_message: Message

    @property
    def key(self) -> int:
        """The frame key: the id, with the extended flag bit if extended."""
        return self.frame_id | _EXT if self.is_extended else self.frame_id


def _raw_of_choice(sec: Section, key: str, value: Any, dbc_signal: Signal,
                   message_name: str) -> int:
    """Raw integer of a DBC choice name or an integer, checked against the signal."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise sec.error(key, f'expected a choice name of {dbc_signal.name} or an integer, '
                             f'got {value!r}')
    if isinstance(value, int):
        raw = value
    else:
        by_name = {str(v): int(k) for k, v in (dbc_signal.choices or {}).items()}
        if value not in by_name:
            known = ', '.join(sorted(by_name)) or 'none'
            raise sec.error(key, f"'{value}' is not a choice of '{dbc_signal.name}' in message "
                                 f"'{message_name}' (choices: {known})")
        raw = by_name[value]
    lo, hi = type_range(dbc_signal)
    if not lo <= raw <= hi:
        raise sec.error(key, f'{raw} does not fit {dbc_signal.length}-bit '
                             f"'{dbc_signal.name}'")
    return raw


def _dbc_message(sec: Section, by_name: dict[str, Message], name: str, dbc_name: str,
                 suggest: Suggest) -> Message:
    if name not in by_name:
        raise sec.error('message', f"unknown message '{name}' in {dbc_name}"
                        + suggest(name, list(by_name)))
    return by_name[name]


def _dbc_signal(sec: Section, key: str, message: Message, name: str,
                suggest: Suggest) -> Signal:
    signals = {s.name: s for s in message.signals}
    if name not in signals:
        raise sec.error(key, f"unknown signal '{name}' in message '{message.name}'"
                        + suggest(name, list(signals)))
    return signals[name]


def _counter(sec: Section, message: Message, suggest: Suggest) -> tuple[str | None, int]:
    if not sec.has('counter'):
        return None, 0
    name = sec.string('counter')
    signal = _dbc_signal(sec, 'counter', message, name, suggest)
    if signal.is_signed or signal.multiplexer_ids or signal.is_multiplexer \
            or signal.conversion.is_float:
        raise sec.error('counter', f"'{name}' must be an unsigned, not multiplexed integer "
                                   'signal')
    return name, 1 << signal.length


def _period(sec: Section, message: Message, dbc_name: str, required: bool) -> float | None:
    if sec.data.get('period_s') is not None:
        return sec.number('period_s', exclusive_minimum=0.0, maximum=60.0)
    if message.cycle_time:
        return message.cycle_time / 1000.0
    if required:
        raise sec.error('period_s', f"missing, and message '{message.name}' has no "
                                    f'GenMsgCycleTime in {dbc_name}')
    return None


def load_report_sections(top: Section, database: Database, dbc_name: str, suggest: Suggest,
                         is_boolean_signal: IsBoolean
                         ) -> tuple[list[ReportMessage] | None, StateRequestMap | None]:
    """(pack_report messages or None, StateRequestMap or None) from a mapping's top Section.

    ``suggest`` and ``is_boolean_signal`` come from can_mapping (the same 'did you mean' and
    flag check as the measurement).
    """
    by_name = {m.name: m for m in database.messages}
    report: list[ReportMessage] | None = None
    if top.has('pack_report'):
        sections = top.sections('pack_report')
        if not sections:
            raise top.error('pack_report', 'expected at least one message')
        report = []
        owners: dict[str, str] = {}
        seen: set[str] = set()
        for sec in sections:
            report.append(_report_message(sec, by_name, dbc_name, suggest, is_boolean_signal,
                                          owners, seen))
        if 'state' not in owners:
            raise top.error('pack_report', 'no signal maps state (required)')
    request = None
    if top.has('state_request'):
        request = _request(top.section('state_request'), by_name, dbc_name, suggest)
    return report, request


def _report_message(sec: Section, by_name: dict[str, Message], dbc_name: str, suggest: Suggest,
                    is_boolean_signal: IsBoolean, owners: dict[str, str],
                    seen: set[str]) -> ReportMessage:
    sec.reject_unknown(_REPORT_MESSAGE_KEYS)
    name = sec.string('message')
    message = _dbc_message(sec, by_name, name, dbc_name, suggest)
    if name in seen:
        raise sec.error('message', f"message '{name}' is mapped twice")
    seen.add(name)
    if any(s.is_multiplexer for s in message.signals):
        raise sec.error('message', f"'{name}' is multiplexed: pack report messages must not be")
    period_s = _period(sec, message, dbc_name, required=True)
    counter_signal, counter_modulo = _counter(sec, message, suggest)
    signals: list[ReportSignal] = []
    used = {counter_signal}
    for sig in sec.sections('signals'):
        sig.reject_unknown(_REPORT_SIGNAL_KEYS)
        signal_name = sig.string('signal')
        dbc_signal = _dbc_signal(sig, 'signal', message, signal_name, suggest)
        if signal_name in used:
            raise sig.error('signal', f"'{signal_name}' is already used in message '{name}'")
        used.add(signal_name)
        if dbc_signal.conversion.is_float:
            raise sig.error('signal', f"'{signal_name}' is a floating-point signal: not "
                                      'supported')
        field_name = sig.string('field', choices=list(REPORT_FIELDS))
        kind = REPORT_FIELDS[field_name]
        if kind != 'flag' and field_name in owners:
            raise sig.error('field', f'{field_name} already mapped by {owners[field_name]}')
        owners.setdefault(field_name, f'{name}.{signal_name}')
        if kind == 'float' and is_boolean_signal(dbc_signal):
            raise sig.error('field', f"'{field_name}' is a value, but '{signal_name}' in "
                                     f"message '{name}' is a flag")
        for key in ('states', 'name'):
            wanted = (key == 'states' and kind == 'state') or (key == 'name' and kind == 'flag')
            if sig.has(key) and not wanted:
                raise sig.error(key, f"not for field '{field_name}'")
        if kind in ('state', 'flag', 'bool') and (sig.has('scale') or sig.has('offset')):
            raise sig.error('scale' if sig.has('scale') else 'offset',
                            f"'{field_name}' takes the raw value: no scale or offset")
        scale = sig.number('scale', 1.0)
        if scale == 0.0:
            raise sig.error('scale', 'must not be 0')
        offset = sig.number('offset', 0.0)
        type_min, type_max = type_range(dbc_signal)
        states: dict[int, int] = {}
        if kind == 'state':
            states_sec = sig.section('states')
            if any(isinstance(k, bool) for k in states_sec.data):
                # YAML 1.1 reads an unquoted OFF (and ON, YES, NO) as a boolean
                raise states_sec.error(str(next(k for k in states_sec.data
                                                if isinstance(k, bool))),
                                       "write 'OFF' in quotes: YAML reads OFF as false")
            states_sec.reject_unknown(list(STATE_OF_NAME))
            if not states_sec.data:
                raise sig.error('states', 'expected our state names (OFF, STANDBY, PRECHARGE, '
                                          'DRIVE, CHARGE, ERROR) -> DBC choices or raw values')
            for ours, theirs in states_sec.data.items():
                for i, value in enumerate(theirs if isinstance(theirs, list) else [theirs]):
                    key = ours if not isinstance(theirs, list) else f'{ours}[{i}]'
                    raw = _raw_of_choice(states_sec, key, value, dbc_signal, name)
                    if raw in states:
                        raise states_sec.error(key, f'raw {raw} already means '
                                                    f'{STATE_NAMES[states[raw]]}')
                    states[raw] = STATE_OF_NAME[ours]
        invalid_raw = invalid_raw_of(sig, dbc_signal, marker_by_default=kind == 'float')
        raw_min, raw_max = dbc_raw_range(dbc_signal) if kind == 'float' else (type_min, type_max)
        dbc_scale, dbc_offset = float(dbc_signal.scale), float(dbc_signal.offset)
        flag_name = sig.string('name', signal_name) if kind == 'flag' else ''
        signals.append(ReportSignal(
            signal=signal_name, field=field_name, kind=kind,
            gain=dbc_scale * scale, bias=dbc_offset * scale + offset,
            invalid_raw=invalid_raw, raw_min=raw_min, raw_max=raw_max, states=states,
            name=flag_name,
            choices={int(k): str(v) for k, v in (dbc_signal.choices or {}).items()}))
    if not signals:
        raise sec.error('signals', 'expected at least one signal')
    return ReportMessage(name=name, frame_id=message.frame_id,
                         is_extended=message.is_extended_frame, length=message.length,
                         period_s=period_s, counter_signal=counter_signal,
                         counter_modulo=counter_modulo, signals=signals, dbc_message=message)


def _request(sec: Section, by_name: dict[str, Message], dbc_name: str,
             suggest: Suggest) -> StateRequestMap:
    sec.reject_unknown(_REQUEST_KEYS)
    name = sec.string('message')
    message = _dbc_message(sec, by_name, name, dbc_name, suggest)
    if any(s.is_multiplexer for s in message.signals):
        raise sec.error('message', f"'{name}' is multiplexed: not supported for the request")
    period_s = _period(sec, message, dbc_name, required=True)
    signal_name = sec.string('signal')
    dbc_signal = _dbc_signal(sec, 'signal', message, signal_name, suggest)
    values_sec = sec.section('values')
    values_sec.reject_unknown(list(REQUESTABLE))
    values: dict[int, int] = {}
    for ours in REQUESTABLE:
        if not values_sec.has(ours):
            raise values_sec.error(ours, 'missing: every requestable state (STANDBY, DRIVE, '
                                         'CHARGE) needs its value')
        values[REQUESTABLE[ours]] = _raw_of_choice(values_sec, ours, values_sec.data[ours],
                                                   dbc_signal, name)
    counter_signal, counter_modulo = _counter(sec, message, suggest)
    others = tuple(s.name for s in message.signals
                   if s.name not in (signal_name, counter_signal))
    return StateRequestMap(name=name, frame_id=message.frame_id,
                           is_extended=message.is_extended_frame, period_s=period_s,
                           signal=signal_name, values=values, counter_signal=counter_signal,
                           counter_modulo=counter_modulo, other_signals=others,
                           dbc_message=message)


def report_keys(mapping: CanMapping) -> set[int]:
    """Frame keys of the pack report and the state request (the driver ignores them)."""
    return mapping.pack_report_keys()
