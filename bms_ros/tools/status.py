"""Live one-line status of a running suite (used by bringup --status and `bmsctl status`)."""
import math
import time

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import BatteryState

from bms_interfaces.msg import (BalancingStatus, BatteryEstimate, PackMeasurement, PackState,
                                ProtectionStatus)

STREAM = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
LEVEL_NAMES = {0: 'ok', 1: 'WARN', 2: 'ALARM', 3: 'TRIP'}

TOPICS = {
    'battery_state': (BatteryState, STREAM),
    'estimate': (BatteryEstimate, STREAM),
    'measurement': (PackMeasurement, STREAM),
    'protection_status': (ProtectionStatus, STREAM),
    'pack_state': (PackState, LATCHED),
    'balancing_status': (BalancingStatus, STREAM),
}


def _finite(values):
    return [v for v in values if math.isfinite(v)]


def format_status(latest):
    """One line from the latest message of each topic (a dict topic -> message or None)."""
    parts = []
    state = latest.get('pack_state')
    parts.append(f'{state.state_name if state else "?":<9}')
    battery = latest.get('battery_state')
    if battery is not None:
        parts.append(f'SoC {battery.percentage * 100:5.1f}%' if math.isfinite(battery.percentage)
                     else 'SoC   n/a')
        parts.append(f'{battery.voltage:6.1f} V {battery.current:+7.1f} A')
    measurement = latest.get('measurement')
    if measurement is not None:
        cells = _finite(measurement.cell_voltages_v)
        if cells:
            parts.append(f'cell {min(cells):.3f}..{max(cells):.3f} V '
                         f'(spread {1000 * (max(cells) - min(cells)):3.0f} mV)')
        temps = _finite(measurement.temperatures_degc)
        if temps:
            parts.append(f'T max {max(temps):4.1f} C')
    estimate = latest.get('estimate')
    if estimate is not None:
        parts.append(f'limits chg {estimate.charge_current_limit_a:.0f} A '
                     f'dis {estimate.discharge_current_limit_a:.0f} A')
    protection = latest.get('protection_status')
    if protection is not None:
        level = LEVEL_NAMES.get(protection.max_level, str(protection.max_level))
        names = sorted({event.limit_id for event in protection.active
                        if event.level == protection.max_level})
        parts.append(f'{level}' + (f' {",".join(names)}' if names and protection.max_level else ''))
    balancing = latest.get('balancing_status')
    if balancing is not None and balancing.active:
        parts.append(f'bal {sum(balancing.cell_bleed)} cells')
    if len(parts) == 1 and state is None:
        return 'waiting for the suite (no battery_state, measurement or pack_state yet)'
    return ' | '.join(parts)


class StatusMonitor(Node):
    """Subscribes to the suite's topics and keeps the latest message of each."""

    def __init__(self, namespace=''):
        super().__init__('bms_status', namespace=namespace or '')
        self.latest = {name: None for name in TOPICS}
        self.received_at = {}
        for name, (msg_type, qos) in TOPICS.items():
            self.create_subscription(msg_type, name,
                                     lambda msg, name=name: self._store(name, msg), qos)

    def _store(self, name, msg):
        self.latest[name] = msg
        self.received_at[name] = time.monotonic()

    def line(self):
        return format_status(self.latest)
