"""The fail-safe table: every monitored item, how its loss is detected, and the safe state.

Modelled on foxBMS 2's diag table (one row per monitored item with its threshold, delay and
reaction). Each row names the profile fields whose sum bounds the time from the fault to the
safe state, plus a fixed allowance for evaluation periods and the hops between processes, so
the bound follows the profile: a profile whose bound exceeds ``failsafe.max_time_to_safe_s``
(default 2 s) is rejected at start-up, naming the largest term. The thresholds themselves live
in the owning node's section (one name for one thing) and are validated there; here only their
sum and the timing relations between nodes are checked.

``docs/safety.md`` is this table as an FMEA (``python -m bms_ros.tools.safety_table``), and
each row names the test that breaks it in real processes.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .config import Section
from .errors import ConfigError

SAFE_OPEN = 'contactors open'
CAMPAIGN = 'test/ros/test_fault_campaign.py'


@dataclass(frozen=True)
class FailsafeRow:
    """One monitored item of the fail-safe table."""

    row_id: str
    failure: str              # the failure mode
    detected_by: str          # the node (or the pack) that sees it
    detection: str            # how
    reaction: str             # what it does
    safe_state: str           # SAFE_OPEN, or what riding through means
    terms: tuple[tuple[str, float], ...]   # ((profile field, default s), ...): their sum bounds
    #                                        the delay
    # on top of the terms: the detection's granularity (the 0.1 s measurement, status and
    # command periods each stage waits for) plus 0.2 s for scheduling and the DDS and TCP hops
    # on a loaded 2-core machine; e.g. contactor feedback: its stale flag appears at the next
    # measurement (0.1 s), the supervisor acts at its next step (0.1 s), then two hops
    allowance_s: float
    test: str                 # the test that breaks it: path::function
    why: str = ''             # why riding through is safe (rows that do not open)
    bound_note: str = ''      # the bound in words where no profile field gives it


ROWS = (
    FailsafeRow(
        'supervisor_lost', 'pack_supervisor killed or hung (SIGKILL, SIGSTOP)', 'can_driver',
        'last contactor_command older than the deadline (monotonic clock)',
        'stops repeating the last command, sends all-open frames at the command period; '
        '/diagnostics ERROR', SAFE_OPEN,
        (('can.command_deadline_s', 0.5),), 0.3,
        f'{CAMPAIGN}::test_node_lost_opens[pack_supervisor]'),
    FailsafeRow(
        'driver_lost', 'can_driver killed or hung', 'pack (contactor controller)',
        'no contactor command frame for its own timeout',
        'the pack opens every contactor itself, as a real contactor controller must; the '
        'supervisor sees no measurement and goes to ERROR', SAFE_OPEN,
        (('simulator.contactors.command_timeout_s', 0.5),), 0.2,
        f'{CAMPAIGN}::test_node_lost_opens[can_driver]'),
    FailsafeRow(
        'bus_lost', 'CAN hub (the bus) killed or hung', 'pack (contactor controller)',
        'no contactor command frame for its own timeout',
        'the pack opens every contactor; the driver reconnects with back-off and its groups '
        'go stale, so the supervisor is in ERROR when the bus returns', SAFE_OPEN,
        (('simulator.contactors.command_timeout_s', 0.5),), 0.2,
        f'{CAMPAIGN}::test_node_lost_opens[can_hub]'),
    FailsafeRow(
        'protection_lost', 'protection killed or hung', 'pack_supervisor',
        'no protection_status for protection_timeout_s', 'ERROR, all open at once', SAFE_OPEN,
        (('supervisor.protection_timeout_s', 1.0),), 0.3,
        f'{CAMPAIGN}::test_node_lost_opens[protection]'),
    FailsafeRow(
        'slave_lost', 'pack simulator (the BMS slave / AFE) killed or hung', 'pack_supervisor',
        'contactor feedback unknown (its group stale) for contactor_feedback_timeout_s; cell '
        'and current groups stale at protection', 'ERROR, all-open frames on the bus', SAFE_OPEN,
        (('can.stale_timeout_s', 0.5), ('supervisor.contactor_feedback_timeout_s', 0.5)), 0.5,
        f'{CAMPAIGN}::test_node_lost_opens[pack_simulator]'),
    FailsafeRow(
        'estimator_lost', 'state_estimator killed or hung', 'pack_supervisor',
        'no estimate for estimate_timeout_s', 'state kept, reason and /diagnostics say the '
        'estimate is stale; new DRIVE/CHARGE refused', 'ride through',
        (('supervisor.estimate_timeout_s', 5.0),), 0.2,
        f'{CAMPAIGN}::test_node_lost_rides_through[state_estimator]',
        why='every limit that opens the contactors is checked by protection on measured '
            'voltages, currents and temperatures; SoC only guards new requests and derates'),
    FailsafeRow(
        'balancing_lost', 'balancing killed or hung', 'can_driver, then the pack',
        'last balancing_command older than the deadline', 'all-zero bleed command; the pack '
        'stops bleeding on its own timeout too', 'ride through: bleeding stops',
        (('can.balancing_deadline_s', 3.0),), 1.2,
        f'{CAMPAIGN}::test_node_lost_rides_through[balancing]',
        why='balancing only removes charge; stopping it is its safe state'),
    FailsafeRow(
        'cell_voltages_lost', 'cell voltage frames stop or repeat (frozen counter)',
        'can_driver, then protection',
        'frames with a repeated or jumping counter are dropped; the group ages at protection',
        'stale_measurement trip: ERROR, all open', SAFE_OPEN,
        (('can.stale_timeout_s', 0.5), ('protection.stale_measurement.trip_s', 0.5)), 0.5,
        f'{CAMPAIGN}::test_frame_group_lost_opens[cell_voltages]'),
    FailsafeRow(
        'temperatures_lost', 'temperature frames stop or repeat', 'can_driver, then protection',
        'as cell voltages', 'stale_measurement trip: ERROR, all open', SAFE_OPEN,
        (('can.stale_timeout_s', 0.5), ('protection.stale_measurement.trip_s', 0.5)), 0.5,
        f'{CAMPAIGN}::test_frame_group_lost_opens[temperatures]'),
    FailsafeRow(
        'current_lost', 'current/voltage frames stop or repeat', 'can_driver, then protection',
        'as cell voltages', 'stale_measurement trip: ERROR, all open', SAFE_OPEN,
        (('can.stale_timeout_s', 0.5), ('protection.stale_measurement.trip_s', 0.5)), 0.5,
        f'{CAMPAIGN}::test_frame_group_lost_opens[current]'),
    FailsafeRow(
        'contactor_feedback_lost', 'contactor status frames stop or repeat',
        'can_driver, then pack_supervisor',
        'feedback unknown (stale) for contactor_feedback_timeout_s: unknown is not open',
        'ERROR, all open; requests and the ERROR exit refused while unknown', SAFE_OPEN,
        (('can.stale_timeout_s', 0.5), ('supervisor.contactor_feedback_timeout_s', 0.5)), 0.5,
        f'{CAMPAIGN}::test_frame_group_lost_opens[contactors]'),
    FailsafeRow(
        'balancing_feedback_lost', 'balancing feedback frames stop or repeat', 'can_driver',
        'group stale', 'marked stale on /diagnostics; nothing else depends on it',
        'ride through', (('can.stale_timeout_s', 0.5),), 0.3,
        f'{CAMPAIGN}::test_frame_group_lost_rides_through',
        why='the feedback only reports which resistors bleed; the command side has its own '
            'deadline'),
    FailsafeRow(
        'reader_thread', 'the driver\'s CAN reader thread raises', 'can_driver',
        'exception caught outside the shutdown path', 'logged with traceback, counted on '
        '/diagnostics, restarted; past can.reader_restart_max in 60 s the node exits 1 and is '
        'respawned; meanwhile its groups age as above', SAFE_OPEN,
        (('can.stale_timeout_s', 0.5), ('protection.stale_measurement.trip_s', 0.5)), 0.5,
        'test/ros/test_can_driver.py::test_reader_thread_failures_are_restarted_then_exit_1'),
    FailsafeRow(
        'persisted_state', 'a state file is corrupt or belongs to another pack',
        'protection, state_estimator', 'unreadable JSON; files keyed by namespace and serial',
        'warning and a safe default: a corrupt latch file is a latched trip (latch_file_corrupt),'
        ' a corrupt estimator file starts from the OCV', SAFE_OPEN, (), 0.0,
        'test/ros/test_isolation.py::test_two_packs_do_not_share_persisted_state',
        bound_note='at start-up, before the supervisor leaves OFF'),
    FailsafeRow(
        'relatch_after_reset', 'a reset trip\'s condition returns (within its release time too)',
        'protection', 'a reset is refused until the condition has been gone for release_s; a '
        'granted reset drops the trip level and its debounce timers',
        'the returning condition trips and latches again', SAFE_OPEN, (), 0.0,
        'test/core/test_protection_relatch.py::test_a_returning_condition_trips_again_after_reset',
        bound_note="the limit's own debounce_s, as the first time"),
    FailsafeRow(
        'implausible_cell', 'a cell reading stuck or inconsistent with current and neighbours',
        'state_estimator (plausibility); protection (limits)',
        'plausibility checks with a debounce', 'the cell is counted, not corrected, until '
        'plausible again; a reading beyond a limit still trips protection',
        'ride through: SoC kept within 2 points', (), 0.0,
        'test/ros/test_stuck_cell.py::test_stuck_cell_reading_keeps_battery_state_within_2_points',
        why='a reading beyond the voltage limits trips protection anyway; below them the SoC '
            'must simply not follow it',
        bound_note='excluded from the first implausible sample; flagged after 0.2-1 s'),
)


def profile_value(data: Any, dotted: str, default: Any) -> Any:
    """The value at ``a.b.c`` of nested dicts (a profile's raw data), else ``default``."""
    node = data
    for part in dotted.split('.'):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _number(data: Any, dotted: str, default: Any) -> float | None:
    """A positive finite number at ``dotted``, else None: a missing, mistyped or out-of-range
    value is its owner's to reject (with its own message), not this table's.
    """
    value = profile_value(data, dotted, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0.0 else None


@dataclass(frozen=True)
class ResolvedRow:
    """A row with its terms read from one profile: the worst-case time to the safe state."""

    row: FailsafeRow
    terms_s: tuple[tuple[str, float], ...]   # ((field, value s), ...)
    worst_case_s: float


def resolve(top: Section) -> list[ResolvedRow]:
    """The table for one profile (its top-level Section); ConfigError on a bad bound.

    Checks, naming the profile file and field:
    - ``failsafe.max_time_to_safe_s`` (default 2.0 s) bounds every row that opens;
    - ``can.command_deadline_s`` exceeds two supervisor command periods (one late command must
      not open the contactors);
    - ``simulator.contactors.command_timeout_s`` exceeds two supervisor command periods too,
      for the same reason.
    """
    section = top.section('failsafe', {})
    section.reject_unknown(('max_time_to_safe_s',))
    max_s = section.number('max_time_to_safe_s', 2.0, exclusive_minimum=0.0, maximum=60.0)
    data = top.data
    rows: list[ResolvedRow] = []
    for row in ROWS:
        terms: list[tuple[str, float]] = []
        for field, default in row.terms:
            value = _number(data, field, default)
            terms.append((field, default if value is None else value))
        worst = sum(v for _, v in terms) + row.allowance_s
        if row.safe_state == SAFE_OPEN and worst > max_s:
            field = max(terms, key=lambda t: t[1])[0] if terms else 'failsafe.max_time_to_safe_s'
            raise ConfigError(top.path, field,
                              f'{row.row_id}: worst-case time to open the contactors '
                              f'{worst:.2f} s exceeds failsafe.max_time_to_safe_s {max_s:g} s')
        rows.append(ResolvedRow(row, tuple(terms), worst))
    period = _number(data, 'supervisor.command_period_s', 0.1) or 0.1
    for field, default in (('can.command_deadline_s', 0.5),
                           ('simulator.contactors.command_timeout_s', 0.5)):
        value = _number(data, field, default)
        if value is not None and value <= 2.0 * period:
            raise ConfigError(top.path, field,
                              f'must exceed two supervisor.command_period_s ({2 * period:g} s) '
                              f'so that one late command does not open, got {value:g}')
    return rows


def markdown_table(rows: Sequence[ResolvedRow]) -> str:
    """The FMEA table of docs/safety.md for resolved rows."""
    lines = ['| id | failure mode | detected by | detection | reaction | safe state | '
             'worst case to safe state | proven by |',
             '|---|---|---|---|---|---|---|---|']
    for r in rows:
        row = r.row
        terms = ' + '.join(f'`{field}` {value:g}' for field, value in r.terms_s)
        bound = (f'{r.worst_case_s:.2f} s ({terms} + {row.allowance_s:g} allowance)'
                 if terms else row.bound_note)
        state = row.safe_state + (f' ({row.why})' if row.why else '')
        lines.append(f'| `{row.row_id}` | {row.failure} | {row.detected_by} | {row.detection} | '
                     f'{row.reaction} | {state} | {bound} | `{row.test}` |')
    return '\n'.join(lines) + '\n'
