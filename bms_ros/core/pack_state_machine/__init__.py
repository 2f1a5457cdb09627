"""Pack state machine and contactor sequencing (the core of the pack supervisor node).

One concept per module:

* ``states``: the states, contactor names and command order, feedback values, the command;
* ``config``: the ``supervisor:`` section (SupervisorConfig, load_supervisor_config);
* ``machine``: PackStateMachine, its inputs, requests and transitions;
* ``precharge``: the pre-charge sequence (phases, timeouts, aborts);
* ``feedback``: contactor feedback supervision (closed / open / unknown, welded, stuck open);
* ``guards``: why a DRIVE / CHARGE request or leaving ERROR is refused;
* ``attributes``: the machine's attributes the mixins share, declared for the type checker.
"""
from .config import SupervisorConfig, load_supervisor_config
from .feedback import FEEDBACK_CLOSED, FEEDBACK_OPEN, FEEDBACK_UNKNOWN
from .machine import PackStateMachine
from .precharge import PHASE_NEGATIVE, PHASE_POSITIVE, PHASE_PRECHARGE, PHASE_RELEASE, PHASE_WAITS
from .states import (
                        COMMAND_ORDER,
                        CONTACTOR_FAULT_IDS,
                        CONTACTOR_STUCK_OPEN,
                        CONTACTOR_WELDED,
                        CONTACTORS,
                        FAULT_INDEX,
                        OPEN,
                        REQUESTABLE,
                        STATE_CHARGE,
                        STATE_DRIVE,
                        STATE_ERROR,
                        STATE_NAMES,
                        STATE_OFF,
                        STATE_PRECHARGE,
                        STATE_STANDBY,
                        ContactorCommand,
)

__all__ = [
    'COMMAND_ORDER', 'CONTACTOR_FAULT_IDS', 'CONTACTOR_STUCK_OPEN', 'CONTACTOR_WELDED',
    'CONTACTORS', 'ContactorCommand', 'FAULT_INDEX', 'FEEDBACK_CLOSED', 'FEEDBACK_OPEN',
    'FEEDBACK_UNKNOWN',
    'OPEN', 'PHASE_NEGATIVE', 'PHASE_POSITIVE', 'PHASE_PRECHARGE', 'PHASE_RELEASE',
    'PHASE_WAITS', 'PackStateMachine', 'REQUESTABLE', 'STATE_CHARGE', 'STATE_DRIVE',
    'STATE_ERROR', 'STATE_NAMES', 'STATE_OFF', 'STATE_PRECHARGE', 'STATE_STANDBY',
    'SupervisorConfig', 'load_supervisor_config']
