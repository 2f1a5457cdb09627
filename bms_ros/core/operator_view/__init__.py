"""Operator texts: the status line, the full-screen view's panels and the replies of bmsctl.

Pure functions from messages-as-dicts (the bms_interfaces / sensor_msgs field names; nested
messages as dicts, arrays as lists) to text, so they are tested without ROS. ``latest`` maps a
topic name (TOPIC_SOURCES) to the latest message dict of that topic, or None.
docs/operator.md explains every field. One concept per module:

* ``words``: the shared words (levels, states, topic sources) and number formats;
* ``status_line``: the status line's fields, their drop order and the line;
* ``screen``: the full-screen view's panels (bmsctl top);
* ``replies``: the replies to the operator's service calls.
"""
from .replies import reset_reply
from .screen import (
    bar,
    cell_panel,
    events_panel,
    limits_panel,
    pack_panel,
    protection_panel,
    stamp_text,
    temperature_panel,
    view_panels,
    view_text,
)
from .status_line import (
    DEFAULT_FIELDS,
    DROP_ORDER,
    FIELDS,
    PROTECTION_MIN_WIDTH,
    WIDE_FIELDS,
    missing_text,
    needed_topics,
    parse_fields,
    protection_summary,
    status_line,
)
from .words import (
    LEVEL_WORDS,
    LINE_WIDTH,
    STATE_NAMES,
    TOPIC_SOURCES,
    Latest,
    Message,
    contactor_text,
    limit_name,
)

__all__ = [
    'DEFAULT_FIELDS', 'DROP_ORDER', 'FIELDS', 'LEVEL_WORDS', 'LINE_WIDTH', 'Latest', 'Message',
    'PROTECTION_MIN_WIDTH', 'STATE_NAMES', 'TOPIC_SOURCES', 'WIDE_FIELDS', 'bar', 'cell_panel',
    'contactor_text', 'events_panel', 'limit_name', 'limits_panel', 'missing_text',
    'needed_topics', 'pack_panel', 'parse_fields', 'protection_panel', 'protection_summary',
    'reset_reply', 'stamp_text', 'status_line', 'temperature_panel', 'view_panels', 'view_text']
