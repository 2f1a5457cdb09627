"""Fill any generated ROS message with deterministic pseudo-random values, by introspection."""
import importlib
import random

from rosidl_parser.definition import (
    AbstractNestedType,
    AbstractString,
    Array,
    BasicType,
    BoundedSequence,
    NamespacedType,
)

_INT_RANGES = {
    'int8': (-128, 127), 'uint8': (0, 255), 'int16': (-2**15, 2**15 - 1), 'uint16': (0, 2**16 - 1),
    'int32': (-2**31, 2**31 - 1), 'uint32': (0, 2**32 - 1), 'int64': (-2**63, 2**63 - 1),
    'uint64': (0, 2**64 - 1), 'octet': (0, 255), 'char': (0, 255),
}


def _basic(rng, typename):
    if typename == 'boolean':
        return rng.random() < 0.5
    if typename in ('float', 'double'):
        return rng.randint(-2**20, 2**20) / 64.0  # exactly representable in float32
    low, high = _INT_RANGES[typename]
    if typename == 'octet':
        return bytes([rng.randint(low, high)])
    return rng.randint(low, high)


def _value(rng, slot):
    if isinstance(slot, BasicType):
        return _basic(rng, slot.typename)
    if isinstance(slot, AbstractString):
        return ''.join(rng.choice('abcdefghij _-XYZ0123456789') for _ in range(rng.randint(0, 12)))
    if isinstance(slot, NamespacedType):
        module = importlib.import_module('.'.join(slot.namespaces))
        return fill(getattr(module, slot.name)(), rng)
    if isinstance(slot, AbstractNestedType):
        if isinstance(slot, Array):
            size = slot.size
        else:
            size = rng.randint(0, 5)
            if isinstance(slot, BoundedSequence):
                size = min(size, slot.maximum_size)
        return [_value(rng, slot.value_type) for _ in range(size)]
    raise TypeError(f'unsupported slot type {slot!r}')


def fill(msg, rng):
    """Set every field of ``msg`` from ``rng`` (random.Random); returns ``msg``."""
    if isinstance(rng, int):
        rng = random.Random(rng)
    for name, slot in zip(msg.get_fields_and_field_types(), msg.SLOT_TYPES):
        setattr(msg, name, _value(rng, slot))
    return msg


def all_interfaces():
    """(kind, name, class) of every message and service in bms_interfaces."""
    import bms_interfaces.msg as msgs
    import bms_interfaces.srv as srvs
    found = []
    for module, kind in ((msgs, 'msg'), (srvs, 'srv')):
        for name in sorted(dir(module)):
            cls = getattr(module, name)
            if name.startswith('_') or not isinstance(cls, type):
                continue
            if kind == 'srv' and not hasattr(cls, 'Request'):
                continue
            if kind == 'msg' and not hasattr(cls, 'get_fields_and_field_types'):
                continue
            found.append((kind, name, cls))
    return found
