"""Pack states, contactor names and order, contactor feedback values and the command."""
from dataclasses import dataclass


STATE_OFF = 0
STATE_STANDBY = 1
STATE_PRECHARGE = 2
STATE_DRIVE = 3
STATE_CHARGE = 4
STATE_ERROR = 5
STATE_NAMES = {STATE_OFF: 'OFF', STATE_STANDBY: 'STANDBY', STATE_PRECHARGE: 'PRECHARGE',
               STATE_DRIVE: 'DRIVE', STATE_CHARGE: 'CHARGE', STATE_ERROR: 'ERROR'}
REQUESTABLE = (STATE_STANDBY, STATE_DRIVE, STATE_CHARGE)

# Contactors in command order (ContactorCommand: negative, precharge, positive). A contactor
# fault reported on trip_event carries FAULT_INDEX, the PackMeasurement feedback order used by
# the simulator's fault injection too: 0 negative, 1 positive, 2 precharge.
CONTACTORS = ('negative', 'precharge', 'positive')
FAULT_INDEX = {'negative': 0, 'positive': 1, 'precharge': 2}
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

    def as_tuple(self):
        return (self.negative_closed, self.precharge_closed, self.positive_closed)


OPEN = (False, False, False)


def pct(fraction):
    """A 0..1 fraction as a percentage text."""
    return f'{100.0 * fraction:.1f} %'
