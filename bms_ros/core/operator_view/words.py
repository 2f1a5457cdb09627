"""The words and number formats every operator text shares: levels, states, topic sources."""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

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

# a message as a dict of its field names (nested messages as dicts, arrays as lists)
Message = Mapping[str, Any]
# topic name (TOPIC_SOURCES) -> the latest message dict of that topic, or None
Latest = Mapping[str, Message | None]


def finite(values: Iterable[float | None] | None) -> list[float]:
    """The finite ones of ``values`` as floats (None and NaN left out)."""
    return [float(v) for v in values or () if v is not None and math.isfinite(v)]


def num(value: float | None, spec: str, missing: str = 'n/a') -> str:
    """``value`` formatted with ``spec``, or ``missing`` for None and non-finite values."""
    return format(value, spec) if value is not None and math.isfinite(value) else missing


def limit_name(event: Message) -> str:
    """'cell_overvoltage[3]' of an event dict (no index for a pack-wide one)."""
    index = event.get('index', -1)
    return str(event['limit_id']) + (f'[{index}]' if index is not None and index >= 0 else '')


def contactor_text(state: Message) -> str:
    """Feedback of the three contactors of a pack_state dict: 'NEG+POS closed', 'all open'."""
    closed = [name for name, key in (('NEG', 'negative_contactor_closed'),
                                     ('PRE', 'precharge_relay_closed'),
                                     ('POS', 'positive_contactor_closed')) if state.get(key)]
    return '+'.join(closed) + ' closed' if closed else 'all open'
