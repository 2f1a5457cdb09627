"""Recorded CAN logs in any format python-can reads: offline decoding and paced playback.

Frames come from python-can's own readers (``can.LogReader``: candump ``.log``, ``.asc``,
``.blf``, ``.trc``, ``.csv``, ``.db``, ``.mf4`` with asammdf), never from a parser of ours.
A record python-can cannot parse is counted (``read_errors``): a candump line is skipped and
reading goes on (its reader is stateless per line); in the other formats python-can's reader
stops there, so the log ends early (with a warning), never with a crash.

:class:`LogDecoder` feeds the frames through the driver's :class:`MeasurementAssembler` on
their own log time and takes a snapshot every ``1 / publish_rate_hz`` s of log time, the stale
timeout applied on log time, as the driver would have published them. :func:`play` sends
frames at their recorded spacing divided by ``rate``.
"""
from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import can
import numpy as np

from .can_decode import AssembledMeasurement, MeasurementAssembler
from .can_mapping import GROUPS
from .errors import BmsError

if TYPE_CHECKING:
    from .can_codec import CanProtocol

log = logging.getLogger(__name__)

# formats python-can 4.x reads, by suffix (plus .gz of the text ones)
LOG_SUFFIXES = tuple(sorted(can.io.MESSAGE_READERS))
MAX_GAP_S = 60.0          # a longer silence in a log is skipped (decode: after it reads stale)


class CanLogError(BmsError):
    """A CAN log cannot be opened or read (missing file, unknown or unsupported format)."""


@dataclass
class ReadStats:
    """What reading a log met: frames read, records python-can could not parse."""

    frames: int = 0
    read_errors: int = 0
    last_error: str = ''


def open_log(path: str | os.PathLike[str]) -> Any:
    """python-can's reader of ``path`` (format from the suffix); CanLogError if it cannot."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CanLogError(f'{path}: no such log file')
    try:
        return can.LogReader(path)
    except ValueError as error:        # unknown suffix
        raise CanLogError(f'{path}: {error} (python-can reads '
                          f'{", ".join(LOG_SUFFIXES)}, also gzipped)') from None
    except Exception as error:  # noqa: BLE001  each reader raises its own (BLFParseError, ...)
        raise CanLogError(f'{path}: cannot open as a CAN log: '
                          f'{type(error).__name__}: {error}') from None


def read_log(path: str | os.PathLike[str],
             stats: ReadStats | None = None) -> Iterator[can.Message]:
    """Frames of a log in file order (can.Message, timestamp in s); problems counted in
    ``stats`` (module docstring). CanLogError only if the file cannot be opened.
    """
    stats = stats if stats is not None else ReadStats()
    reader = open_log(path)
    try:
        while True:
            try:
                for msg in reader:
                    stats.frames += 1
                    yield msg
                return
            except Exception as error:  # noqa: BLE001  ValueError, struct.error, ...
                stats.read_errors += 1
                stats.last_error = f'{type(error).__name__}: {error}'
                file: Any = getattr(reader, 'file', None)
                if isinstance(reader, can.CanutilsLogReader) and not file.closed:
                    # the bad line is consumed; a new reader on the same file goes on after it
                    reader = can.CanutilsLogReader(file)
                    continue
                log.warning('%s: python-can stopped reading after %d frames: %s', path,
                            stats.frames, stats.last_error)
                return
    finally:
        try:
            reader.stop()
        except Exception:  # noqa: BLE001  already closed
            pass


# ----------------------------------------------------------------------------- decoding

@dataclass
class DecodeStats:
    """Counters of one offline decode (times: log time, s)."""

    snapshots: int = 0
    first_frame_s: float = math.nan
    last_frame_s: float = math.nan
    bad_timestamps: int = 0            # not a finite number: fed at the previous frame's time
    gaps_skipped: int = 0              # silences longer than max_gap_s
    stale_snapshots: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GROUPS, 0))


class LogDecoder:
    """Frames on their log time -> measurement snapshots every 1/publish_rate_hz of log time."""

    def __init__(self, protocol: CanProtocol, publish_rate_hz: float, stale_timeout_s: float,
                 counter_errors_stale: int = 3, max_gap_s: float = MAX_GAP_S) -> None:
        if not publish_rate_hz > 0 or not stale_timeout_s > 0:
            raise ValueError('publish_rate_hz and stale_timeout_s must be > 0')
        self.protocol = protocol
        self.period_s = 1.0 / float(publish_rate_hz)
        self.stale_timeout_s = float(stale_timeout_s)
        self.max_gap_s = float(max_gap_s)
        self.assembler = MeasurementAssembler(protocol, counter_errors_stale)
        self.stats = DecodeStats()

    def _snapshot(self, t_s: float) -> tuple[float, AssembledMeasurement]:
        snap = self.assembler.snapshot(t_s, self.stale_timeout_s)
        self.stats.snapshots += 1
        for group in snap.stale_groups:
            self.stats.stale_snapshots[group] += 1
        return t_s, snap

    def snapshots(self, frames: Iterable[can.Message]
                  ) -> Iterator[tuple[float, AssembledMeasurement]]:
        """(t_s, AssembledMeasurement) pairs: the first one period after the first frame,
        then every period; one more after the last frame. Never raises on a bad frame.
        """
        period = self.period_s
        base: float | None = None   # snapshot k at base + k * period (no drift over long logs)
        k = 1
        last_t: float | None = None
        fed_since = False
        stats = self.stats
        for msg in frames:
            stamp: Any = getattr(msg, 'timestamp', None)
            try:
                t = float(stamp)
            except (TypeError, ValueError):
                t = math.nan
            if not math.isfinite(t):
                stats.bad_timestamps += 1
                if last_t is None:
                    continue
                t = last_t
            if base is None:
                base = t
                stats.first_frame_s = t
            if t - (base + k * period) > self.max_gap_s:
                # a long silence: the snapshots until it reads stale, then on to this frame
                until = base + k * period + self.stale_timeout_s + period
                while base + k * period <= until:
                    yield self._snapshot(base + k * period)
                    k += 1
                k = max(k, math.floor((t - base) / period))
                stats.gaps_skipped += 1
            while t >= base + k * period:
                yield self._snapshot(base + k * period)
                k += 1
                fed_since = False
            self.assembler.feed(msg, t)
            fed_since = True
            last_t = t
            stats.last_frame_s = t if math.isnan(stats.last_frame_s) else max(
                stats.last_frame_s, t)
        if fed_since and base is not None:    # (a frame was fed: base is set)
            yield self._snapshot(base + k * period)

    def counters(self) -> dict[str, Any]:
        """The assembler's counters: frames, rejected by reason, counter errors, unmapped."""
        a = self.assembler
        return {'frames_received': a.frames_received, 'frames_rejected': a.frames_rejected,
                'frames_ignored': a.frames_ignored, **a.counts,
                'counter_stale': list(a.counter_stale_messages())}


def csv_header(cells: int, sensors: int) -> list[str]:
    """Columns of the decode CSV (one row per snapshot)."""
    return (['t_s', 'pack_current_a', 'pack_voltage_v', 'link_voltage_v']
            + [f'cell_voltages_v_{i}' for i in range(cells)]
            + [f'temperatures_degc_{i}' for i in range(sensors)]
            + [f'{g}_stale' for g in ('cell_voltages', 'temperatures', 'current', 'contactors')])


def csv_row(t_s: float, snap: AssembledMeasurement) -> list[str]:
    """One CSV row of a snapshot (NaN: invalid or stale; flags 0/1)."""
    def num(v: float) -> str:
        return 'nan' if not math.isfinite(v) else f'{v:.6g}'
    return ([f'{t_s:.6f}', num(snap.pack_current_a), num(snap.pack_voltage_v),
             num(snap.link_voltage_v)]
            + [num(v) for v in np.asarray(snap.cell_voltages_v, dtype=float)]
            + [num(v) for v in np.asarray(snap.temperatures_degc, dtype=float)]
            + [str(int(bool(x))) for x in (snap.cell_voltages_stale, snap.temperatures_stale,
                                           snap.current_stale, snap.contactors_stale)])


def write_csv(path: str | os.PathLike[str],
              snapshots: Iterable[tuple[float, AssembledMeasurement]], cells: int,
              sensors: int) -> int:
    """Write (t_s, snapshot) pairs as CSV; the number of rows."""
    rows = 0
    with open(path, 'w', newline='', encoding='utf-8') as stream:
        writer = csv.writer(stream)
        writer.writerow(csv_header(cells, sensors))
        for t_s, snap in snapshots:
            writer.writerow(csv_row(t_s, snap))
            rows += 1
    return rows


# ----------------------------------------------------------------------------- playback

@dataclass
class PlayStats:
    """Counters of one playback."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0          # error frames: no bus sends them
    passes: int = 0


def tx_copy(msg: can.Message) -> can.Message | None:
    """A frame to send made of a logged one (no channel, no receive flags); None for an
    error frame.
    """
    if msg.is_error_frame:
        return None
    return can.Message(arbitration_id=msg.arbitration_id, is_extended_id=msg.is_extended_id,
                       is_remote_frame=msg.is_remote_frame, dlc=msg.dlc,
                       data=None if msg.is_remote_frame else bytes(msg.data), is_fd=msg.is_fd,
                       bitrate_switch=msg.bitrate_switch,
                       error_state_indicator=msg.error_state_indicator, is_rx=False)


def play(frames_of_pass: Callable[[], Iterable[can.Message]],
         send: Callable[[can.Message], bool], rate: float = 1.0, loop: bool = False,
         wait: Callable[[float], object] = time.sleep,
         clock: Callable[[], float] = time.monotonic,
         stop: Callable[[], bool] = lambda: False, max_gap_s: float = MAX_GAP_S,
         stats: PlayStats | None = None) -> PlayStats:
    """Send frames at their log time / ``rate``.

    ``frames_of_pass()``: a fresh iterable of frames per pass; ``send(msg)`` -> bool;
    ``wait(s)`` may return early (it is called again until the frame is due); ``stop()``
    ends playback between frames. A silence longer than ``max_gap_s`` of log time is cut
    to ``max_gap_s``. Returns the PlayStats.
    """
    if not rate > 0:
        raise ValueError(f'rate must be > 0, got {rate}')
    stats = stats if stats is not None else PlayStats()
    while True:
        start = 0.0          # (set with t0 at the first frame)
        t0: float | None = None
        prev: float | None = None
        cut_s = 0.0
        for msg in frames_of_pass():
            if stop():
                return stats
            t = float(msg.timestamp) if msg.timestamp is not None else math.nan
            if not math.isfinite(t):
                t = prev if prev is not None else 0.0
            if t0 is None:
                t0 = t
                start = clock()
            if prev is not None and t - prev > max_gap_s:
                cut_s += t - prev - max_gap_s
            prev = t
            due = start + (t - t0 - cut_s) / rate
            while True:
                delay = due - clock()
                if delay <= 0 or stop():
                    break
                wait(delay)
            if stop():
                return stats
            out = tx_copy(msg)
            if out is None:
                stats.skipped += 1
                continue
            if send(out):
                stats.sent += 1
            else:
                stats.failed += 1
        stats.passes += 1
        if not loop or t0 is None:     # an empty log does not loop forever
            return stats
