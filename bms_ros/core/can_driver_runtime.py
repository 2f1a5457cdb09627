"""The can_driver's rules apart from its diagnostics (core/can_driver_status.py): the command
deadlines and timer periods it runs, when the reader publishes a prompt measurement, the time
line from receive times to message stamps, and the fields of its messages.

Clocks: receive times, deadlines and the prompt interval are on the monotonic clock (s); a
message stamp is on the ROS clock, the same age as the receive time it stands for.
"""
from __future__ import annotations

import array
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .command_deadline import CommandDeadline
from .measurement import MESSAGE_FIELDS

if TYPE_CHECKING:
    import can

    from .can_encode import CommandEncoder
    from .can_staleness import AssembledMeasurement
    from .command_deadline import CanFailsafeSettings

ALL_OPEN = (False, False, False)      # negative, precharge, positive (the command's order)
MAX_FRAME_ID = 0x1FFFFFFF             # the largest 29-bit id; CanFrame holds no other
FLOAT_ARRAYS = ('cell_voltages_v', 'temperatures_degc')
BOOL_ARRAYS = ('cell_voltage_valid', 'temperature_valid', 'cell_balancing')
STAMPS = ('cell_voltages_stamp', 'temperatures_stamp', 'current_stamp')
READER_CHECK_S = 0.1                  # the timer that notices a spent reader budget
READER_WAIT_S = 0.1                   # the reader's wait for frames with nothing pending


# ------------------------------------------------------------------ time line

def time_of_s(seconds: float) -> tuple[int, int]:
    """(sec, nanosec) of a builtin_interfaces/Time for a time in s; (0, 0) for NaN or <= 0
    (never received).
    """
    if not math.isfinite(seconds) or seconds <= 0.0:
        return 0, 0
    sec = int(seconds)
    return sec, min(int((seconds - sec) * 1e9), 999_999_999)


def stamp_of_receive(receive_mono_s: float, now_mono_s: float, now_ros_s: float
                     ) -> tuple[int, int]:
    """The ROS-clock stamp (sec, nanosec) of a monotonic receive time: the same age now;
    (0, 0) if never received (NaN).
    """
    if not math.isfinite(receive_mono_s):
        return 0, 0
    return time_of_s(now_ros_s - (now_mono_s - receive_mono_s))


# ------------------------------------------------------------------ messages

def measurement_fields(snap: AssembledMeasurement, now_mono_s: float, now_ros_s: float
                       ) -> dict[str, Any]:
    """PackMeasurement's field values of a snapshot: float32 arrays as array('f'), flags as
    lists, the group stamps as (sec, nanosec) on the ROS clock, counters modulo 2**32.
    """
    out: dict[str, Any] = {}
    for name in MESSAGE_FIELDS:
        value = getattr(snap, name)
        if name in FLOAT_ARRAYS:
            value = array.array('f', np.asarray(value, dtype=np.float32).tobytes())
        elif name in BOOL_ARRAYS:
            value = np.asarray(value, dtype=bool).tolist()
        elif name in STAMPS:
            value = stamp_of_receive(value, now_mono_s, now_ros_s)
        elif name in ('frames_received', 'frames_rejected'):
            value = int(value) & 0xFFFFFFFF
        elif isinstance(value, float):
            value = float(value)
        out[name] = value
    return out


def can_rx_fields(msg: can.Message) -> tuple[int, bool, bool, bool, int, bytes] | None:
    """(id, is_extended, is_rtr, is_error, dlc, 8 data bytes zero-padded) of a received frame
    for CanFrame; None for an id CanFrame cannot hold (a broken interface plug-in's frame).
    """
    if not 0 <= msg.arbitration_id <= MAX_FRAME_ID:
        return None
    data = bytes(msg.data)
    return (msg.arbitration_id, msg.is_extended_id, msg.is_remote_frame, msg.is_error_frame,
            min(len(data), 8), data[:8].ljust(8, b'\0'))


def contactor_command_of(negative_closed: Any, precharge_closed: Any,
                         positive_closed: Any) -> tuple[bool, bool, bool]:
    """A ContactorCommand's fields as the encoder's tuple (negative, precharge, positive)."""
    return bool(negative_closed), bool(precharge_closed), bool(positive_closed)


# ------------------------------------------------------------------ deadlines and timers

@dataclass
class DriverDeadlines:
    """The driver's command deadlines (None: that command is not mapped) and their timers."""

    contactor: CommandDeadline | None
    balancing: CommandDeadline | None
    contactor_timer_s: float        # repeat and deadline check of the contactor command
    balancing_timer_s: float        # deadline check of the balancing command


def driver_deadlines(commands: CommandEncoder, failsafe: CanFailsafeSettings,
                     cells_series: int, start_s: float) -> DriverDeadlines:
    """Deadlines from the fail-safe settings: the contactor command is repeated at the
    mapping's period (a fifth of the deadline without one) and all open before the first and
    after its deadline; the balancing command turns to all-zero bleed after its deadline.
    """
    period_s = commands.contactor_period_s if commands.contactor else None
    deadline_s = failsafe.command_deadline_s
    contactor = None if commands.contactor is None else CommandDeadline(
        deadline_s, ALL_OPEN, repeat_s=period_s or deadline_s, start_s=start_s,
        safe_before_first=True, repeat_fresh=bool(period_s))
    balancing = None
    if commands.balancing is not None:
        balancing = CommandDeadline(
            failsafe.balancing_deadline_s, np.zeros(cells_series, dtype=bool),
            repeat_s=failsafe.balancing_deadline_s, start_s=start_s,
            safe_before_first=False, repeat_fresh=False)
    return DriverDeadlines(contactor, balancing, period_s or deadline_s / 5.0,
                           failsafe.balancing_deadline_s / 10.0)


def timer_groups(periodic: Sequence[tuple[float, Callable[[], None]]]
                 ) -> list[tuple[float, tuple[Callable[[], None], ...]]]:
    """Callbacks of one period share one timer (one executor wake-up instead of several),
    in the order given; [(period s, callbacks)] in the order of first appearance.
    """
    by_period: dict[float, list[Callable[[], None]]] = {}
    for period, callback in periodic:
        by_period.setdefault(period, []).append(callback)
    return [(period, tuple(callbacks)) for period, callbacks in by_period.items()]


def in_turn(callbacks: Sequence[Callable[[], None]]) -> Callable[[], None]:
    """One callback that runs ``callbacks`` in order."""
    def run() -> None:
        for callback in callbacks:
            callback()
    return run


# ------------------------------------------------------------------ prompt publish

def reader_wait_s(prompt_pending: bool, last_publish_s: float, min_interval_s: float,
                  now_s: float) -> float:
    """How long the reader waits for frames (s): until the prompt interval allows the pending
    publish, else READER_WAIT_S.
    """
    if not prompt_pending:
        return READER_WAIT_S
    return max(0.0, last_publish_s + min_interval_s - now_s)


def prompt_due(prompt_pending: bool, urgent: bool, last_publish_s: float,
               min_interval_s: float, now_s: float) -> bool:
    """Publish the pending prompt measurement now: at once when ``urgent`` (a crossing,
    core/prompt_publish), else once the minimum interval since the last publish has passed,
    so the rest of a burst (the other cell blocks) never waits for the timer.
    """
    return prompt_pending and (urgent or now_s - last_publish_s >= min_interval_s)


def startup_text(pack_name: str, bus: str, devices: Sequence[tuple[str, str]],
                 measurement_messages: int, command_messages: int, cells_series: int,
                 temperature_sensors: int, stale_timeout_s: float, publish_rate_hz: float,
                 publish_can_rx: bool, command_deadline_s: float,
                 balancing_deadline_s: float) -> str:
    """The driver's start-up log line; ``devices``: (name, DBC path) of each."""
    return (f'{pack_name}: {bus}, DBC '
            f'{", ".join(f"{name}: {path}" for name, path in devices)}, '
            f'{measurement_messages} measurement and {command_messages} command '
            f'messages, {cells_series} cells, {temperature_sensors} '
            f'sensors, stale after {stale_timeout_s:g} s, measurement at '
            f'{publish_rate_hz:g} Hz, can_rx {"on" if publish_can_rx else "off"}, '
            f'command deadlines {command_deadline_s:g} s (contactors) / '
            f'{balancing_deadline_s:g} s (balancing)')
