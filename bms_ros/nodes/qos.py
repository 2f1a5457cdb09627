"""The rclpy QoS profiles of bms_ros.core.contract: the only module that constructs a QoSProfile.

Nodes, tools, the test harness and bench import these (``qos.STREAM``, ``qos.of(topic)``), so a
profile changes in one place, the contract, and publisher and subscribers stay compatible.
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from bms_ros.core import contract


def profile(spec: contract.QosSpec) -> QoSProfile:
    """The rclpy QoSProfile of a contract QosSpec."""
    if spec.sensor_data:
        return qos_profile_sensor_data
    return QoSProfile(
        depth=spec.depth,
        reliability=ReliabilityPolicy.RELIABLE if spec.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if spec.transient_local
        else DurabilityPolicy.VOLATILE)


def of(topic: str) -> QoSProfile:
    """The QoS a contract topic's publisher offers (its name, as in contract.TOPICS)."""
    spec = contract.TOPICS.get(topic) or contract.EXTERNAL_TOPICS[topic]
    return profile(spec.qos)


STREAM = profile(contract.STREAM)
EVENTS = profile(contract.EVENTS)
LATCHED = profile(contract.LATCHED)
LATEST = profile(contract.LATEST)
FRAMES = profile(contract.FRAMES)
SENSOR_DATA = profile(contract.SENSOR_DATA)
CLOCK = profile(contract.CLOCK)
PROBE = profile(contract.PROBE)
PROBE_LATCHED = profile(contract.PROBE_LATCHED)
