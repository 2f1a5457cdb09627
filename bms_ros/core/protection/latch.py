"""Latched trips and their persistence: a trip stays until reset, across restarts.

The file is written atomically (bms_ros.core.persistence) on every change. A corrupt file is
not read as "no trips": it latches the trip ``latch_file_corrupt`` instead, which a reset
clears at once, so a damaged file can never silently re-enable a tripped pack.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import PersistenceError
from ..persistence import read_json, write_json_atomic

log = logging.getLogger(__name__)

FILE_NAME = 'latched_trips.json'
RESET_LOG_NAME = 'reset_requests.log'
CORRUPT_ID = 'latch_file_corrupt'
FORMAT_VERSION = 1


@dataclass
class LatchedTrip:
    """One latched trip: what tripped, where, with which value, and when (wall time, s)."""

    limit_id: str
    index: int
    value: float
    threshold: float
    unit: str
    message: str
    latched_wall_s: float
    # not persisted: when the condition was last seen gone (now_s clock), None while present
    clear_since_s: float | None = None

    @property
    def key(self) -> tuple[str, int]:
        """(limit_id, index): the trip's identity in the store."""
        return (self.limit_id, self.index)

    @property
    def name(self) -> str:
        """``limit_id`` or ``limit_id[index]``, as reset replies list it."""
        return self.limit_id if self.index < 0 else f'{self.limit_id}[{self.index}]'

    def to_document(self) -> dict[str, Any]:
        """The trip as a JSON document (NaN as null, clear_since_s not persisted)."""
        doc = asdict(self)
        doc.pop('clear_since_s')
        for field in ('value', 'threshold'):
            if not math.isfinite(doc[field]):
                doc[field] = None  # JSON has no NaN
        return doc

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> LatchedTrip:
        """A trip from its JSON document (null as NaN); KeyError/ValueError if malformed."""
        def number(name: str) -> float:
            value = doc.get(name)
            return float('nan') if value is None else float(value)
        return cls(limit_id=str(doc['limit_id']), index=int(doc['index']), value=number('value'),
                   threshold=number('threshold'), unit=str(doc.get('unit', '')),
                   message=str(doc.get('message', '')),
                   latched_wall_s=float(doc.get('latched_wall_s', 0.0)))


class TripLatch:
    """The set of latched trips, kept in a JSON file in ``state_dir`` (None: memory only)."""

    def __init__(self, state_dir: str | None = None) -> None:
        self.path = os.path.join(state_dir, FILE_NAME) if state_dir else None
        self.reset_log_path = os.path.join(state_dir, RESET_LOG_NAME) if state_dir else None
        # (limit_id, index) -> LatchedTrip, in latch order
        self.trips: dict[tuple[str, int], LatchedTrip] = {}
        self.load_problem = ''   # why the file could not be read ('' = fine or absent)

    def load(self) -> list[LatchedTrip]:
        """Read the file; a corrupt one latches CORRUPT_ID. Returns the trips restored."""
        if self.path is None:
            return []
        try:
            document = read_json(self.path)
            if document is None:
                return []
            if document.get('version') != FORMAT_VERSION or \
                    not isinstance(document.get('trips'), list):
                raise PersistenceError(f'{self.path}: unexpected format (version '
                                       f'{document.get("version")!r}, expected {FORMAT_VERSION})')
            trips = [LatchedTrip.from_document(item) for item in document['trips']]
        except (PersistenceError, KeyError, TypeError, ValueError, AttributeError) as error:
            self.load_problem = str(error)
            log.warning('latched trips unreadable, latching %s until reset: %s',
                        CORRUPT_ID, error)
            try:  # keep the damaged file for inspection; the next save writes a fresh one
                os.replace(self.path, self.path + '.corrupt')
            except OSError:
                pass
            trip = LatchedTrip(CORRUPT_ID, -1, float('nan'), float('nan'), '',
                               f'latched-trip file unreadable ({error}); reset to confirm',
                               time.time())
            self.trips = {trip.key: trip}
            return [trip]
        self.trips = {trip.key: trip for trip in trips}
        return trips

    def save(self) -> None:
        """Write the file atomically (no-op without a state_dir)."""
        if self.path is None:
            return
        write_json_atomic(self.path, {'version': FORMAT_VERSION,
                                      'trips': [t.to_document() for t in self.trips.values()]})

    def add(self, trip: LatchedTrip) -> None:
        """Latch ``trip`` (replaces one of the same key); not saved until save()."""
        self.trips[trip.key] = trip

    def remove(self, key: tuple[str, int]) -> LatchedTrip | None:
        """Unlatch the trip of ``key``; the removed trip, or None if none."""
        return self.trips.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self.trips

    def __len__(self) -> int:
        return len(self.trips)

    def log_reset_request(self, line: str) -> None:
        """Append one line to the reset audit log (best effort: never fails the reset)."""
        if self.reset_log_path is None:
            return
        try:
            os.makedirs(os.path.dirname(self.reset_log_path), exist_ok=True)
            with open(self.reset_log_path, 'a', encoding='utf-8') as stream:
                stream.write(line.rstrip('\n') + '\n')
        except OSError as error:
            log.warning('cannot append to %s: %s', self.reset_log_path, error)

