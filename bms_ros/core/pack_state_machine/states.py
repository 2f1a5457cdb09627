"""Pack states, contactor names and order, contactor feedback values and the command."""
from __future__ import annotations

from dataclasses import dataclass

from bms_ros.core import contract

STATE_OFF = 0
STATE_STANDBY = 1
STATE_PRECHARGE = 2
STATE_DRIVE = 3
STATE_CHARGE = 4
STATE_ERROR = 5
STATE_NAMES = {STATE_OFF: 'OFF', STATE_STANDBY: 'STANDBY', STATE_PRECHARGE: 'PRECHARGE',
               STATE_DRIVE: 'DRIVE', STATE_CHARGE: 'CHARGE', STATE_ERROR: 'ERROR'}
REQUESTABLE = (STATE_STANDBY, STATE_DRIVE, STATE_CHARGE)

# Contactor names in the suite's one order (contract.CONTACTORS: negative, positive, precharge);
# a contactor fault on trip_event carries its index there (FAULT_INDEX), as the simulator's fault
# injection does. COMMAND_ORDER is ContactorCommand's field order (negative, precharge, positive):
# the order of ContactorCommand.as_tuple and of the machine's per-contactor tuples (feedback,
# mismatch timers, faults), which index into COMMAND_ORDER, never into CONTACTORS.
CONTACTORS = contract.CONTACTORS
COMMAND_ORDER = contract.CONTACTOR_COMMAND_ORDER
FAULT_INDEX = contract.CONTACTOR_INDEX
CONTACTOR_WELDED = 'contactor_welded'
CONTACTOR_STUCK_OPEN = 'contactor_stuck_open'
CONTACTOR_FAULT_IDS = (CONTACTOR_WELDED, CONTACTOR_STUCK_OPEN)

# Contactor feedback: closed, open, or unknown (stale or no measurement). Strings on purpose:
# every use compares explicitly, so unknown can never pass for open (a falsy value could).
FEEDBACK_CLOSED = 'closed'
FEEDBACK_OPEN = 'open'
FEEDBACK_UNKNOWN = 'unknown'


@dataclass(frozen=True)
class ContactorCommand:
    """Commanded contactor states (True = closed), as bms_interfaces/ContactorCommand."""

    negative_closed: bool = False
    precharge_closed: bool = False
    positive_closed: bool = False
    reason: str = ''

    def as_tuple(self) -> tuple[bool, bool, bool]:
        """(negative, precharge, positive) closed, as the phase tables list them."""
        return (self.negative_closed, self.precharge_closed, self.positive_closed)


OPEN = (False, False, False)


def pct(fraction: float) -> str:
    """A 0..1 fraction as a percentage text."""
    return f'{100.0 * fraction:.1f} %'
