"""Control style (b): the pack has its own BMS firmware (foxBMS, Orion BMS, vendor packs).

The pack owns its contactors; bms_ros reads the pack's report (state, contactor states, SoC,
SoH, current limits, fault and warning flags) and forwards the vehicle's request_state as the
pack's state-request frame. This package holds every rule of the ``pack_report`` node, one
concept per module:

* ``control``: the profile side, ``can.control`` (``bms_ros`` | ``pack``) and ``can.pack_bms``
  (timeouts, second opinion, disagreement bounds), :func:`load_control`, :func:`check_style`,
  :func:`require_pack_control`;
* ``mapping``: the ``pack_report:`` and ``state_request:`` sections of a CAN mapping, validated
  against the DBC (:func:`load_report_sections`, called by can_mapping.load_mapping);
* ``decoder``: :class:`ReportDecoder` (frames -> report values with receive stamps) and
  :meth:`ReportDecoder.snapshot` -> :class:`PackReport` (our state names and flags; stale
  after ``report_timeout_s``, an unknown state is ERROR named ``UNKNOWN``);
* ``fields``: our messages' field values from a report: :func:`pack_state_fields`,
  :func:`estimate_fields`, :func:`protection_fields`, :func:`battery_state_fields` (with
  :func:`battery_health`), :func:`report_diagnostic`;
* ``second_opinion``: the pack against our own estimate and protection (:func:`disagreements`,
  :func:`trip_disagreement`, :class:`SecondOpinion`);
* ``request``: :func:`request_decision`, :class:`RequestEncoder` (our request -> the
  state-request frame), :class:`RequestHold`;
* ``pack_side``: for tests and log generators, :class:`ReportEncoder`, :func:`decode_request`.

Unknown is never OK: a stale or never-received report gives state ERROR named ``UNKNOWN``,
limits 0 A, a ``pack_report_stale`` trip-level event and health UNKNOWN.

Mapping sections::

    pack_report:                        # frames from the pack's BMS
      - message: BMS_State
        period_s: 0.1                   # default: the DBC's GenMsgCycleTime
        counter: BMS_AliveCounter       # optional rolling counter (+1 per frame)
        signals:
          - {signal: BMS_State, field: state,
             states: {STANDBY: [Standby, Idle], PRECHARGE: Precharge, DRIVE: Normal,
                      CHARGE: Charging, ERROR: Error, OFF: Init}}   # DBC choice names or raws
          - {signal: BMS_SoC, field: pack_soc, scale: 0.01}          # % -> 0..1
          - {signal: BMS_ErrOverVoltage, field: fault, name: cell_overvoltage}
    state_request:                      # the frame to the pack
      message: VCU_StateRequest
      period_s: 0.1                     # repeated at this period
      signal: VCU_RequestedState
      values: {STANDBY: Standby, DRIVE: Normal, CHARGE: Charge}    # DBC choice names or raws
      counter: VCU_Counter              # optional
"""
from ..pack_state_machine import STATE_NAMES
from .control import (
    CONTROL_STYLES,
    PACK_BMS_FIELDS,
    ControlConfig,
    check_style,
    control_of_file,
    control_style_of_file,
    load_control,
    require_pack_control,
)
from .decoder import FLAG_LEVELS, REPORT_COUNTS, UNKNOWN_NAME, PackReport, ReportDecoder
from .fields import (
    COMMANDED_REASON,
    STALE_EVENT,
    battery_health,
    battery_state_fields,
    estimate_fields,
    pack_state_fields,
    protection_fields,
    report_diagnostic,
    report_limits,
)
from .mapping import (
    REPORT_FIELDS,
    REQUESTABLE,
    STATE_OF_NAME,
    ReportMessage,
    ReportSignal,
    StateRequestMap,
    frame_key,
    load_report_sections,
    report_keys,
)
from .pack_side import ReportEncoder, decode_request
from .request import RequestEncoder, RequestHold, request_decision
from .second_opinion import OpinionStatus, SecondOpinion, disagreements, trip_disagreement

__all__ = ['COMMANDED_REASON', 'CONTROL_STYLES', 'ControlConfig', 'FLAG_LEVELS',
           'OpinionStatus', 'PACK_BMS_FIELDS', 'PackReport', 'REPORT_COUNTS', 'REPORT_FIELDS',
           'REQUESTABLE', 'ReportDecoder', 'ReportEncoder', 'ReportMessage', 'ReportSignal',
           'RequestEncoder', 'RequestHold', 'STALE_EVENT', 'STATE_NAMES', 'STATE_OF_NAME',
           'SecondOpinion', 'StateRequestMap', 'UNKNOWN_NAME', 'battery_health',
           'battery_state_fields', 'check_style', 'control_of_file', 'control_style_of_file',
           'decode_request', 'disagreements', 'estimate_fields', 'frame_key', 'load_control',
           'load_report_sections', 'pack_state_fields', 'protection_fields',
           'report_diagnostic', 'report_keys', 'report_limits', 'request_decision',
           'require_pack_control', 'trip_disagreement']
