"""The attributes PackStateMachine and its mixins share, declared once for the type checker.

PackStateMachine (machine.py) sets every one of them in its constructor; the mixins
(precharge.py, feedback.py, guards.py) read and change them and call the machine's methods
declared here. Nothing here runs: the annotations and stubs only tell mypy what the mixins use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..measurement import Measurement
from ..protection.events import Event
from .config import SupervisorConfig
from .states import ContactorCommand

# contactor feedback in command order (negative, precharge, positive): FEEDBACK_* values
Feedback = tuple[str, ...]


class MachineAttributes:
    """The state of PackStateMachine that its mixins read and change (no behaviour)."""

    config: SupervisorConfig
    state: int
    requested_state: int
    reason: str
    command: ContactorCommand
    _events: list[Event]
    # latest inputs and when they arrived (None = never)
    _measurement: Measurement | None
    _measurement_s: float | None
    _status_s: float | None
    _trip_latched: bool
    _latched_names: list[str]
    _charge_limit_a: float
    _discharge_limit_a: float
    _soc: float | None
    _soc_s: float | None
    # pre-charge
    _target: int | None
    _phase: str | None
    _phase_since_s: float             # NaN outside a phase
    _precharge_started_s: float       # NaN before the first pre-charge
    _precharge_time_s: float          # NaN before the link reached its target
    _link_start_fraction: float
    _precharge_failed_s: float | None
    _precharge_failure: str
    # contactor feedback supervision
    _mismatch_since_s: list[float | None]
    _faults: dict[int, Event]
    _feedback_known_s: float | None
    _unknown_since_s: float | None

    if TYPE_CHECKING:   # the methods of the machine and its mixins that the others call
        def _feedback(self) -> Feedback: ...

        def _unknown_blocker(self, now_s: float) -> str: ...

        def _command(self, negative: bool, precharge: bool, positive: bool,
                     reason: str) -> None: ...

        def _set_phase(self, phase: str, now_s: float) -> None: ...

        def _enter(self, state: int, reason: str) -> None: ...

        def _open_all(self, why: str) -> None: ...

        def _error_open(self, why: str) -> None: ...
