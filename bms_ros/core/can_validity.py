"""Validity rules of a mapped signal, checked against its DBC: which signals are flags, the
multiplexer branches a signal is in, the valid raw range, and the ``invalid_flag`` /
``error_bits`` signals beside a value (docs/can.md, "Validity").
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .can_names import suggest
from .can_raw import dbc_raw_range

if TYPE_CHECKING:
    from cantools.database.can import Signal

    from .config import Section


def branch_values(dbc_signal: Signal, mux_signal: str,
                   signals_by_name: dict[str, Signal]) -> tuple[int, ...] | None:
    """Values of multiplexer ``mux_signal`` whose branch carries ``dbc_signal`` (nested
    multiplexing followed upwards); None if the signal is in every frame of the message.
    """
    signal = dbc_signal
    while signal.multiplexer_signal is not None:
        if signal.multiplexer_signal == mux_signal:
            return tuple(signal.multiplexer_ids or ())
        signal = signals_by_name[signal.multiplexer_signal]
    return None



def is_boolean_signal(dbc_signal: Signal) -> bool:
    """True for a 1-bit signal, or one whose named choices are exactly 0 and 1 and whose DBC
    range holds nothing else (a flag, not a value).
    """
    if dbc_signal.length == 1:
        return True
    choices: Mapping[Any, Any] = dbc_signal.choices or {}
    if {int(k) for k in choices} != {0, 1}:
        return False
    hi = dbc_signal.maximum
    return hi is not None and (hi - float(dbc_signal.offset)) / float(dbc_signal.scale) <= 1.0



def valid_raw_range(sec: Section, dbc_signal: Signal, dbc_name: str) -> tuple[int, int]:
    """(lowest, highest) valid raw value of a value signal: the DBC's [minimum|maximum] in raw
    units, within the range its bits hold; ConfigError naming the entry if it is empty.
    """
    name = dbc_signal.name
    raw_min, raw_max = dbc_raw_range(dbc_signal)
    if raw_min > raw_max:
        raise sec.error('signal', f"'{name}' has an empty [minimum|maximum] range in "
                                  f'{dbc_name}')
    return raw_min, raw_max


def _branch_chain(dbc_signal: Signal, signals_by_name: dict[str, Signal]) -> dict[str, set[int]]:
    """{multiplexer name: values} that must hold for ``dbc_signal`` to be in a frame."""
    chain: dict[str, set[int]] = {}
    signal = dbc_signal
    while signal.multiplexer_signal is not None:
        chain[signal.multiplexer_signal] = set(signal.multiplexer_ids or ())
        signal = signals_by_name[signal.multiplexer_signal]
    return chain


def _always_beside(flag_signal: Signal, value_signal: Signal,
                   signals_by_name: dict[str, Signal]) -> bool:
    """True if every frame carrying ``value_signal`` carries ``flag_signal`` too."""
    value_chain = _branch_chain(value_signal, signals_by_name)
    for mux, values in _branch_chain(flag_signal, signals_by_name).items():
        if mux not in value_chain or not value_chain[mux] <= values:
            return False
    return True


def validity(sec: Section, dbc_signal: Signal, signals_by_name: dict[str, Signal],
              message_name: str) -> tuple[str | None, int, str | None, int]:
    """(invalid_flag, invalid_when, error_bits, error_mask) of one mapped signal, checked:
    the signals exist in the same message and in every frame that carries the value.
    """
    found: dict[str, Signal] = {}
    for key in ('invalid_flag', 'error_bits'):
        if not sec.has(key):
            continue
        name = sec.string(key)
        other = signals_by_name.get(name)
        if other is None:
            raise sec.error(key, f"unknown signal '{name}' in message '{message_name}'"
                            + suggest(name, list(signals_by_name)))
        if name == dbc_signal.name or other.is_multiplexer:
            raise sec.error(key, f"'{name}' is " + ('the value itself' if name == dbc_signal.name
                                                    else 'a multiplexer') + ', not a flag')
        if not _always_beside(other, dbc_signal, signals_by_name):
            raise sec.error(key, f"'{name}' is not in every frame that carries "
                                 f"'{dbc_signal.name}' (another multiplexer branch)")
        if other.conversion.is_float:
            raise sec.error(key, f"'{name}' is a floating-point signal, not a flag")
        found[key] = other
    flag_invalid = 1
    if 'invalid_flag' in found:
        flag = found['invalid_flag']
        if not is_boolean_signal(flag):
            raise sec.error('invalid_flag', f"'{flag.name}' has {flag.length} bits: an "
                                            'invalid_flag is a 1-bit or boolean signal '
                                            '(error_bits takes a multi-bit one)')
        flag_invalid = sec.integer('invalid_when', 1, minimum=0, maximum=1)
    elif sec.has('invalid_when'):
        raise sec.error('invalid_when', 'only with an invalid_flag')
    error_mask = 0
    if 'error_bits' in found:
        error = found['error_bits']
        if error.is_signed:
            raise sec.error('error_bits', f"'{error.name}' is signed: error bits are an "
                                          'unsigned signal')
        full = (1 << error.length) - 1
        error_mask = sec.integer('error_mask', full, minimum=1, maximum=full)
    elif sec.has('error_mask'):
        raise sec.error('error_mask', 'only with error_bits')
    return (found['invalid_flag'].name if 'invalid_flag' in found else None, flag_invalid,
            found['error_bits'].name if 'error_bits' in found else None, error_mask)


# the name before the split (can_decode used it)
_branch_values = branch_values
