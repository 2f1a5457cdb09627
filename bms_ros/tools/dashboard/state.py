"""What each pack looks like now, for the dashboard: plain dicts in, one JSON snapshot out.

The ROS side hands in every message as a plain dict (field names of bms_interfaces), keyed by
its topic; PackView keeps the latest of each, a one-sample-per-second history for the charts and
the last trip events; Dashboard holds one PackView per namespace. No rclpy, no threads of its
own (a lock, as the HTTP threads read while the executor writes).
"""
import math
import threading
import time
from collections import deque

from bms_ros.core import contract

TOPICS = (contract.MEASUREMENT, contract.ESTIMATE, contract.PROTECTION_STATUS, contract.PACK_STATE,
          contract.TRIP_EVENT, contract.BATTERY_STATE)
LEVEL_NAMES = contract.LEVEL_NAMES
HISTORY_PERIOD_S = 1.0
# profile fields drawn as limit lines: (section key, chart, line name)
LIMIT_LINES = (
    ('cell_overvoltage', 'cell_v', 'high'), ('cell_undervoltage', 'cell_v', 'low'),
    ('discharge_overtemperature', 'temperature_degc', 'high'),
    ('charge_overtemperature', 'temperature_degc', 'charge_high'),
    ('discharge_undertemperature', 'temperature_degc', 'low'),
)


def namespace_of(topic, leaf='pack_state'):
    """'/pack_a/pack_state' -> '/pack_a', '/pack_state' -> '/'; None for another topic."""
    if not topic.endswith('/' + leaf):
        return None
    head = topic[:-len(leaf) - 1]
    return head or '/'


def namespaces(topic_names):
    """Namespaces holding a pack: those with a pack_state or measurement topic, sorted."""
    found = set()
    for topic in topic_names:
        for leaf in ('pack_state', 'measurement'):
            ns = namespace_of(topic, leaf)
            if ns is not None:
                found.add(ns)
    return sorted(found)


def page_name(namespace):
    """URL path segment of a namespace: '_' for the root, else without slashes at the ends."""
    return namespace.strip('/') or '_'


def from_page_name(name):
    """The namespace of a page name ('' or '_': the root namespace), inverse of page_name."""
    return '/' if name in ('', '_') else '/' + name.strip('/')


def limit_lines(protection):
    """{chart: {line: {level: value}}} from a profile's raw `protection:` mapping (warning,
    alarm and trip levels of the cell voltage and temperature limits); missing ones skipped.
    """
    out = {}
    for key, chart, line in LIMIT_LINES:
        limit = protection.get(key) if isinstance(protection, dict) else None
        if not isinstance(limit, dict):
            continue
        levels = {}
        for level in ('warning', 'alarm', 'trip'):
            for name, value in limit.items():
                if name.startswith(level + '_') and _finite(value):
                    levels[level] = float(value)
        if levels:
            out.setdefault(chart, {})[line] = levels
    return out


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _clean(value):
    """JSON-safe: NaN and infinities become None (JSON has neither)."""
    if isinstance(value, float):   # float32 fields: 6 decimals say all they hold
        return (round(value, 6) if abs(value) < 1e6 else value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _nanmin(values):
    finite = [v for v in values if _finite(v)]
    return min(finite) if finite else None


def _nanmax(values):
    finite = [v for v in values if _finite(v)]
    return max(finite) if finite else None


class PackView:
    """One pack: the latest message of each topic, history and events."""

    def __init__(self, namespace, history_s=600.0, events=100, clock=time.time):
        self.namespace = namespace
        self.clock = clock
        self.latest = {}                       # topic -> (receive time s, dict)
        self.history = deque(maxlen=max(2, int(history_s / HISTORY_PERIOD_S)))
        self.events = deque(maxlen=events)     # newest last
        self.limits = {}
        self.profile = None                    # the pack's profile path, when known
        self._next_sample_s = 0.0
        self._lock = threading.Lock()

    def update(self, topic, message, now_s=None):
        """Take one message (a dict of its fields) of ``topic``."""
        now_s = self.clock() if now_s is None else now_s
        with self._lock:
            if topic == 'trip_event':
                self.events.append((now_s, message))
            self.latest[topic] = (now_s, message)
            if topic == 'measurement' and now_s >= self._next_sample_s:
                self._next_sample_s = now_s + HISTORY_PERIOD_S
                self.history.append(self._sample(now_s))

    def _sample(self, now_s):
        m = self.latest['measurement'][1]
        estimate = self.latest.get('estimate', (0, {}))[1]
        volts = m.get('cell_voltages_v', [])
        return (now_s, _nanmin(volts), _nanmax(volts),
                _nanmin(m.get('temperatures_degc', [])), _nanmax(m.get('temperatures_degc', [])),
                m.get('pack_current_a'), estimate.get('pack_soc'))

    def snapshot(self, now_s=None):
        """The whole view as one JSON-able dict (NaN as null)."""
        now_s = self.clock() if now_s is None else now_s
        with self._lock:
            latest = dict(self.latest)
            history = list(self.history)
            events = list(self.events)
        ages = {topic: now_s - t for topic, (t, _) in latest.items()}
        m = latest.get('measurement', (0, {}))[1]
        e = latest.get('estimate', (0, {}))[1]
        p = latest.get('protection_status', (0, {}))[1]
        s = latest.get('pack_state', (0, {}))[1]
        b = latest.get('battery_state', (0, {}))[1]
        volts = list(m.get('cell_voltages_v', []))
        temps = list(m.get('temperatures_degc', []))
        commanded = s.get('commanded') or {}
        out = {
            'namespace': self.namespace,
            'page': page_name(self.namespace),
            'time_s': now_s,
            'age_s': ages,
            'identity': {'serial_number': b.get('serial_number'), 'location': b.get('location')},
            'state': {
                'name': s.get('state_name') or ('unknown' if not s else str(s.get('state'))),
                'reason': s.get('reason', ''),
                'requested': s.get('requested_state'),
                'commanded': {k: bool(commanded.get(f'{k}_closed')) for k in
                              ('negative', 'precharge', 'positive')},
                'feedback': {'negative': bool(s.get('negative_contactor_closed')),
                             'precharge': bool(s.get('precharge_relay_closed')),
                             'positive': bool(s.get('positive_contactor_closed'))},
            } if s else None,
            'cells': {
                'voltages_v': volts,
                'valid': list(m.get('cell_voltage_valid', [])),
                'balancing': list(m.get('cell_balancing', [])),
                'min_v': _nanmin(volts), 'max_v': _nanmax(volts),
                'spread_v': (_nanmax(volts) - _nanmin(volts)) if _nanmin(volts) is not None
                else None,
                'stale': bool(m.get('cell_voltages_stale')),
            } if m else None,
            'temperatures': {
                'degc': temps, 'valid': list(m.get('temperature_valid', [])),
                'min_degc': _nanmin(temps), 'max_degc': _nanmax(temps),
                'stale': bool(m.get('temperatures_stale')),
            } if m else None,
            'pack': {'current_a': m.get('pack_current_a'), 'voltage_v': m.get('pack_voltage_v'),
                     'current_stale': bool(m.get('current_stale'))} if m else None,
            'estimate': {k: e.get(k) for k in (
                'pack_soc', 'pack_soc_min', 'pack_soc_max', 'soh_capacity', 'soh_resistance',
                'capacity_ah', 'remaining_charge_ah', 'remaining_energy_wh',
                'charge_current_limit_a', 'discharge_current_limit_a', 'time_to_empty_s',
                'time_to_full_s', 'current_offset_a')} if e else None,
            'protection': {
                'max_level': LEVEL_NAMES.get(p.get('max_level'), str(p.get('max_level'))),
                'trip_latched': bool(p.get('trip_latched')),
                'charge_current_limit_a': p.get('charge_current_limit_a'),
                'discharge_current_limit_a': p.get('discharge_current_limit_a'),
                'active': [_event(a) for a in p.get('active', [])],
            } if p else None,
            'events': [dict(_event(ev), received_s=t) for t, ev in reversed(events)],
            'history': {name: [row[i] for row in history] for i, name in enumerate(
                ('time_s', 'cell_min_v', 'cell_max_v', 'temperature_min_degc',
                 'temperature_max_degc', 'current_a', 'soc'))},
            'limits': self.limits,
        }
        return _clean(out)


def _event(event):
    """A ProtectionEvent dict, its level as a name; stamp_s: its header stamp (s, None if
    unset), so events sent before the dashboard started keep their own time.
    """
    stamp = (event.get('header') or {}).get('stamp')
    return {'limit_id': event.get('limit_id'), 'index': event.get('index'),
            'stamp_s': stamp if isinstance(stamp, float) and stamp > 0.0 else None,
            'level': LEVEL_NAMES.get(event.get('level'), str(event.get('level'))),
            'value': event.get('value'), 'threshold': event.get('threshold'),
            'unit': event.get('unit'), 'active': bool(event.get('active')),
            'latched': bool(event.get('latched')), 'message': event.get('message', '')}


class Dashboard:
    """Every pack seen, by namespace."""

    def __init__(self, history_s=600.0, events=100, clock=time.time):
        self.history_s, self.events, self.clock = history_s, events, clock
        self.packs = {}
        self._lock = threading.Lock()

    def pack(self, namespace):
        """The PackView of ``namespace`` (created on first use)."""
        with self._lock:
            view = self.packs.get(namespace)
            if view is None:
                view = self.packs[namespace] = PackView(namespace, self.history_s, self.events,
                                                        self.clock)
            return view

    def namespaces(self):
        """The namespaces of the packs seen, sorted."""
        with self._lock:
            return sorted(self.packs)

    def index(self):
        """The list of packs for the index page: namespace, page, state, SoC, max level."""
        out = []
        for ns in self.namespaces():
            snap = self.packs[ns].snapshot()
            out.append({'namespace': ns, 'page': snap['page'],
                        'state': (snap['state'] or {}).get('name'),
                        'soc': (snap['estimate'] or {}).get('pack_soc'),
                        'max_level': (snap['protection'] or {}).get('max_level')})
        return out
