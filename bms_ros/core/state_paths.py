"""Where a pack's persisted state lives: ``<base>/<namespace or _>/<serial_number>/``.

One folder per pack (ROS namespace) and per physical pack (serial number), so two packs on one
machine never read each other's latched trips, SoC or reset log, and a pack moved to another
namespace starts clean rather than with a neighbour's trips. The base is, first match wins:

1. the node parameter ``state_dir`` (bringup ``--state-dir``, launch ``state_dir:=``);
2. the profile's ``pack.state_dir`` (relative to the profile file's folder);
3. ``$XDG_STATE_HOME/bms_ros`` (an absolute XDG_STATE_HOME only, as the XDG spec says);
4. ``~/.local/state/bms_ros``.

Nothing here creates a folder: the first save does (bms_ros.core.persistence), so a node that
fails to start leaves nothing behind.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

NO_NAMESPACE = '_'   # folder of a pack in the root namespace (ROS names cannot be '_' alone)
APP = 'bms_ros'


def check_path_part(value: Any, path: str, field: str) -> str:
    r"""``value`` if it is safe as one folder name, else ConfigError naming ``path`` and ``field``.

    Rejected: empty, '.', '..', a '/' or '\', a NUL, a leading '.' (hidden, or a way to '..'),
    surrounding spaces.
    """
    if not isinstance(value, str) or not value:
        raise ConfigError(path, field, f'expected a non-empty name, got {value!r}')
    if value in ('.', '..') or value.startswith('.'):
        raise ConfigError(path, field, f'{value!r} cannot name a folder (leading dot)')
    for bad in ('/', '\\', '\0'):
        if bad in value:
            raise ConfigError(path, field, f'{value!r} cannot name a folder (contains {bad!r})')
    if value != value.strip():
        raise ConfigError(path, field, f'{value!r} cannot name a folder (surrounding spaces)')
    return value


def namespace_parts(namespace: str | None) -> list[str]:
    """Folder names of a ROS namespace: '/' or '' -> ['_'], '/robot/pack_a' -> ['robot',
    'pack_a'] (each part a ROS name token: letters, digits, '_').
    """
    parts = [part for part in str(namespace or '').split('/') if part]
    for part in parts:
        check_path_part(part, 'node namespace', str(namespace))
    return parts or [NO_NAMESPACE]


def check_base(folder: Any, path: str, field: str) -> str:
    """An absolute, user-expanded folder from ``folder``; ConfigError if it is a file."""
    if not isinstance(folder, str) or not folder.strip():
        raise ConfigError(path, field, f'expected a folder, got {folder!r}')
    resolved = os.path.abspath(os.path.expanduser(folder))
    if os.path.exists(resolved) and not os.path.isdir(resolved):
        raise ConfigError(path, field, f'not a folder: {resolved}')
    return resolved


def default_base(environ: Mapping[str, str] | None = None) -> str:
    """$XDG_STATE_HOME/bms_ros if XDG_STATE_HOME is absolute, else ~/.local/state/bms_ros."""
    environ = os.environ if environ is None else environ
    xdg = environ.get('XDG_STATE_HOME', '')
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, APP)
    home = environ.get('HOME') or os.path.expanduser('~')
    return os.path.join(home, '.local', 'state', APP)


def state_base(parameter: str = '', profile_state_dir: str = '',
               environ: Mapping[str, str] | None = None) -> str:
    """The base folder: node parameter, else profile ``pack.state_dir``, else the XDG default.

    ``profile_state_dir`` is already resolved against the profile's folder (Profile does it).
    """
    if parameter:
        return check_base(parameter, 'ros parameter', 'state_dir')
    if profile_state_dir:
        return profile_state_dir
    return default_base(environ)


def state_folder(namespace: str | None, serial_number: str, parameter: str = '',
                 profile_state_dir: str = '',
                 environ: Mapping[str, str] | None = None) -> str:
    """``<base>/<namespace or _>/<serial_number>``: the folder of one pack's persisted files.

    :param namespace: the node's own namespace (``node.get_namespace()``: '/' or '/pack_a').
    :param serial_number: the profile's ``pack.serial_number`` (validated as a folder name).
    :raises ConfigError: a bad parameter folder, namespace or serial number.
    """
    check_path_part(serial_number, 'pack', 'serial_number')
    base = state_base(parameter, profile_state_dir, environ)
    return os.path.join(base, *namespace_parts(namespace), serial_number)
