"""The can_driver's diagnostics and log texts: counters, the bus status, one status per
command stream (pure functions of the driver's state; the node publishes them).

Levels are named as diagnostic_msgs/DiagnosticStatus's constants ('OK', 'WARN', 'ERROR'), so
the node takes ``getattr(DiagnosticStatus, level)``; values are strings, as KeyValue holds.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import contract
from .can_decode import COUNTER_REASONS, REJECT_REASONS, VALUE_REASONS
from .command_deadline import EXPIRED, FRESH

if TYPE_CHECKING:
    from .can_staleness import AssembledMeasurement
    from .command_deadline import CommandDeadline

RESTART_WINDOW_S = 60.0       # the reader's restart budget counts restarts in this window


@dataclass
class DriverCounters:
    """What the driver counts beside the decoder and the bus, and the received frame rate."""

    commands_rejected: int = 0      # balancing commands that cannot be encoded
    can_rx_published: int = 0       # CanFrame messages published
    can_rx_skipped: int = 0         # frames whose id does not fit CanFrame
    # (time s, frames received) at the last rate update, and the rate then (frames/s)
    _rate_at: tuple[float, int] = field(default=(0.0, 0))
    rate_per_s: float = 0.0

    def start(self, now_s: float) -> None:
        """The rate's first interval starts at ``now_s`` (s, monotonic)."""
        self._rate_at = (now_s, 0)

    def update_rate(self, now_s: float, frames_received: int) -> float:
        """Frames received per second since the last update (s, monotonic); kept in
        ``rate_per_s``.
        """
        then, frames_then = self._rate_at
        self.rate_per_s = (frames_received - frames_then) / max(now_s - then, 1e-3)
        self._rate_at = (now_s, frames_received)
        return self.rate_per_s


def reader_fatal_text(max_restarts: int) -> str:
    """Why the node exits when the reader thread's restart budget is spent."""
    return (f'CAN reader thread failed more than {max_restarts} times within '
            f'{RESTART_WINDOW_S:g} s')


def contactor_lost_text(deadline: CommandDeadline, age_s: float | None = None) -> str:
    """The error of a contactor command past its deadline (/diagnostics; the log adds the last
    command's ``age_s`` when it expired: far past the deadline, the timer ran late).
    """
    if deadline.received:
        text = (f'contactor_command lost: none for {deadline.deadline_s:g} s (supervisor '
                'dead or hung?): sending all open')
        return text if age_s is None else f'{text} (last one {age_s:.3f} s ago)'
    return (f'no contactor_command within {deadline.deadline_s:g} s of start: '
            'sending all open')


def balancing_lost_text(deadline: CommandDeadline) -> str:
    """The warning of a balancing command past its deadline (log)."""
    return f'balancing_command lost: none for {deadline.deadline_s:g} s: bleeding off'


def resumed_text(topic: str) -> str:
    """The log line when a command stream comes back after its deadline."""
    return f'{topic} resumed: forwarding it again'


def bus_status(connected: bool, bus_state: str, last_error: str, fatal: str | None,
               reader_down: bool, restarts: int, snap: AssembledMeasurement,
               rate_per_s: float) -> tuple[str, str]:
    """(level, message) of the bus: ERROR while the bus is down, the reader's budget is spent
    or the reader restarts; WARN while a mapped group is stale; else OK with the frame rate.
    """
    if not connected:
        return 'ERROR', f'bus {bus_state}: {last_error}'
    if fatal is not None:
        return 'ERROR', fatal
    if reader_down:
        return 'ERROR', f'reader thread failed, restarting (restart {restarts})'
    if snap.stale_groups:
        message = f'stale: {", ".join(snap.stale_groups)}'
        if snap.counter_stale:
            message += f' (rolling counter: {", ".join(snap.counter_stale)})'
        return 'WARN', message
    return 'OK', f'receiving {rate_per_s:.0f} frames/s'


def bus_values(bus_state: str, last_error: str, bus_counters: Mapping[str, int],
               snap: AssembledMeasurement, frames_ignored: int, counters: DriverCounters,
               restarts: int) -> dict[str, str]:
    """The bus status's key values: bus and decoder counters, rejections by reason (with
    several devices also ``<device>.<reason>``, non-zero ones).
    """
    values: dict[str, Any] = {
        'bus_state': bus_state,
        'last_error': last_error,
        'frames_per_s': f'{counters.rate_per_s:.1f}',
        'frames_received': snap.frames_received,
        'frames_rejected': snap.frames_rejected,
        'frames_ignored': frames_ignored,
        'stale_groups': ' '.join(snap.stale_groups),
        'commands_rejected': counters.commands_rejected,
        'can_rx_published': counters.can_rx_published,
        'can_rx_skipped': counters.can_rx_skipped,
        'reader_restarts': restarts,
        'counter_stale': ' '.join(snap.counter_stale),
    }
    values.update({f'bus_{k}': v for k, v in bus_counters.items()})
    values.update({f'rejected_{k}': snap.counts.get(k, 0) for k in REJECT_REASONS})
    values.update({f'values_{k}': snap.counts.get(k, 0) for k in VALUE_REASONS})
    values.update({k: snap.counts.get(k, 0) for k in COUNTER_REASONS})
    if len(snap.device_counts) > 1:    # several devices: '<device>.<reason>', non-zero
        values.update({f'{device}.{k}': v for device, c in snap.device_counts.items()
                       for k, v in c.items() if v})
    return {k: str(v) for k, v in values.items()}


def command_status(topic: str, deadline: CommandDeadline, now_s: float
                   ) -> tuple[str, str, dict[str, str]]:
    """(level, message, key values) of one command stream's deadline at ``now_s`` (s,
    monotonic): contactors past it ERROR, balancing past it WARN (bleeding off).
    """
    state = deadline.state(now_s)
    age = deadline.age_s(now_s)
    if state == FRESH:
        level, message = 'OK', f'forwarding (last {age:.2f} s ago)'
    elif state != EXPIRED:
        level, message = 'OK', f'waiting for the first {topic}'
    elif topic == contract.CONTACTOR_COMMAND:
        level, message = 'ERROR', contactor_lost_text(deadline)
    elif deadline.received:
        level, message = 'WARN', f'{topic} lost: none for {age:.1f} s: bleeding off'
    else:
        level, message = 'OK', f'no {topic} received: no bleeding commanded'
    values = {'state': str(state), 'age_s': f'{age:.3f}',
              'deadline_s': f'{deadline.deadline_s:g}', 'expiries': str(deadline.expiries)}
    return level, message, values
