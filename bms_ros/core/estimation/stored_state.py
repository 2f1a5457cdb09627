"""Persisted estimator state: per-cell SoC, capacity and R0, so a restart does not start blind.

The document (JSON, written atomically by bms_ros.core.persistence):

    {"format": "bms_ros.estimator_state", "version": 1, "pack_name": ..., "cell_name": ...,
     "cells_series": n, "capacity_nominal_ah": ..., "saved_unix_s": ...,
     "cell_soc": [n], "cell_capacity_ah": [n], "cell_capacity_std_ah": [n],
     "cell_r0_ohm": [n], "current_offset_a": float,
     "r0_law_activation_k": float, "r0_law_sums": [5][n],
     "cell_hysteresis": {"h": [n], "unknown": [n], "h_fast": [n], "h_slow": [n]}}

``cell_r0_ohm`` is normalised to 25 degC by the law in use; ``r0_law_sums`` are the learnt
temperature law's forgotten sums (:class:`.resistance.TemperatureLaw`; weights, x, ln R0, x^2,
x ln R0 per cell). Files without them (written before the law was learnt) are read as before:
the law starts from the datasheet. ``cell_hysteresis`` (:class:`.hysteresis.OcvHysteresis`, only
for a cell file with an ``ocv_hysteresis`` section): an LFP cell holds its OCV branch for days
while off, so a restart knows which side of the gap its first rest is on; without it (older
files, another cell) the state starts unknown, doubted by the half gap.

A file that is unreadable, of another format/version, of another pack or cell, of another
length, or that holds values outside the plausible windows is refused with a PersistenceError
naming the file and the reason; the caller warns and starts from OCV.
"""
from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..errors import PersistenceError
from ..persistence import read_json, write_json_atomic
from ..state_paths import state_folder

FORMAT = 'bms_ros.estimator_state'
VERSION = 1
FILE_NAME = 'estimator_state.json'

if TYPE_CHECKING:
    from .estimator import PackEstimator


def default_path(namespace: str | None, serial_number: str, state_dir: str = '',
                 profile_state_dir: str = '') -> str:
    """<base>/<namespace or _>/<serial_number>/estimator_state.json (see
    bms_ros.core.state_paths.state_folder for the base and the validation).
    """
    return os.path.join(state_folder(namespace, serial_number, state_dir, profile_state_dir),
                        FILE_NAME)


def document(estimator: PackEstimator, pack_name: str) -> dict[str, Any]:
    """The JSON document of an estimator's present state (uninitialised cells: their SoC is
    written as null and is then re-read from OCV on restore).
    """
    f = estimator.filter
    soc = [float(z) if ok else None for z, ok in zip(np.clip(f.soc, 0.0, 1.0), f.initialised)]
    return {
        'format': FORMAT, 'version': VERSION, 'pack_name': pack_name,
        'cell_name': estimator.cell.name, 'cells_series': estimator.n,
        'capacity_nominal_ah': estimator.cell.capacity_ah, 'saved_unix_s': time.time(),
        'cell_soc': soc,
        'cell_capacity_ah': [float(q) for q in estimator.capacity.capacity_ah],
        'cell_capacity_std_ah': [float(q) for q in estimator.capacity.std_ah],
        'cell_r0_ohm': [float(r) for r in estimator.resistance.r0_ohm],
        'current_offset_a': float(np.median(f.current_offset_a)),
        **estimator.resistance.law.state(),
        **_hysteresis_state(estimator),
    }


HYSTERESIS_FIELDS = ('h', 'unknown', 'h_fast', 'h_slow')


def _hysteresis_state(estimator: PackEstimator) -> dict[str, Any]:
    hys = estimator.hysteresis
    if not hys.active:
        return {}
    return {'cell_hysteresis': {name: [float(v) for v in getattr(hys, name)]
                                for name in HYSTERESIS_FIELDS}}


def _hysteresis_values(doc: dict[str, Any], estimator: PackEstimator,
                       path: str) -> dict[str, NDArray[np.float64]] | None:
    """The validated ``cell_hysteresis`` arrays, or None (absent, or no hysteresis here)."""
    section = doc.get('cell_hysteresis')
    if section is None or not estimator.hysteresis.active:
        return None
    if not isinstance(section, dict):
        raise PersistenceError(f'{path}: cell_hysteresis: expected an object')
    where = f'{path}: cell_hysteresis'
    return {name: _array(section, name, estimator.n, where, 0.0 if name == 'unknown' else -1.0,
                         1.0) for name in HYSTERESIS_FIELDS}


def save(path: str, estimator: PackEstimator, pack_name: str) -> None:
    """Write the state atomically; raises OSError on a filesystem error."""
    write_json_atomic(path, document(estimator, pack_name))


def _array(doc: dict[str, Any], key: str, n: int, path: str, low: float, high: float,
           allow_null: bool = False) -> NDArray[np.float64]:
    """The list ``key`` of ``doc`` as n numbers in low..high (None kept as NaN if allowed)."""
    values = doc.get(key)
    if not isinstance(values, list) or len(values) != n:
        raise PersistenceError(f'{path}: {key}: expected a list of {n} values')
    out = np.full(n, np.nan)
    for i, value in enumerate(values):
        if value is None and allow_null:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or not low <= value <= high:
            raise PersistenceError(f'{path}: {key}[{i}]: {value!r} is not a number in '
                                   f'{low:g}..{high:g}')
        out[i] = float(value)
    return out


def _law_sums(doc: dict[str, Any], n: int, path: str) -> list[NDArray[np.float64]] | None:
    """The temperature law's sums (5 lists of n finite numbers, weights >= 0), or None if the
    document has none (an older file).
    """
    sums = doc.get('r0_law_sums')
    if sums is None:
        return None
    if not isinstance(sums, list) or len(sums) != 5:
        raise PersistenceError(f'{path}: r0_law_sums: expected 5 lists of {n} values')
    out = [_array({f'r0_law_sums[{j}]': row}, f'r0_law_sums[{j}]', n, path, -1e12, 1e12)
           for j, row in enumerate(sums)]
    if np.any(out[0] < 0.0):
        raise PersistenceError(f'{path}: r0_law_sums: negative weight')
    return out


def load(path: str, estimator: PackEstimator, pack_name: str) -> bool:
    """Restore ``estimator`` from ``path``. Returns False if there is no file.

    :raises PersistenceError: unreadable, foreign or implausible content (nothing restored).
    """
    doc = read_json(path)
    if doc is None:
        return False
    cell = estimator.cell
    cfg = estimator.config
    n = estimator.n
    if doc.get('format') != FORMAT or doc.get('version') != VERSION:
        raise PersistenceError(f'{path}: not a {FORMAT} version {VERSION} document')
    for key, expected in (('pack_name', pack_name), ('cell_name', cell.name), ('cells_series', n)):
        if doc.get(key) != expected:
            raise PersistenceError(f'{path}: {key} is {doc.get(key)!r}, this pack has '
                                   f'{expected!r}')
    nominal = doc.get('capacity_nominal_ah')
    if not isinstance(nominal, (int, float)) or not math.isclose(nominal, cell.capacity_ah,
                                                                  rel_tol=1e-6):
        raise PersistenceError(f'{path}: capacity_nominal_ah is {nominal!r}, the cell has '
                               f'{cell.capacity_ah}')
    soc = _array(doc, 'cell_soc', n, path, 0.0, 1.0, allow_null=True)
    capacity = _array(doc, 'cell_capacity_ah', n, path, cfg.capacity_min_ratio * cell.capacity_ah,
                      cfg.capacity_max_ratio * cell.capacity_ah)
    capacity_std = _array(doc, 'cell_capacity_std_ah', n, path, 0.0, cell.capacity_ah)
    r0 = _array(doc, 'cell_r0_ohm', n, path, cfg.r0_min_ratio * cell.r0_ohm,
                cfg.r0_max_ratio * cell.r0_ohm)
    offset = doc.get('current_offset_a', 0.0)
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) \
            or not math.isfinite(offset) or abs(offset) > cell.capacity_ah:
        raise PersistenceError(f'{path}: current_offset_a: {offset!r} is implausible')
    saved = doc.get('saved_unix_s')
    age_s = time.time() - saved if isinstance(saved, (int, float)) and not isinstance(
        saved, bool) and math.isfinite(saved) else None
    sums = _law_sums(doc, n, path)
    hysteresis = _hysteresis_values(doc, estimator, path)
    estimator.restore(np.where(np.isfinite(soc), soc, 0.5), capacity, capacity_std, r0,
                      float(offset), age_s=age_s)
    if sums is not None:
        estimator.resistance.law.restore(sums)
    if hysteresis is not None:
        estimator.hysteresis.restore(**hysteresis)
    # cells saved without a SoC start again from their first voltage
    estimator.filter.initialised[~np.isfinite(soc)] = False
    return True
