"""Load profiles of the simulated pack: demanded pack current (A, + = charging) over simulated time.

Kinds (the ``simulator.load`` section of a profile):

- ``constant``: ``current_a`` or ``c_rate`` (multiples of the pack capacity in A).
- ``csv``: a drive cycle file with columns ``t_s`` and ``current_a`` or ``c_rate``
  (+ = charging; ``discharge_positive: true`` flips a file of the opposite convention),
  ``scale`` multiplies it, ``end`` is ``loop`` (repeat) or ``stop`` (0 A after the end),
  ``interpolation`` is ``linear`` or ``previous`` (zero-order hold).
- ``steps``: a list of ``{duration_s, current_a | c_rate}`` held in turn, ``end`` as above.
- ``external``: ``current_a`` (default 0) until someone sets a demand (the ROS topic).
"""
from __future__ import annotations

import bisect
import math
import os

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .config import Section, csv_columns, load_csv
from .errors import ConfigError

KINDS = ('constant', 'csv', 'steps', 'external')
ENDS = ('loop', 'stop')
INTERPOLATIONS = ('linear', 'previous')


class LoadProfile:
    """Demanded pack current as a function of simulated time."""

    description = ''

    def current_a(self, t_s: float) -> float:
        """Demanded current at simulated time ``t_s`` (s); + = charging, A."""
        raise NotImplementedError


class ConstantLoad(LoadProfile):
    """The same current at all times."""

    def __init__(self, current_a: float) -> None:
        self.value_a = float(current_a)
        self.description = f'constant {self.value_a:g} A'

    def current_a(self, t_s: float) -> float:
        """The constant demanded current (A, + = charging) at any ``t_s``."""
        return self.value_a


class ExternalLoad(ConstantLoad):
    """A current set from outside (the node's load_demand topic); ``current_a`` until then."""

    def __init__(self, current_a: float = 0.0) -> None:
        super().__init__(current_a)
        self.description = 'external demand'

    def set_current(self, current_a: float) -> None:
        """Set the demanded current (A, + = charging)."""
        self.value_a = float(current_a)


class TabulatedLoad(LoadProfile):
    """A sampled current trace: interpolated in time, looped or stopped at the end."""

    def __init__(self, t_s: ArrayLike, current_a: ArrayLike, interpolation: str = 'linear',
                 end: str = 'loop', description: str = '') -> None:
        self.t_s = np.asarray(t_s, dtype=float)
        self.values_a = np.asarray(current_a, dtype=float)
        if self.t_s.ndim != 1 or self.t_s.shape != self.values_a.shape or len(self.t_s) < 2:
            raise ValueError('need two equally long 1-D arrays of at least 2 samples')
        if np.any(np.diff(self.t_s) <= 0) or self.t_s[0] < 0:
            raise ValueError('times must start at >= 0 and increase strictly')
        if interpolation not in INTERPOLATIONS or end not in ENDS:
            raise ValueError(f'interpolation in {INTERPOLATIONS}, end in {ENDS}')
        self.interpolation = interpolation
        self.end = end
        self.duration_s = float(self.t_s[-1])
        self.description = description
        self._times: list[float] = self.t_s.tolist()   # bisect on a list beats numpy for one scalar
        self._values: list[float] = self.values_a.tolist()

    def current_a(self, t_s: float) -> float:
        """Demanded current (A, + = charging) at ``t_s`` (s): interpolated, looped or 0."""
        t = float(t_s)
        if t >= self.duration_s:
            if self.end == 'stop':
                return 0.0
            t = math.fmod(t, self.duration_s)
        times = self._times
        i = bisect.bisect_right(times, t) - 1
        if i < 0:
            return self._values[0]
        if self.interpolation == 'previous' or i >= len(times) - 1:
            return self._values[i]
        t0, t1 = times[i], times[i + 1]
        v0, v1 = self._values[i], self._values[i + 1]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    def mean_current_a(self) -> float:
        """Time-averaged current over one period (A), as the interpolation integrates it."""
        dt = np.diff(self.t_s)
        if self.interpolation == 'previous':
            return float(np.sum(self.values_a[:-1] * dt) / self.duration_s)
        return float(np.sum(0.5 * (self.values_a[:-1] + self.values_a[1:]) * dt) / self.duration_s)


def read_cycle_csv(path: str | os.PathLike[str], capacity_ah: float, scale: float = 1.0,
                   discharge_positive: bool = False
                   ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Read a drive cycle CSV: (t_s, current_a) arrays; ``c_rate`` columns become A.

    ``#`` lines are comments (the file's source). Raises ConfigError naming the file and row.
    """
    path = os.fspath(path)
    rows = load_csv(path, 't_s,current_a or t_s,c_rate')
    header = rows[0].keys()
    if 't_s' not in header:
        raise ConfigError(path, 't_s',
                          'missing column (expected header t_s,current_a or t_s,c_rate)')
    column = 'current_a' if 'current_a' in header else 'c_rate' if 'c_rate' in header else None
    if column is None:
        raise ConfigError(path, 'current_a', 'missing column (expected current_a or c_rate)')
    table = csv_columns(path, rows, ('t_s', column))
    t, values = table['t_s'], table[column]
    if len(t) < 2:
        raise ConfigError(path, 't_s', 'expected at least 2 rows')
    if t[0] < 0 or np.any(np.diff(t) <= 0):
        raise ConfigError(path, 't_s', 'expected times >= 0, strictly increasing')
    current = values * (capacity_ah if column == 'c_rate' else 1.0) * scale
    if discharge_positive:
        current = -current
    return t, current


def load_from_section(section: Section, capacity_ah: float) -> LoadProfile:
    """Build the LoadProfile of a validated ``simulator.load`` Section (pack capacity in Ah)."""
    kind = section.string('kind', 'constant', choices=KINDS)
    known = {'constant': ('kind', 'current_a', 'c_rate'),
             'external': ('kind', 'current_a'),
             'csv': ('kind', 'file', 'scale', 'end', 'interpolation', 'discharge_positive'),
             'steps': ('kind', 'steps', 'end', 'scale')}[kind]
    section.reject_unknown(known)
    if kind == 'external':
        return ExternalLoad(section.number('current_a', 0.0))
    if kind == 'constant':
        return ConstantLoad(_current(section, capacity_ah))
    end = section.string('end', 'loop', choices=ENDS)
    scale = section.number('scale', 1.0)
    if kind == 'csv':
        path = section.path_field('file')
        t, current = read_cycle_csv(path, capacity_ah, scale,
                                    section.boolean('discharge_positive', False))
        return TabulatedLoad(t, current, section.string('interpolation', 'linear',
                                                        choices=INTERPOLATIONS), end,
                             description=f'drive cycle {os.path.basename(path)} x{scale:g}')
    steps = section.sections('steps')
    if not steps:
        raise section.error('steps', 'expected at least one step')
    times: list[float] = [0.0]
    currents: list[float] = []
    for step in steps:
        step.reject_unknown(('duration_s', 'current_a', 'c_rate'))
        times.append(times[-1] + step.number('duration_s', exclusive_minimum=0.0))
        currents.append(_current(step, capacity_ah) * scale)
    currents.append(currents[-1])  # value at the end time, unused by 'previous'
    return TabulatedLoad(times, currents, 'previous', end,
                         description=f'{len(steps)} steps')


def _current(section: Section, capacity_ah: float) -> float:
    """``current_a`` or ``c_rate`` (exactly one) of a section, in A."""
    if section.has('current_a') and section.has('c_rate'):
        raise section.error('c_rate', 'give current_a or c_rate, not both')
    if section.has('c_rate'):
        return section.number('c_rate') * capacity_ah
    return section.number('current_a', 0.0)
