"""What a bms_ros bag holds: the suite's topics, their types and QoS, and a rosbags typestore.

Pure Python (rosbags, no rclpy): the recorder, the player, the offline replay and bms-report all
read the same table, so a topic is named and typed in one place. Message definitions of
bms_interfaces come from its .msg files (installed share, else the source tree); the standard
ROS 2 types from rosbags' Jazzy store, whose RIHS01 hashes equal rosidl's type descriptions.
"""
from __future__ import annotations

import glob
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import contract
from .errors import BmsError

if TYPE_CHECKING:
    from rosbags.interfaces import Qos
    from rosbags.typesys.store import Typestore

STREAM = 'stream'      # RELIABLE, VOLATILE: periodic data
LATCHED = 'latched'    # RELIABLE, TRANSIENT_LOCAL: events and states a late joiner must get
BEST_EFFORT = 'best_effort'

# rmw's "infinite" duration as rosbag2 (Jazzy) writes it in metadata.yaml
INFINITE_SEC = 9223372036
INFINITE_NSEC = 854775807


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the suite: relative name, ROS 2 type name, QoS kind and history depth."""

    name: str
    msgtype: str
    kind: str = STREAM
    depth: int = 100


# The recorded topics of the suite, with type and QoS from bms_ros.core.contract. Depths are the
# recorder's and player's: a stream's at least contract.PROBE's (100), deep enough that a 10 Hz
# stream never drops while the writer is busy; a latched topic's as its publisher offers.
RECORDED = ('can_rx', 'measurement', 'estimate', 'battery_state', 'trip_event',
            'protection_status', 'pack_state', 'balancing_status', 'balancing_command',
            'contactor_command', 'sim_truth', 'load_demand')


def _spec(name: str) -> TopicSpec:
    topic = contract.TOPICS[name]
    if topic.qos.transient_local:
        return TopicSpec(name, topic.msgtype, LATCHED, topic.qos.depth)
    return TopicSpec(name, topic.msgtype, STREAM, max(topic.qos.depth, contract.PROBE.depth))


TOPICS = {name: _spec(name) for name in RECORDED}

CLOCK_TYPE = 'rosgraph_msgs/msg/Clock'


class BagError(BmsError):
    """A bag cannot be written or read, or holds no data the tool needs."""


def topic_names() -> list[str]:
    """The relative names of every recordable topic."""
    return list(TOPICS)


def resolve(namespace: str | None, name: str) -> str:
    """Absolute topic name of relative ``name`` in ``namespace`` ('' or 'pack_a' or '/pack_a')."""
    ns = (namespace or '').strip('/')
    return f'/{ns}/{name}' if ns else f'/{name}'


def relative(namespace: str | None, topic: str) -> str | None:
    """Relative name of absolute ``topic`` if it lies in ``namespace``, else None."""
    prefix = resolve(namespace, '')
    return topic[len(prefix):] if topic.startswith(prefix) and '/' not in topic[len(prefix):] \
        else None


def select(names: Sequence[str] | None = None) -> list[TopicSpec]:
    """TopicSpecs for ``names`` (None: all); BagError naming an unknown topic."""
    if not names:
        return list(TOPICS.values())
    unknown = [n for n in names if n.strip('/') not in TOPICS]
    if unknown:
        raise BagError(f'unknown topic {unknown[0]!r} (known: {", ".join(TOPICS)})')
    return [TOPICS[n.strip('/')] for n in names]


def qos_fields(kind: str, depth: int) -> dict[str, Any]:
    """The offered QoS of a kind as rosbag2 v9 metadata fields (strings, sec/nsec durations)."""
    infinite = {'sec': INFINITE_SEC, 'nsec': INFINITE_NSEC}
    return {
        'history': 'keep_last', 'depth': int(depth),
        'reliability': 'best_effort' if kind == BEST_EFFORT else 'reliable',
        'durability': 'transient_local' if kind == LATCHED else 'volatile',
        'deadline': dict(infinite), 'lifespan': dict(infinite), 'liveliness': 'automatic',
        'liveliness_lease_duration': dict(infinite), 'avoid_ros_namespace_conventions': False}


def rosbags_qos(fields: dict[str, Any]) -> Qos:
    """rosbags Qos from a qos_fields()-shaped dict (names as rosbag2 v9 writes them)."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    def time(value: dict[str, Any]) -> QosTime:
        return QosTime(int(value['sec']), int(value['nsec']))

    return Qos(QosHistory[fields['history'].upper()], int(fields['depth']),
               QosReliability[fields['reliability'].upper()],
               QosDurability[fields['durability'].upper()], time(fields['deadline']),
               time(fields['lifespan']), QosLiveliness[fields['liveliness'].upper()],
               time(fields['liveliness_lease_duration']),
               bool(fields['avoid_ros_namespace_conventions']))


# ------------------------------------------------------------------------- type definitions

def share_dir(package: str) -> str | None:
    """share/<package> of an installed interface package, or None."""
    candidates: list[str] = []
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            candidates.append(os.path.join(prefix, 'share', package))
    candidates.append(os.path.join(sys.prefix, 'share', package))
    for path in candidates:
        if os.path.isdir(os.path.join(path, 'msg')):
            return path
    return None


def interface_msg_dir() -> str:
    """The folder of bms_interfaces' .msg files: installed share, else the source tree."""
    installed = share_dir('bms_interfaces')
    if installed:
        return os.path.join(installed, 'msg')
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    source = os.path.join(here, 'bms_interfaces', 'msg')
    if os.path.isdir(source):
        return source
    raise BagError('bms_interfaces .msg files not found (neither installed nor in the source tree)')


_TYPESTORE: Typestore | None = None


def typestore() -> Typestore:
    """rosbags typestore: ROS 2 Jazzy standard types plus bms_interfaces (built once)."""
    global _TYPESTORE
    if _TYPESTORE is None:
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore
        store = get_typestore(Stores.ROS2_JAZZY)
        types: dict[str, Any] = {}
        for path in sorted(glob.glob(os.path.join(interface_msg_dir(), '*.msg'))):
            name = 'bms_interfaces/msg/' + os.path.splitext(os.path.basename(path))[0]
            with open(path, encoding='utf-8') as stream:
                types.update(get_types_from_msg(stream.read(), name))
        store.register(types)
        _TYPESTORE = store
    return _TYPESTORE


def rihs01(msgtype: str) -> str:
    """RIHS01 type description hash of ``msgtype`` ('RIHS01_<64 hex>')."""
    return typestore().hash_rihs01(msgtype)


def rosidl_rihs01(msgtype: str) -> str | None:
    """The hash rosidl generated for ``msgtype`` (share/<pkg>/msg/<T>.json), or None."""
    package, _, name = msgtype.split('/')
    folder = share_dir(package)
    if folder is None:
        return None
    path = os.path.join(folder, 'msg', name + '.json')
    try:
        with open(path, encoding='utf-8') as stream:
            hashes = json.load(stream)['type_hashes']
    except (OSError, ValueError, KeyError):
        return None
    for entry in hashes:
        if entry.get('type_name') == msgtype:
            return entry.get('hash_string')
    return None


def message_definition(msgtype: str) -> str:
    """The concatenated .msg definition (ros2msg, dependencies after '=' lines) of ``msgtype``."""
    text, _ = typestore().generate_msgdef(msgtype, ros_version=2)
    return text



# ------------------------------------------------------------------------ building messages

_NUMPY_TYPES = {'bool': 'bool', 'int8': 'int8', 'uint8': 'uint8', 'byte': 'uint8',
                'char': 'uint8', 'int16': 'int16', 'uint16': 'uint16', 'int32': 'int32',
                'uint32': 'uint32', 'int64': 'int64', 'uint64': 'uint64', 'float32': 'float32',
                'float64': 'float64'}


def new_message(msgtype: str, **fields: Any) -> Any:
    """A rosbags message object of ``msgtype``: ``fields`` as given, every other field zero.

    Primitive arrays are numpy arrays of the field's dtype (as rosbags deserializes them).
    """
    import numpy as np
    from rosbags.typesys.base import Nodetype

    store = typestore()
    _, defs = store.fielddefs[msgtype]
    names = [name for name, _ in defs]
    unknown = set(fields) - set(names)
    if unknown:
        raise BagError(f'{msgtype} has no field {sorted(unknown)[0]!r}')

    def default(desc: Any) -> Any:
        kind, arg = desc
        if kind == Nodetype.NAME:
            return new_message(arg)
        if kind == Nodetype.BASE:
            base = arg[0]
            return '' if base in ('string', 'wstring') else (False if base == 'bool' else 0)
        (sub_kind, sub_arg), length = arg
        count = length if kind == Nodetype.ARRAY else 0
        if sub_kind == Nodetype.BASE and sub_arg[0] in _NUMPY_TYPES:
            return np.zeros(count, _NUMPY_TYPES[sub_arg[0]])
        return [default((sub_kind, sub_arg)) for _ in range(count)]

    def coerce(desc: Any, value: Any) -> Any:
        kind, arg = desc
        if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            (sub_kind, sub_arg), _ = arg
            if sub_kind == Nodetype.BASE and sub_arg[0] in _NUMPY_TYPES:
                return np.asarray(value, dtype=_NUMPY_TYPES[sub_arg[0]])
        if kind == Nodetype.BASE and arg[0] in ('float32', 'float64'):
            return float(value)
        return value

    values = {name: coerce(desc, fields[name]) if name in fields else default(desc)
              for name, desc in defs}
    return store.types[msgtype](**values)


def upgrade_message(message: Any, msgtype: str) -> Any:
    """``message`` (read with an older definition of ``msgtype``) as today's type: the fields
    both have are copied, fields added since take their defaults (0, false, empty).
    """
    _, defs = typestore().fielddefs[msgtype]
    return new_message(msgtype, **{name: getattr(message, name) for name, _ in defs
                                   if hasattr(message, name)})


def time_message(t_s: float) -> Any:
    """builtin_interfaces/Time of ``t_s`` seconds."""
    ns = int(round(t_s * 1e9))
    return new_message('builtin_interfaces/msg/Time', sec=ns // 10 ** 9, nanosec=ns % 10 ** 9)
