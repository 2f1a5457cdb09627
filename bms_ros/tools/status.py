"""The suite's topics for a terminal (bringup --status, `bmsctl status`, `bmsctl top`).

StatusMonitor keeps the latest message of each topic as a dict (message_to_dict) and the recent
protection events; the texts come from bms_ros.core.operator_view (pure, tested without ROS).
"""
import collections
import time

from rclpy.node import Node
from sensor_msgs.msg import BatteryState

from bms_interfaces.msg import (
    BalancingStatus,
    BatteryEstimate,
    PackMeasurement,
    PackState,
    ProtectionEvent,
    ProtectionStatus,
)
from bms_ros.core import contract, operator_view
from bms_ros.nodes import qos

STREAM, LATCHED, EVENTS = qos.STREAM, qos.LATEST, qos.EVENTS

TOPICS = {
    contract.BATTERY_STATE: (BatteryState, STREAM),
    contract.ESTIMATE: (BatteryEstimate, STREAM),
    contract.MEASUREMENT: (PackMeasurement, STREAM),
    contract.PROTECTION_STATUS: (ProtectionStatus, STREAM),
    contract.PACK_STATE: (PackState, LATCHED),
    contract.BALANCING_STATUS: (BalancingStatus, STREAM),
}
EVENTS_KEPT = 50


def message_to_dict(msg):
    """A ROS message as a dict of its fields (nested messages as dicts, arrays as lists)."""
    if hasattr(msg, 'get_fields_and_field_types'):
        return {name: message_to_dict(getattr(msg, name))
                for name in msg.get_fields_and_field_types()}
    if isinstance(msg, (list, tuple)) or hasattr(msg, 'tolist') or type(msg).__name__ == 'array':
        return [message_to_dict(item) for item in msg]
    return msg


class StatusMonitor(Node):
    """Subscribes to the suite's topics; keeps the latest of each (as dicts) and the events."""

    def __init__(self, namespace='', topics=None):
        super().__init__('bms_status', namespace=namespace or '')
        wanted = TOPICS if topics is None else {t: TOPICS[t] for t in topics}
        self.latest = {name: None for name in TOPICS}
        self.received_at = {}
        self.events = collections.deque(maxlen=EVENTS_KEPT)
        for name, (msg_type, profile) in wanted.items():
            self.create_subscription(msg_type, name,
                                     lambda msg, name=name: self._store(name, msg), profile)
        self.create_subscription(ProtectionEvent, contract.TRIP_EVENT, self._event, EVENTS)

    def _store(self, name, msg):
        self.latest[name] = message_to_dict(msg)
        self.received_at[name] = time.monotonic()

    def _event(self, msg):
        self.events.append(message_to_dict(msg))

    def line(self, fields=operator_view.DEFAULT_FIELDS, width=operator_view.LINE_WIDTH):
        """The status line of the latest messages, ``width`` columns at most."""
        return operator_view.status_line(self.latest, fields, width)

    def missing(self, fields=operator_view.DEFAULT_FIELDS):
        """The fields whose topic was not received yet, as text ('' if none)."""
        return operator_view.missing_text(self.latest, fields)
