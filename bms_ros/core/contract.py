"""The suite's contract: topic and service names, types and QoS, levels, contactors, ports.

Pure (no rclpy) so core, the offline tools and the tests read it without ROS; the rclpy QoS
profiles are built from these specs in ``bms_ros/nodes/qos.py``, the one place that constructs a
QoSProfile. Names are relative (a namespace per pack) except ``/diagnostics`` and ``/clock``.
docs/architecture.md's topic tables list the same names (test/core/test_contract.py checks both
ways, and that no node or tool names a contract topic or builds a QoSProfile itself).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QosSpec:
    """A QoS profile: KEEP_LAST history of ``depth``; reliable or best effort; latched or not."""

    depth: int
    reliable: bool = True
    transient_local: bool = False   # TRANSIENT_LOCAL: a late joiner gets the last ``depth``
    sensor_data: bool = False       # rclpy's qos_profile_sensor_data (best effort, depth 5)


# Streams: RELIABLE depth 10, volatile (the measurement at 10 Hz, commands, /diagnostics).
STREAM = QosSpec(10)
# Safety events: every trip_event a late joiner (the supervisor after a restart) must see.
EVENTS = QosSpec(100, transient_local=True)
# Pack state: the last states, latched.
LATCHED = QosSpec(10, transient_local=True)
# Only the newest latched sample: protection_status at its publisher and supervisor, pack_state
# at the estimator, simulator and status monitor.
LATEST = QosSpec(1, transient_local=True)
# can_rx: every frame seen; deep so a slow reader loses none at 1 kHz bursts.
FRAMES = QosSpec(1000)
# Sensors of another system (Gazebo odom, imu, joint_states).
SENSOR_DATA = QosSpec(5, reliable=False, sensor_data=True)
# /clock of the bag player: only the newest time matters.
CLOCK = QosSpec(1)
# Recorders and test probes: deep history so nothing is lost while a reader is busy.
PROBE = QosSpec(100)
PROBE_LATCHED = QosSpec(100, transient_local=True)


@dataclass(frozen=True)
class Topic:
    """One topic: name, ROS 2 type name, and the QoS its publisher offers."""

    name: str
    msgtype: str
    qos: QosSpec = STREAM


@dataclass(frozen=True)
class Service:
    """One service: name and ROS 2 type name."""

    name: str
    srvtype: str


def _msg(package: str, name: str) -> str:
    return f'{package}/msg/{name}'


_B = 'bms_interfaces'

# Topic names (relative)
MEASUREMENT = 'measurement'
CAN_RX = 'can_rx'
DIAGNOSTICS = '/diagnostics'
CONTACTOR_COMMAND = 'contactor_command'
BALANCING_COMMAND = 'balancing_command'
BALANCING_STATUS = 'balancing_status'
ESTIMATE = 'estimate'
BATTERY_STATE = 'battery_state'
DOCK_BATTERY_STATE = 'dock_battery_state'
TRIP_EVENT = 'trip_event'
PROTECTION_STATUS = 'protection_status'
PACK_STATE = 'pack_state'
SIM_TRUTH = 'sim_truth'
LOAD_DEMAND = 'load_demand'
LOAD_DEMAND_POWER = 'load_demand_power'
CHARGER_PRESENT = 'charger_present'
MOTION_LIMITS = 'motion_limits'
CMD_VEL_IN = 'cmd_vel_in'       # default of motion_limits' parameter input_topic
CMD_VEL = 'cmd_vel'             # default of motion_limits' parameter output_topic

TOPICS = {t.name: t for t in (
    Topic(MEASUREMENT, _msg(_B, 'PackMeasurement')),
    Topic(CAN_RX, _msg(_B, 'CanFrame'), FRAMES),
    Topic(DIAGNOSTICS, _msg('diagnostic_msgs', 'DiagnosticArray')),
    Topic(CONTACTOR_COMMAND, _msg(_B, 'ContactorCommand')),
    Topic(BALANCING_COMMAND, _msg(_B, 'BalancingCommand')),
    Topic(BALANCING_STATUS, _msg(_B, 'BalancingStatus')),
    Topic(ESTIMATE, _msg(_B, 'BatteryEstimate')),
    Topic(BATTERY_STATE, _msg('sensor_msgs', 'BatteryState')),
    Topic(DOCK_BATTERY_STATE, _msg('sensor_msgs', 'BatteryState')),
    Topic(TRIP_EVENT, _msg(_B, 'ProtectionEvent'), EVENTS),
    Topic(PROTECTION_STATUS, _msg(_B, 'ProtectionStatus'), LATEST),
    Topic(PACK_STATE, _msg(_B, 'PackState'), LATCHED),
    Topic(SIM_TRUTH, _msg(_B, 'SimTruth')),
    Topic(LOAD_DEMAND, _msg('std_msgs', 'Float32')),
    Topic(LOAD_DEMAND_POWER, _msg('std_msgs', 'Float32')),
    Topic(CHARGER_PRESENT, _msg('std_msgs', 'Bool')),
    Topic(MOTION_LIMITS, _msg(_B, 'MotionLimits')),
    Topic(CMD_VEL_IN, _msg('geometry_msgs', 'Twist')),   # or TwistStamped (parameter stamped)
    Topic(CMD_VEL, _msg('geometry_msgs', 'Twist')),
)}

# Topics of other systems that nodes and tools read or write (not the suite's own)
ODOM = 'odom'
IMU = 'imu'
JOINT_STATES = 'joint_states'
CLOCK_TOPIC = '/clock'
EXTERNAL_TOPICS = {t.name: t for t in (
    Topic(ODOM, _msg('nav_msgs', 'Odometry'), SENSOR_DATA),
    Topic(IMU, _msg('sensor_msgs', 'Imu'), SENSOR_DATA),
    Topic(JOINT_STATES, _msg('sensor_msgs', 'JointState'), SENSOR_DATA),
    Topic(CLOCK_TOPIC, _msg('rosgraph_msgs', 'Clock'), CLOCK),
)}

# Service names (relative)
SET_SOC = 'set_soc'
CHECK_MISSION = 'check_mission'
RESET_TRIPS = 'reset_trips'
REQUEST_STATE = 'request_state'
SET_BALANCING_MODE = 'set_balancing_mode'
INJECT_FAULT = 'sim/inject_fault'

SERVICES = {s.name: s for s in (
    Service(SET_SOC, f'{_B}/srv/SetSoc'),
    Service(CHECK_MISSION, f'{_B}/srv/CheckMission'),
    Service(RESET_TRIPS, f'{_B}/srv/ResetTrips'),
    Service(REQUEST_STATE, f'{_B}/srv/RequestState'),
    Service(SET_BALANCING_MODE, f'{_B}/srv/SetBalancingMode'),
    Service(INJECT_FAULT, f'{_B}/srv/InjectFault'),
)}

# Control style (b): our estimator and protection as a second opinion, their outputs under own/
OWN_PREFIX = 'own/'
SECOND_OPINION_REMAPS = tuple((name, f'{OWN_PREFIX}{name}') for name in (
    ESTIMATE, BATTERY_STATE, PROTECTION_STATUS, TRIP_EVENT, SET_SOC, RESET_TRIPS))


def own(name: str) -> str:
    """The second opinion's name of a topic or service (``own/<name>``)."""
    return f'{OWN_PREFIX}{name}'


# Protection levels (ProtectionEvent.level, ProtectionStatus.max_level)
LEVEL_OK = 0
LEVEL_WARNING = 1
LEVEL_ALARM = 2
LEVEL_TRIP = 3
LEVEL_NAMES = {LEVEL_OK: 'ok', LEVEL_WARNING: 'warning', LEVEL_ALARM: 'alarm',
               LEVEL_TRIP: 'trip'}

# Contactors: one order of names (the index of a contactor in trip_event's contactor faults, in
# sim/inject_fault, the order of PackState's and PackMeasurement's feedback fields). The
# ContactorCommand message lists its fields in another order, kept as it is (messages are
# additive only): CONTACTOR_COMMAND_ORDER names that field order, the order of the state
# machine's ContactorCommand.as_tuple; test/core/test_contract.py checks both against the .msg.
CONTACTORS = ('negative', 'positive', 'precharge')
CONTACTOR_INDEX = {name: k for k, name in enumerate(CONTACTORS)}
CONTACTOR_COMMAND_ORDER = ('negative', 'precharge', 'positive')

# Default ports
CAN_HUB_PORT = 29536     # socketcand's registered port; the hub binds 127.0.0.1 only
DASHBOARD_PORT = 8642
