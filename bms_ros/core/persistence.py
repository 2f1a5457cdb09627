"""Atomic persistence of small JSON documents (SoC, SoH, latched trips).

A write goes to a temporary file in the same folder, is flushed and fsync'ed, then
renamed over the target, so a crash leaves either the old or the new file, never half.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from typing import Any

from .errors import PersistenceError

log = logging.getLogger(__name__)


def write_json_atomic(path: str | os.PathLike[str], document: Any) -> None:
    """Write ``document`` as JSON to ``path`` atomically."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=folder)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as stream:
            json.dump(document, stream, indent=1, sort_keys=True, allow_nan=False)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except FileNotFoundError:
            pass
        raise
    # fsync the folder so the rename itself survives a power loss
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_json(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Read a JSON document; None if the file does not exist.

    :raises PersistenceError: the file exists but is not valid JSON object.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding='utf-8') as stream:
            document = json.load(stream)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise PersistenceError(f'{path}: unreadable persisted state: {error}') from None
    if not isinstance(document, dict):
        raise PersistenceError(f'{path}: persisted state is not a JSON object')
    return document
