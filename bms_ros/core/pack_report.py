"""Control style (b): the pack has its own BMS firmware (foxBMS, Orion BMS, vendor packs).

The pack owns its contactors; bms_ros reads the pack's report (state, contactor states, SoC,
SoH, current limits, fault and warning flags) and forwards the vehicle's request_state as the
pack's state-request frame. This module holds everything but the wiring:

- the profile side: ``can.control`` (``bms_ros`` | ``pack``) and ``can.pack_bms`` (timeouts,
  second opinion, disagreement bounds), :func:`load_control`;
- the mapping side: the ``pack_report:`` and ``state_request:`` sections of a CAN mapping,
  validated against the DBC (:func:`load_report_sections`, called by can_mapping.load_mapping);
- :class:`ReportDecoder` (frames -> report values with receive stamps) and
  :meth:`ReportDecoder.snapshot` -> :class:`PackReport` (stale after ``report_timeout_s``);
- the message field values: :func:`pack_state_fields`, :func:`estimate_fields`,
  :func:`protection_fields`, :func:`battery_health`; :func:`disagreements` (pack vs our own
  estimate and protection);
- :class:`RequestEncoder` (our request -> the state-request frame) and, for tests and log
  generators, the pack side: :class:`ReportEncoder`, :func:`decode_request`.

Unknown is never OK: a stale or never-received report gives state ERROR named ``UNKNOWN``,
limits 0 A, a ``pack_report_stale`` trip-level event and health UNKNOWN.

Mapping sections::

    pack_report:                        # frames from the pack's BMS
      - message: BMS_State
        period_s: 0.1                   # default: the DBC's GenMsgCycleTime
        counter: BMS_AliveCounter       # optional rolling counter (+1 per frame)
        signals:
          - {signal: BMS_State, field: state,
             states: {STANDBY: [Standby, Idle], PRECHARGE: Precharge, DRIVE: Normal,
                      CHARGE: Charging, ERROR: Error, OFF: Init}}   # DBC choice names or raws
          - {signal: BMS_SoC, field: pack_soc, scale: 0.01}          # % -> 0..1
          - {signal: BMS_ErrOverVoltage, field: fault, name: cell_overvoltage}
    state_request:                      # the frame to the pack
      message: VCU_StateRequest
      period_s: 0.1                     # repeated at this period
      signal: VCU_RequestedState
      values: {STANDBY: Standby, DRIVE: Normal, CHARGE: Charge}    # DBC choice names or raws
      counter: VCU_Counter              # optional
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import TYPE_CHECKING, Any, cast

import can
import yaml
from cantools.database.can import Database, Message, Signal

from .can_frame import decode_frame
from .can_raw import invalid_raw_of, type_range
from .errors import ConfigError, DecodeError
from .pack_state_machine import STATE_CHARGE, STATE_DRIVE, STATE_ERROR, STATE_NAMES, STATE_STANDBY
from .protection.limits import LEVEL_OK, LEVEL_TRIP, LEVEL_WARNING

if TYPE_CHECKING:
    from .can_mapping import CanMapping
    from .config import Section

# can_mapping's "did you mean" (name, known names) and flag check, passed in (no import cycle)
Suggest = Callable[[str, Sequence[str]], str]
IsBoolean = Callable[[Signal], bool]

CONTROL_STYLES = ('bms_ros', 'pack')
PACK_BMS_FIELDS = ('report_timeout_s', 'publish_rate_hz', 'second_opinion', 'soc_bound',
                   'current_limit_bound_a', 'request_hold_s')
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
FLAG_LEVELS = {'fault': LEVEL_TRIP, 'warning': LEVEL_WARNING}
REQUESTABLE = {'STANDBY': STATE_STANDBY, 'DRIVE': STATE_DRIVE, 'CHARGE': STATE_CHARGE}
STATE_OF_NAME = {name: state for state, name in STATE_NAMES.items()}
UNKNOWN_NAME = 'UNKNOWN'
STALE_EVENT = 'pack_report_stale'
_REPORT_MESSAGE_KEYS = ('message', 'period_s', 'counter', 'signals')
_REPORT_SIGNAL_KEYS = ('signal', 'field', 'scale', 'offset', 'invalid_raw', 'states', 'name')
_REQUEST_KEYS = ('message', 'period_s', 'signal', 'values', 'counter')
_EXT = 1 << 29
_NAN = float('nan')


# ---------------------------------------------------------------------- profile side

@dataclass(frozen=True)
class ControlConfig:
    """``can.control`` and ``can.pack_bms`` of a profile (times in s, SoC 0..1, A)."""

    style: str = 'bms_ros'          # 'bms_ros': we own the contactors; 'pack': its BMS does
    report_timeout_s: float = 0.5   # a report field older than this is stale (unknown)
    publish_rate_hz: float = 10.0   # pack_state / estimate / protection_status / battery_state
    second_opinion: bool = True     # our estimator and protection run beside it (own/...)
    soc_bound: float = 0.05         # |pack SoC - ours| above this is reported
    current_limit_bound_a: float = 10.0   # |pack limit - ours| above this is reported
    request_hold_s: float = 0.0     # a request older than this falls back to STANDBY (0: holds)

    @property
    def pack_controls(self) -> bool:
        """True if the pack's own BMS controls (report style 'pack')."""
        return self.style == 'pack'


def load_control(can_section: Section) -> ControlConfig:
    """ControlConfig from a profile's ``can:`` Section; ConfigError naming file and field."""
    style = can_section.string('control', 'bms_ros', choices=CONTROL_STYLES)
    if not can_section.has('pack_bms'):
        return ControlConfig(style=style)
    sec = can_section.section('pack_bms')
    if style != 'pack':
        raise can_section.error('pack_bms', "only with control: pack (the pack's own BMS "
                                            'owns the contactors)')
    sec.reject_unknown(PACK_BMS_FIELDS)
    return ControlConfig(
        style=style,
        report_timeout_s=sec.number('report_timeout_s', 0.5, exclusive_minimum=0.0,
                                    maximum=60.0),
        publish_rate_hz=sec.number('publish_rate_hz', 10.0, exclusive_minimum=0.0,
                                   maximum=1000.0),
        second_opinion=sec.boolean('second_opinion', True),
        soc_bound=sec.number('soc_bound', 0.05, exclusive_minimum=0.0, maximum=1.0),
        current_limit_bound_a=sec.number('current_limit_bound_a', 10.0, exclusive_minimum=0.0,
                                         maximum=1e5),
        request_hold_s=sec.number('request_hold_s', 0.0, minimum=0.0, maximum=86400.0))


def control_of_file(profile_path: str | os.PathLike[str]) -> tuple[str, bool]:
    """(``can.control``, ``can.pack_bms.second_opinion``) of a profile file without
    validating it (('bms_ros', True) where unreadable: the nodes then report the file's error
    themselves, exit code 2); for graph.py.
    """
    try:
        with open(os.fspath(profile_path), encoding='utf-8') as stream:
            can_section = yaml.safe_load(stream).get('can') or {}
        style = can_section.get('control', 'bms_ros')
        second = (can_section.get('pack_bms') or {}).get('second_opinion', True)
    except Exception:  # noqa: BLE001  any unreadable profile: the nodes say why
        return 'bms_ros', True
    return (style if style in CONTROL_STYLES else 'bms_ros'), second is not False


def control_style_of_file(profile_path: str | os.PathLike[str]) -> str:
    """``can.control`` of a profile file ('bms_ros' if unreadable)."""
    return control_of_file(profile_path)[0]


def check_style(control: ControlConfig, mapping: CanMapping, where: str) -> None:
    """The mapping fits the control style: style (a) needs the contactor command, style (b)
    the pack report and the state request. ConfigError naming ``where`` (the profile).
    """
    if control.pack_controls:
        missing = [s for s in ('pack_report', 'state_request') if getattr(mapping, s) is None]
        if missing:
            raise ConfigError(where, 'can.control', f"'pack' needs {' and '.join(missing)} in "
                                                    f'the mapping {mapping.path}')
    elif mapping.command('contactor') is None:
        raise ConfigError(where, 'can.control',
                          f"'bms_ros' (the default) needs a contactor command in the mapping "
                          f'{mapping.path}; a pack with its own BMS takes control: pack')


# ---------------------------------------------------------------------- mapping side

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
        dbc_scale, dbc_offset = float(dbc_signal.scale), float(dbc_signal.offset)
        raw_min, raw_max = type_min, type_max
        if kind == 'float':
            bounds = [None if v is None else (v - dbc_offset) / dbc_scale
                      for v in (dbc_signal.minimum, dbc_signal.maximum)]
            if dbc_scale < 0:
                bounds.reverse()
            if bounds[0] is not None:
                raw_min = max(type_min, math.ceil(bounds[0] - 1e-9))
            if bounds[1] is not None:
                raw_max = min(type_max, math.floor(bounds[1] + 1e-9))
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
    keys: set[int] = set()
    for m in mapping.pack_report or ():
        keys.add(m.key)
    if mapping.state_request is not None:
        keys.add(mapping.state_request.key)
    return keys


# ---------------------------------------------------------------------- decoding

@dataclass
class PackReport:
    """The pack's report at one time; NaN / None where not mapped, invalid or stale."""

    state: int                  # our state (STATE_ERROR when unknown or stale)
    state_name: str             # our name, UNKNOWN when unknown or stale
    reason: str
    stale: bool                 # the state (or any mapped field) is older than the timeout
    stale_fields: tuple[str, ...]
    age_s: float                # age of the oldest mapped report message (inf: never)
    pack_soc: float = _NAN
    soh_capacity: float = _NAN
    charge_current_limit_a: float = _NAN
    discharge_current_limit_a: float = _NAN
    pack_voltage_v: float = _NAN
    link_voltage_v: float = _NAN
    pack_current_a: float = _NAN
    # field -> bool, None: unknown
    contactors: dict[str, bool | None] = dc_field(default_factory=dict)
    # (limit_id, level, message) active
    flags: list[tuple[str, int, str]] = dc_field(default_factory=list)
    counts: dict[str, int] = dc_field(default_factory=dict)


REPORT_COUNTS = ('frames', 'wrong_dlc', 'decode_error', 'counter_error', 'invalid_marker',
                 'out_of_range', 'unknown_state')


class ReportDecoder:
    """Decodes the pack report's frames (thread-safe by the caller's lock: one reader)."""

    def __init__(self, mapping: CanMapping) -> None:
        self.mapping = mapping
        self.messages: dict[int, ReportMessage] = {m.key: m for m in mapping.pack_report or ()}
        # (field, name) -> (value, its ReportSignal, message name)
        self._values: dict[tuple[str, str], tuple[Any, ReportSignal, str]] = {}
        self._stamps: dict[str, float] = {}   # message name -> last good frame time (s)
        self._counter_last: dict[str, int] = {}
        self.counts = dict.fromkeys(REPORT_COUNTS, 0)
        self._mapped = {s.field for m in self.messages.values() for s in m.signals}

    def wants(self, msg: can.Message) -> bool:
        """True if ``msg`` is a pack report frame."""
        key = msg.arbitration_id | _EXT if msg.is_extended_id else msg.arbitration_id
        return key in self.messages and not msg.is_error_frame and not msg.is_remote_frame

    def feed(self, msg: can.Message, now_s: float) -> bool:
        """Decode one frame received at ``now_s`` (s); False if not a good report frame.
        Never raises (a malformed object is a decode_error).
        """
        try:
            return self._feed(msg, now_s)
        except Exception:  # noqa: BLE001  malformed objects must not stop the reader
            self.counts['decode_error'] += 1
            return False

    def _feed(self, msg: can.Message, now_s: float) -> bool:
        if not self.wants(msg):
            return False
        key = msg.arbitration_id | _EXT if msg.is_extended_id else msg.arbitration_id
        m = self.messages[key]
        self.counts['frames'] += 1
        if len(msg.data) != m.length:
            self.counts['wrong_dlc'] += 1
            return False
        try:
            raw = cast('dict[str, Any]', m.dbc_message.decode(bytes(msg.data),
                                                              decode_choices=False,
                                                              scaling=False))
        except Exception:  # noqa: BLE001  cantools / bitstruct errors
            self.counts['decode_error'] += 1
            return False
        if m.counter_signal is not None:
            value = raw[m.counter_signal]
            last = self._counter_last.get(m.name)
            self._counter_last[m.name] = value
            if last is not None and value != (last + 1) % m.counter_modulo:
                self.counts['counter_error'] += 1   # repeated or jumped: values withheld
                return False
        for s in m.signals:
            r = raw[s.signal]
            if s.kind == 'float':
                if s.invalid_raw is not None and r == s.invalid_raw:
                    self.counts['invalid_marker'] += 1
                    value = _NAN
                elif r < s.raw_min or r > s.raw_max:
                    self.counts['out_of_range'] += 1
                    value = _NAN
                else:
                    value = r * s.gain + s.bias
            elif s.kind == 'state':
                value = (int(r), s.states.get(int(r)))
                if value[1] is None:
                    self.counts['unknown_state'] += 1
            elif s.kind == 'bool':
                value = None if (s.invalid_raw is not None and r == s.invalid_raw) else bool(r)
            else:
                value = int(r)
            self._values[(s.field, s.name or s.signal)] = (value, s, m.name)
        self._stamps[m.name] = now_s
        return True

    def snapshot(self, now_s: float, timeout_s: float) -> PackReport:
        """The :class:`PackReport` at ``now_s``: values of messages older than ``timeout_s``
        are unknown; the state unknown means state ERROR named UNKNOWN.
        """
        ages = {m.name: now_s - self._stamps.get(m.name, -math.inf)
                for m in self.messages.values()}
        fresh = {name for name, age in ages.items() if age <= timeout_s}
        stale_fields = sorted({s.field for m in self.messages.values() if m.name not in fresh
                               for s in m.signals})
        out: dict[str, float] = {}
        contactors: dict[str, bool | None] = {}
        flags: list[tuple[str, int, str]] = []
        state_raw: tuple[int, int | None] | None = None
        for (field_name, _), (value, s, message_name) in sorted(
                self._values.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            ok = message_name in fresh
            if s.kind == 'float':
                out[field_name] = value if ok else _NAN
            elif s.kind == 'bool':
                contactors[field_name] = value if ok else None
            elif s.kind == 'state':
                state_raw = value if ok else None
            elif ok and value:
                level = FLAG_LEVELS[field_name]
                choice = s.choices.get(value)
                text = f'pack reports {s.name}' + (f': {choice}' if choice else
                                                   ('' if value == 1 else f' (code {value})'))
                flags.append((s.name, level, text))
        for name in ('negative_contactor_closed', 'positive_contactor_closed',
                     'precharge_relay_closed'):
            if name in self._mapped:
                contactors.setdefault(name, None)
        age_s = max(ages.values()) if ages else math.inf
        if state_raw is None:
            state, state_name = STATE_ERROR, UNKNOWN_NAME
            oldest = ages[next(m.name for m in self.messages.values()
                               if any(s.kind == 'state' for s in m.signals))]
            reason = ('no pack report received' if not math.isfinite(oldest)
                      else f'pack report stale: none for {oldest:.2f} s '
                           f'(timeout {timeout_s:g} s)')
        elif state_raw[1] is None:
            state, state_name = STATE_ERROR, UNKNOWN_NAME
            reason = f'pack state raw {state_raw[0]} is not in the mapping'
        else:
            state = state_raw[1]
            state_name = STATE_NAMES[state]
            state_signal = next(s for m in self.messages.values() for s in m.signals
                                if s.kind == 'state')
            choice = state_signal.choices.get(state_raw[0])
            reason = f'pack reports {choice or state_raw[0]}'
        if stale_fields and state_raw is not None:
            reason += f' (stale: {", ".join(stale_fields)})'
        for name in ('pack_soc', 'soh_capacity', 'charge_current_limit_a',
                     'discharge_current_limit_a', 'pack_voltage_v', 'link_voltage_v',
                     'pack_current_a'):
            out.setdefault(name, _NAN)
        return PackReport(state=state, state_name=state_name, reason=reason,
                          stale=bool(stale_fields), stale_fields=tuple(stale_fields),
                          age_s=age_s, contactors=contactors, flags=flags,
                          counts=dict(self.counts), **out)


# ---------------------------------------------------------------------- message fields

def pack_state_fields(report: PackReport, requested_state: int,
                      measurement: dict[str, Any] | None = None) -> dict[str, Any]:
    """PackState field values (no header / commanded) from the report; contactor feedback
    and voltages from the report where mapped, else from the measurement (a dict of
    PackMeasurement fields, or None); unknown feedback reads closed = False.
    """
    fields: dict[str, Any] = {'state': report.state, 'requested_state': requested_state,
              'state_name': report.state_name, 'reason': report.reason}
    for name in ('negative_contactor_closed', 'positive_contactor_closed',
                 'precharge_relay_closed'):
        if name in report.contactors:
            fields[name] = bool(report.contactors[name])
        else:
            fields[name] = bool(measurement.get(name, False)) if measurement else False
    for name in ('pack_voltage_v', 'link_voltage_v'):
        value = getattr(report, name)
        if not math.isfinite(value) and measurement:
            value = float(measurement.get(name, _NAN))
        fields[name] = value
    return fields


def estimate_fields(report: PackReport, cells_series: int) -> dict[str, Any]:
    """BatteryEstimate field values from the report: what the pack does not give is NaN;
    the limits are 0 A while the report is stale (unknown is never OK).
    """
    nan_cells = [_NAN] * cells_series
    fields: dict[str, Any] = {'cell_soc': list(nan_cells), 'cell_capacity_ah': list(nan_cells),
              'cell_r0_ohm': list(nan_cells)}
    for name in ('pack_soc_min', 'pack_soc_max', 'remaining_charge_ah', 'capacity_ah',
                 'soh_resistance', 'charge_current_limit_long_a',
                 'discharge_current_limit_long_a', 'horizon_short_s', 'horizon_long_s',
                 'current_offset_a'):
        fields[name] = _NAN
    fields['pack_soc'] = report.pack_soc
    fields['soh_capacity'] = report.soh_capacity
    charge, discharge = _limits(report)
    fields['charge_current_limit_a'] = charge
    fields['discharge_current_limit_a'] = discharge
    fields['at_rest'] = False
    return fields


def _limits(report: PackReport) -> tuple[float, float]:
    """(charge, discharge) current limits, A (magnitudes): 0 while stale or faulted."""
    if report.state_name == UNKNOWN_NAME or any(level >= LEVEL_TRIP
                                                for _, level, _ in report.flags):
        return 0.0, 0.0
    return (abs(report.charge_current_limit_a), abs(report.discharge_current_limit_a))


def protection_fields(report: PackReport) -> dict[str, Any]:
    """ProtectionStatus field values: the pack's active flags as events (dicts with the
    ProtectionEvent fields), a stale report as a trip-level ``pack_report_stale`` event.
    """
    events: list[dict[str, Any]] = [
        {'limit_id': limit_id, 'level': level, 'index': -1, 'value': 1.0, 'threshold': 1.0,
         'unit': '', 'active': True, 'latched': level >= LEVEL_TRIP, 'message': text}
        for limit_id, level, text in report.flags]
    if report.state_name == UNKNOWN_NAME:
        age = report.age_s
        events.append({'limit_id': STALE_EVENT, 'level': LEVEL_TRIP, 'index': -1,
                       'value': age if math.isfinite(age) else _NAN, 'threshold': _NAN,
                       'unit': 's', 'active': True, 'latched': False,
                       'message': report.reason})
    elif report.state == STATE_ERROR and not any(e['level'] >= LEVEL_TRIP for e in events):
        events.append({'limit_id': 'pack_error', 'level': LEVEL_TRIP, 'index': -1,
                       'value': 1.0, 'threshold': 1.0, 'unit': '', 'active': True,
                       'latched': True, 'message': report.reason})
    charge, discharge = _limits(report)
    return {'max_level': max([LEVEL_OK] + [e['level'] for e in events]),
            'trip_latched': any(e['latched'] for e in events),
            'active': events,
            'charge_current_limit_a': charge, 'discharge_current_limit_a': discharge}


def battery_health(report: PackReport,
                   power_supply_health: Callable[[list[tuple[str, int]]], str]) -> str:
    """BatteryState health name from the report (``power_supply_health`` is
    core.estimation.interface's): UNKNOWN while stale, else from the active flags.
    """
    if report.state_name == UNKNOWN_NAME:
        return 'UNKNOWN'
    events = [(e['limit_id'], e['level']) for e in protection_fields(report)['active']]
    return power_supply_health(events)


def disagreements(report: PackReport, own_estimate: float, own_limits: Sequence[float],
                  control: ControlConfig) -> list[tuple[str, float, float, float, float]]:
    """(what, pack value, our value, |difference|, bound) where the pack and our own
    estimate / protection differ beyond the bounds of ``control``. ``own_estimate``:
    our pack SoC (0..1, NaN if none); ``own_limits``: our (charge, discharge) limits, A.
    """
    out: list[tuple[str, float, float, float, float]] = []
    if report.state_name == UNKNOWN_NAME:
        return out
    rows = [('pack_soc', report.pack_soc, own_estimate, control.soc_bound)]
    charge, discharge = _limits(report)
    if math.isfinite(report.charge_current_limit_a):
        rows.append(('charge_current_limit_a', charge, own_limits[0],
                     control.current_limit_bound_a))
    if math.isfinite(report.discharge_current_limit_a):
        rows.append(('discharge_current_limit_a', discharge, own_limits[1],
                     control.current_limit_bound_a))
    for what, theirs, ours, bound in rows:
        if math.isfinite(theirs) and math.isfinite(ours) and abs(theirs - ours) > bound:
            out.append((what, theirs, ours, abs(theirs - ours), bound))
    return out


def trip_disagreement(report: PackReport, own_trips: Collection[str]) -> str | None:
    """A text when our own protection holds latched trips (``own_trips``: their limit ids)
    while the pack reports no fault, else None (a known report only).
    """
    if report.state_name == UNKNOWN_NAME or not own_trips:
        return None
    if any(level >= LEVEL_TRIP for _, level, _ in report.flags) or report.state == STATE_ERROR:
        return None
    return f'bms_ros trips {", ".join(sorted(own_trips))}, the pack reports no fault'


# ---------------------------------------------------------------------- the request

class RequestEncoder:
    """Our requested state -> the pack's state-request frame (rolling counter +1 per frame)."""

    def __init__(self, request_map: StateRequestMap) -> None:
        self.map = request_map
        self._counter = 0

    def value_of(self, state: int) -> int | None:
        """Raw value of the state-request signal for our ``state``; None if not requestable."""
        return self.map.values.get(int(state))

    def frame(self, state: int) -> can.Message:
        """One state-request frame for ``state`` (STANDBY / DRIVE / CHARGE)."""
        m = self.map
        raw: dict[str, int] = dict.fromkeys(m.other_signals, 0)
        value = self.value_of(state)
        if value is None:
            raise ValueError(f'state {state} cannot be requested')
        raw[m.signal] = value
        if m.counter_signal is not None:
            raw[m.counter_signal] = self._counter
            self._counter = (self._counter + 1) % m.counter_modulo
        data = m.dbc_message.encode(raw, scaling=False, padding=False, strict=False)
        return can.Message(arbitration_id=m.frame_id, is_extended_id=m.is_extended,
                           data=data, dlc=len(data), is_rx=False)


class RequestHold:
    """The request to forward now: the last accepted one, or STANDBY once it is older than
    ``hold_s`` (0: it holds until the next), on the caller's monotonic clock (s).
    """

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.state: int = STATE_STANDBY
        self._since: float | None = None

    def set(self, state: int, now_s: float) -> None:
        """Accept ``state`` as the request at ``now_s`` (s)."""
        self.state = int(state)
        self._since = now_s

    def current(self, now_s: float) -> int:
        """The request to forward at ``now_s`` (s): the last one, or STANDBY once too old."""
        if self.hold_s > 0.0 and self._since is not None and now_s - self._since > self.hold_s:
            self.state = STATE_STANDBY
            self._since = None
        return self.state


def decode_request(request_map: StateRequestMap, msg: can.Message) -> int | None:
    """Pack side: our requested state (int) of a state-request frame; None if not one or
    its value means nothing we request.
    """
    key = msg.arbitration_id | _EXT if msg.is_extended_id else msg.arbitration_id
    if key != request_map.key or msg.is_error_frame or msg.is_remote_frame:
        return None
    try:
        raw = decode_frame(request_map.dbc_message, msg.data)
    except DecodeError:
        return None
    value = raw.get(request_map.signal)
    return next((s for s, v in request_map.values.items() if v == value), None)


class ReportEncoder:
    """Pack side (tests, log generators): report frames from field values.

    ``values``: field -> value; ``state`` is our state name or int (the first raw value
    mapped to it is sent), flags by their limit_id (name) -> raw int.
    """

    def __init__(self, mapping: CanMapping) -> None:
        self.messages = list(mapping.pack_report or ())
        self._counter: dict[str, int] = {}

    def frames(self, values: dict[str, Any],
               flags: dict[str, int] | None = None) -> list[can.Message]:
        """Report frames for ``values`` (field -> value) and ``flags`` (limit_id -> raw int)."""
        flags = flags or {}
        frames: list[can.Message] = []
        for m in self.messages:
            raw = {s.name: 0 for s in m.dbc_message.signals}
            for s in m.signals:
                if s.kind == 'state':
                    state = values.get('state', STATE_STANDBY)
                    state = STATE_OF_NAME.get(state, state)
                    raw[s.signal] = next((r for r, ours in sorted(s.states.items())
                                          if ours == state), 0)
                elif s.kind == 'flag':
                    raw[s.signal] = int(flags.get(s.name, 0))
                elif s.kind == 'bool':
                    raw[s.signal] = int(bool(values.get(s.field, False)))
                else:
                    value = values.get(s.field, _NAN)
                    if value is None or not math.isfinite(value):
                        raw[s.signal] = s.invalid_raw if s.invalid_raw is not None else 0
                    else:
                        raw[s.signal] = max(s.raw_min, min(s.raw_max,
                                                           round((value - s.bias) / s.gain)))
            if m.counter_signal is not None:
                counter = self._counter.get(m.name, 0)
                raw[m.counter_signal] = counter
                self._counter[m.name] = (counter + 1) % m.counter_modulo
            data = m.dbc_message.encode(raw, scaling=False, padding=False, strict=False)
            frames.append(can.Message(arbitration_id=m.frame_id, is_extended_id=m.is_extended,
                                      data=data, dlc=len(data), is_rx=False))
        return frames


__all__ = ['CONTROL_STYLES', 'ControlConfig', 'PackReport', 'REPORT_FIELDS', 'ReportDecoder',
           'ReportEncoder', 'RequestEncoder', 'RequestHold', 'StateRequestMap',
           'battery_health', 'check_style', 'control_of_file', 'control_style_of_file',
           'decode_request', 'disagreements', 'estimate_fields', 'load_control',
           'load_report_sections', 'pack_state_fields', 'protection_fields', 'report_keys',
           'trip_disagreement']
