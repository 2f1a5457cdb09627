"""Loading and validating YAML configuration with errors that name the file and field.

Every configuration section is read through a :class:`Section`, which knows the file it
came from and the dotted path of the field being read, so a bad value is reported as
``config/profiles/lfp_16s.yaml: cell.capacity_ah: expected a number > 0, got -3``.
"""
from __future__ import annotations

import csv
import math
import os
from collections.abc import Collection, Iterable
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray

from .errors import ConfigError

_MISSING: Any = object()


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML file whose top level is a mapping; raise ConfigError otherwise."""
    path = os.fspath(path)
    try:
        with open(path, encoding='utf-8') as stream:
            data = yaml.safe_load(stream)
    except FileNotFoundError:
        raise ConfigError(path, '', 'file not found') from None
    except OSError as error:
        raise ConfigError(path, '', f'cannot read: {error.strerror}') from None
    except yaml.YAMLError as error:
        raise ConfigError(path, '', f'invalid YAML: {error}') from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, '', f'expected a mapping at top level, got {type(data).__name__}')
    return data


def load_csv(path: str | os.PathLike[str], header: str) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts (``#`` lines are comments); ConfigError if the file is
    missing, unreadable or has no rows (``header``: the expected header, for the message).
    """
    path = os.fspath(path)
    try:
        with open(path, newline='', encoding='utf-8') as stream:
            rows = list(csv.DictReader(row for row in stream if not row.startswith('#')))
    except FileNotFoundError:
        raise ConfigError(path, '', 'file not found') from None
    except OSError as error:
        raise ConfigError(path, '', f'cannot read: {error.strerror}') from None
    if not rows:
        raise ConfigError(path, '', f'no rows (expected header {header})')
    return rows


def csv_columns(path: str | os.PathLike[str], rows: list[dict[str, str]],
                names: Iterable[str]) -> dict[str, NDArray[np.float64]]:
    """The columns ``names`` of ``rows`` (from :func:`load_csv`) as float arrays; ConfigError
    naming the row and column of the first value that is not a finite number.
    """
    columns: dict[str, list[float]] = {name: [] for name in names}
    for line, row in enumerate(rows, start=2):
        for name in names:
            try:
                value = float(row[name])
            except (TypeError, ValueError):
                raise ConfigError(path, f'row {line}.{name}',
                                  f'expected a number, got {row[name]!r}') from None
            if not math.isfinite(value):
                raise ConfigError(path, f'row {line}.{name}', f'not finite: {value}')
            columns[name].append(value)
    return {name: np.array(values, dtype=float) for name, values in columns.items()}


class Section:
    """A mapping from a configuration file, read field by field with validation."""

    def __init__(self, data: Any, path: str | os.PathLike[str], prefix: str = '') -> None:
        if not isinstance(data, dict):
            raise ConfigError(path, prefix, f'expected a mapping, got {type(data).__name__}')
        self.data: dict[str, Any] = data
        self.path = os.fspath(path)
        self.prefix = prefix

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Section:
        """Load ``path`` and return its top-level section."""
        return cls(load_yaml(path), path)

    def field_name(self, field: str) -> str:
        """Dotted path of ``field`` inside the file."""
        return f'{self.prefix}.{field}' if self.prefix else field

    def error(self, field: str, problem: str) -> ConfigError:
        """A ConfigError for ``field`` of this section."""
        return ConfigError(self.path, self.field_name(field), problem)

    def has(self, field: str) -> bool:
        """True if the mapping has ``field`` (even as null)."""
        return field in self.data

    def section(self, field: str, default: Any = _MISSING) -> Section:
        """A nested mapping as a Section."""
        value = self._raw(field, default)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.error(field, f'expected a mapping, got {type(value).__name__}')
        return Section(value, self.path, self.field_name(field))

    def sections(self, field: str, default: Any = _MISSING) -> list[Section]:
        """A list of mappings as Sections."""
        value = self._raw(field, default)
        if not isinstance(value, list):
            raise self.error(field, f'expected a list, got {type(value).__name__}')
        return [Section(item, self.path, f'{self.field_name(field)}[{i}]')
                for i, item in enumerate(value)]

    def number(self, field: str, default: Any = _MISSING, minimum: float | None = None,
               maximum: float | None = None, exclusive_minimum: float | None = None,
               integer: bool = False) -> float:
        """A finite number within the given bounds."""
        value = self._raw(field, default)
        kind = 'an integer' if integer else 'a number'
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(field, f'expected {kind}, got {value!r}')
        if integer and not float(value).is_integer():
            raise self.error(field, f'expected {kind}, got {value!r}')
        if not math.isfinite(value):
            raise self.error(field, f'expected a finite number, got {value!r}')
        if minimum is not None and value < minimum:
            raise self.error(field, f'expected a number >= {minimum}, got {value!r}')
        if exclusive_minimum is not None and value <= exclusive_minimum:
            raise self.error(field, f'expected a number > {exclusive_minimum}, got {value!r}')
        if maximum is not None and value > maximum:
            raise self.error(field, f'expected a number <= {maximum}, got {value!r}')
        return int(value) if integer else float(value)

    def integer(self, field: str, default: Any = _MISSING, minimum: float | None = None,
                maximum: float | None = None) -> int:
        """An integer field within [minimum, maximum]; ConfigError otherwise."""
        return int(self.number(field, default, minimum=minimum, maximum=maximum, integer=True))

    def boolean(self, field: str, default: Any = _MISSING) -> bool:
        """A true/false field; ConfigError for anything else (also 0/1, 'yes')."""
        value = self._raw(field, default)
        if not isinstance(value, bool):
            raise self.error(field, f'expected true or false, got {value!r}')
        return value

    def string(self, field: str, default: Any = _MISSING,
               choices: Collection[str] | None = None) -> str:
        """A non-empty string field, one of ``choices`` if given; ConfigError otherwise."""
        value = self._raw(field, default)
        if not isinstance(value, str) or not value:
            raise self.error(field, f'expected a non-empty string, got {value!r}')
        if choices is not None and value not in choices:
            raise self.error(field, f'expected one of {", ".join(sorted(choices))}, got {value!r}')
        return value

    def numbers(self, field: str, default: Any = _MISSING, length: int | None = None,
                minimum: float | None = None, maximum: float | None = None,
                increasing: bool = False) -> list[float]:
        """A list of finite numbers, optionally of a given length and strictly increasing."""
        value = self._raw(field, default)
        if not isinstance(value, list) or not value:
            raise self.error(field, f'expected a non-empty list of numbers, got {value!r}')
        out: list[float] = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, (int, float)) \
                    or not math.isfinite(item):
                raise self.error(f'{field}[{i}]', f'expected a finite number, got {item!r}')
            if minimum is not None and item < minimum:
                raise self.error(f'{field}[{i}]', f'expected a number >= {minimum}, got {item!r}')
            if maximum is not None and item > maximum:
                raise self.error(f'{field}[{i}]', f'expected a number <= {maximum}, got {item!r}')
            out.append(float(item))
        if length is not None and len(out) != length:
            raise self.error(field, f'expected {length} values, got {len(out)}')
        if increasing and any(b <= a for a, b in zip(out, out[1:])):
            raise self.error(field, 'expected strictly increasing values')
        return out

    def path_field(self, field: str, default: Any = _MISSING) -> str:
        """A file path, relative paths resolved against this file's folder; must exist."""
        value = self.string(field, default)
        resolved = value if os.path.isabs(value) else os.path.join(
            os.path.dirname(os.path.abspath(self.path)), value)
        if not os.path.isfile(resolved):
            raise self.error(field, f'file not found: {resolved}')
        return resolved

    def reject_unknown(self, known: Collection[str]) -> None:
        """Fail on fields this section does not define: a typo must not be silently ignored."""
        unknown = sorted(set(self.data) - set(known))
        if unknown:
            raise self.error(unknown[0], f'unknown field (known: {", ".join(sorted(known))})')

    def _raw(self, field: str, default: Any) -> Any:
        if field in self.data:
            return self.data[field]
        if default is _MISSING:
            raise self.error(field, 'missing required field')
        return default
