"""dashboard: the live web dashboard's ROS side (bms_ros.tools.dashboard does the rest).

Parameters: profile (YAML path; its `dashboard:` section, validated at start-up), host and port
(override dashboard.host / dashboard.port when set; port 0 = any free port).
Finds every pack in the graph (a namespace with a pack_state or measurement topic) every
DISCOVERY_PERIOD_S, subscribes to its measurement, estimate, protection_status, pack_state,
trip_event and battery_state, and keeps clients of its reset_trips and request_state services
for the page's buttons; the limit lines come from the profile parameter of that pack's
protection node (this node's profile until it answers). Publishes nothing.
"""
import threading

from rcl_interfaces.srv import GetParameters
from rclpy.node import Node
from sensor_msgs.msg import BatteryState

from bms_interfaces.msg import (
    BatteryEstimate,
    PackMeasurement,
    PackState,
    ProtectionEvent,
    ProtectionStatus,
)
from bms_interfaces.srv import RequestState, ResetTrips
from bms_ros.core import contract
from bms_ros.core.config import Section, load_yaml
from bms_ros.core.errors import ConfigError
from bms_ros.core.profile import Profile, default_profile_path
from bms_ros.nodes import qos
from bms_ros.nodes.runner import Component
from bms_ros.tools.dashboard.config import DashboardConfig
from bms_ros.tools.dashboard.server import DashboardServer
from bms_ros.tools.dashboard.state import Dashboard, limit_lines, namespaces

DISCOVERY_PERIOD_S = 2.0
SERVICE_TIMEOUT_S = 10.0
STREAM, LATEST, EVENTS = qos.STREAM, qos.LATEST, qos.EVENTS
TOPICS = ((contract.MEASUREMENT, PackMeasurement, STREAM),
          (contract.ESTIMATE, BatteryEstimate, STREAM),
          (contract.PROTECTION_STATUS, ProtectionStatus, LATEST),
          (contract.PACK_STATE, PackState, LATEST),
          (contract.TRIP_EVENT, ProtectionEvent, EVENTS),
          (contract.BATTERY_STATE, BatteryState, STREAM))
STATES = {'standby': PackState.STATE_STANDBY, 'drive': PackState.STATE_DRIVE,
          'charge': PackState.STATE_CHARGE}


def to_dict(msg):
    """A ROS message as plain Python: nested messages as dicts, arrays as lists, Time as s."""
    fields = getattr(msg, 'get_fields_and_field_types', None)
    if fields is not None:
        if type(msg).__name__ == 'Time' and hasattr(msg, 'nanosec'):
            return msg.sec + msg.nanosec * 1e-9
        return {name: to_dict(getattr(msg, name)) for name in fields()}
    if isinstance(msg, (list, tuple)) or hasattr(msg, 'tolist') or type(msg).__name__ == 'array':
        return [to_dict(item) for item in msg]
    return msg


def _topic(namespace, name):
    return f'/{name}' if namespace == '/' else f'{namespace}/{name}'


class DashboardNode(Node):
    """Feeds the dashboard's state from every pack's topics and serves it over HTTP."""

    def __init__(self, **node_options):
        """``node_options``: rclpy Node keywords (cli_args, namespace, ...; a container's)."""
        super().__init__('dashboard', **node_options)
        path = self.declare_parameter('profile', default_profile_path()).value
        host = self.declare_parameter('host', '').value
        port = self.declare_parameter('port', -1).value
        # Configuration errors surface here, before the server listens.
        profile = Profile(path)
        self.config = DashboardConfig.from_section(profile.section('dashboard'), host or None,
                                                   None if port < 0 else port)
        self.default_limits = limit_lines(profile.section('protection').data)
        self.dashboard = Dashboard(self.config.history_s, self.config.events)
        self.packs = {}       # namespace -> {'reset': client, 'request': client, ...}
        try:
            self.server = DashboardServer(self.config, self.dashboard, self)
        except OSError as error:
            raise ConfigError('parameter', 'port',
                              f'cannot listen on {self.config.host}:{self.config.port} '
                              f'({error.strerror or error}); another dashboard there? choose '
                              'another with -p port:=N (0: any free port)') from None
        self.create_timer(DISCOVERY_PERIOD_S, self.discover)
        self.discover()
        self.server.start()
        self.get_logger().info(f'dashboard on {self.server.url} (token '
                               f'{"required" if self.config.token else "not set: loopback only"})')

    # ------------------------------------------------------------------ discovery

    def discover(self):
        """Subscribe to the topics of every pack not seen before; ask for profiles."""
        topics = [name for name, _ in self.get_topic_names_and_types()]
        for namespace in namespaces(topics):
            if namespace not in self.packs:
                self._add_pack(namespace)
        for namespace, entry in self.packs.items():
            if not entry['profile_asked'] and entry['params'].service_is_ready():
                entry['profile_asked'] = True
                future = entry['params'].call_async(GetParameters.Request(names=['profile']))
                future.add_done_callback(lambda f, ns=namespace: self._on_profile(ns, f))

    def _add_pack(self, namespace):
        view = self.dashboard.pack(namespace)
        view.limits = self.default_limits
        entry = {'view': view, 'profile_asked': False}
        for name, msg_type, profile in TOPICS:
            self.create_subscription(
                msg_type, _topic(namespace, name),
                lambda msg, name=name: view.update(name, to_dict(msg)), profile)
        entry['reset'] = self.create_client(ResetTrips, _topic(namespace, contract.RESET_TRIPS))
        entry['request'] = self.create_client(RequestState, _topic(namespace,
                                              contract.REQUEST_STATE))
        # limit lines from the profile of that pack's protection node, once it answers
        entry['params'] = self.create_client(GetParameters,
                                             _topic(namespace, 'protection/get_parameters'))
        self.packs[namespace] = entry
        self.get_logger().info(f'pack found in namespace {namespace}')

    def _on_profile(self, namespace, future):
        try:
            path = future.result().values[0].string_value
            data = Section(load_yaml(path), path).section('protection', {}).data
            self.packs[namespace]['view'].limits = limit_lines(data)
            self.packs[namespace]['view'].profile = path
        except (ConfigError, OSError, IndexError, AttributeError) as error:
            self.get_logger().warning(f'{namespace}: limit lines from this node\'s profile '
                                      f'({error})')

    # ------------------------------------------------------------------ actions (HTTP threads)

    def _call(self, namespace, kind, request):
        entry = self.packs.get(namespace)
        if entry is None:
            raise LookupError(f'no pack in namespace {namespace}')
        client = entry[kind]
        if not client.service_is_ready():
            raise LookupError(f'service {client.srv_name} not available')
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        if not done.wait(SERVICE_TIMEOUT_S):
            future.cancel()
            raise TimeoutError(f'{client.srv_name}: no answer in {SERVICE_TIMEOUT_S:g} s')
        return future.result()

    def reset(self, namespace, requester, reason):
        """Call ``namespace``'s reset_trips service; its reply as a dict."""
        answer = self._call(namespace, 'reset',
                            ResetTrips.Request(requester=requester, reason=reason))
        return {'success': answer.success, 'message': answer.message,
                'still_latched': list(answer.still_latched)}

    def request_state(self, namespace, state, requester):
        """Call ``namespace``'s request_state service with ``state`` (a name); the reply, a dict."""
        answer = self._call(namespace, 'request',
                            RequestState.Request(state=STATES[state], requester=requester))
        return {'accepted': answer.accepted, 'reason': answer.reason, 'state': answer.state}

    def destroy_node(self):
        """Stop the HTTP server, then destroy the node."""
        if getattr(self, 'server', None) is not None:
            self.server.stop()
        return super().destroy_node()


COMPONENT = Component(DashboardNode, 'dashboard')


def main(args=None):
    """The node alone in this process (init, spin, shutdown; exit 2 on a ConfigError)."""
    COMPONENT.main(args)


if __name__ == '__main__':
    main()
