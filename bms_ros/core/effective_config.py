"""A node's effective configuration (the profile with every default applied) as flat names.

``flatten(config, prefix)`` turns a configuration dataclass (or dict, list, number, string)
into {'prefix.field.sub': value} with only the value types a ROS parameter can hold (bool, int,
float, str, and lists of one of them); the nodes declare these as read-only parameters, so
`bmsctl config` and the parameter services read what a node really runs with. A list of
records is keyed by a record's ``limit_id`` or ``name`` when it has one, else by its position.
"""
from __future__ import annotations

import dataclasses
import enum
import math
import os
from typing import Any

import numpy as np

SCALARS = (bool, int, float, str)

# a ROS parameter value: a scalar or a list of one scalar type
Scalar = bool | int | float | str
ParameterValue = Scalar | list[Any]


def _key(item: Any, position: int) -> str:
    for attribute in ('limit_id', 'name'):
        value = item.get(attribute) if isinstance(item, dict) else getattr(item, attribute, None)
        if isinstance(value, str) and value:
            return value
    return str(position)


def _is_record(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type) \
        or isinstance(value, dict)


def _fields(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return list(value.items())
    return [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]


def _scalar(value: Any) -> Scalar | None:
    """A ROS parameter value of a scalar, or None if it has no such type."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, enum.Enum):
        return str(value.value if isinstance(value.value, str) else value.name)
    if isinstance(value, (str, os.PathLike)):
        return str(value)
    return None


def flatten(config: Any, prefix: str) -> dict[str, ParameterValue]:
    """{dotted name: ROS-compatible value} of ``config`` under ``prefix`` (None is left out;
    an empty list is an empty string list; a list of mixed types becomes strings).
    """
    out: dict[str, ParameterValue] = {}
    _walk(config, prefix, out)
    return out


def _walk(value: Any, name: str, out: dict[str, ParameterValue]) -> None:
    if value is None:
        return
    scalar = _scalar(value)
    if scalar is not None:
        out[name] = scalar
        return
    if _is_record(value):
        for field, item in _fields(value):
            if not str(field).startswith('_'):
                _walk(item, f'{name}.{field}', out)
        return
    if isinstance(value, (list, tuple, np.ndarray, set, frozenset)):
        items = list(value.tolist() if isinstance(value, np.ndarray) else value)
        if items and all(_is_record(item) for item in items):
            for position, item in enumerate(items):
                _walk(item, f'{name}.{_key(item, position)}', out)
            return
        if items and any(isinstance(item, (list, tuple, np.ndarray)) for item in items):
            for position, item in enumerate(items):      # a table: one list per row
                _walk(item, f'{name}.{position}', out)
            return
        scalars = [_scalar(item) for item in items]
        if any(s is None for s in scalars):
            out[name] = [str(item) for item in items]
        elif not scalars:
            out[name] = []
        elif all(isinstance(s, bool) for s in scalars):
            out[name] = scalars
        elif all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scalars):
            kinds = {type(s) for s in scalars}
            out[name] = scalars if kinds == {int} else [float(s or 0) for s in scalars]
        else:
            out[name] = [str(s) for s in scalars]
        return
    # anything else (a load profile object, a curve): its description if it has one
    text = getattr(value, 'description', None)
    out[name] = text if isinstance(text, str) else type(value).__name__


def format_value(value: Any) -> str:
    """A parameter value as bmsctl config prints it."""
    if isinstance(value, float):
        return 'nan' if math.isnan(value) else f'{value:g}'
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(format_value(v) for v in value) + ']'
    return str(value)
