"""What the protection reports: events, its status and the answer to a reset request."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .latch import LatchedTrip


@dataclass
class Event:
    """A limit raised or cleared; fields as bms_interfaces/ProtectionEvent."""

    limit_id: str
    level: int
    index: int           # cell or sensor index; -1 = whole pack (see docs/protection.md)
    value: float
    threshold: float
    unit: str
    active: bool
    latched: bool
    message: str
    stamp_s: float = 0.0


@dataclass
class Status:
    """Every active warning, alarm and latched trip, and the derated current limits (A, >= 0)."""

    max_level: int
    trip_latched: bool
    active: list[Event]
    charge_current_limit_a: float
    discharge_current_limit_a: float
    measurements_rejected: int


@dataclass
class ResetResult:
    """Answer to a reset request; ``still_latched`` lists limit ids that stay latched."""

    success: bool
    message: str
    still_latched: list[str] = field(default_factory=list)
    # the LatchedTrip objects this reset removed
    cleared: list[LatchedTrip] = field(default_factory=list)
