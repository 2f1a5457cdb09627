"""One error tree for bms_ros; messages name the file, the field, the value and the bound."""
from __future__ import annotations

import os


class BmsError(Exception):
    """Base class of every error raised by bms_ros."""


class ConfigError(BmsError):
    """A configuration file is missing, unreadable or holds a bad value.

    The message always names the file and the dotted field path, so a user can fix it
    without reading code.
    """

    def __init__(self, path: str | os.PathLike[str], field: str | None, problem: str) -> None:
        self.path = str(path)
        self.field = field
        self.problem = problem
        where = f'{self.path}: {field}' if field else self.path
        super().__init__(f'{where}: {problem}')


class DecodeError(BmsError):
    """A CAN frame's payload does not decode (raised by core/can_frame.decode_frame).

    The stream decoders (measurement assembler, command and request decoders) never raise:
    they catch it and count the frame as ``decode_error``.
    """


class EncodeError(BmsError):
    """A command could not be encoded into a CAN frame."""


class MeasurementError(BmsError):
    """A measurement is malformed: wrong array length, NaN where a number is required."""


class PersistenceError(BmsError):
    """Persisted state could not be read back."""
