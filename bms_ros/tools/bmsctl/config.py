"""Print the effective configuration of running nodes (their read-only parameters)."""
import sys

from bms_ros.core.effective_config import format_value
from bms_ros.tools.bmsctl.client import Session, SuiteNotRunning

ROS_OWN = ('use_sim_time', 'start_type_description_service')   # shown with --all only
NODES = ('can_driver', 'state_estimator', 'protection', 'pack_supervisor', 'balancing',
         'pack_simulator')


def add_arguments(parser):
    """Add this command's arguments to ``parser``."""
    parser.add_argument('nodes', nargs='*', metavar='NODE',
                        help=f'nodes to ask (default: all of {", ".join(NODES)})')
    parser.add_argument('--all', action='store_true',
                        help='also the parameters of ROS itself (use_sim_time, ...)')
    parser.add_argument('--grep', default='', help='only names containing this text')


def parameters_of(session, node, timeout_s):
    """{name: python value} of every parameter of ``node`` (SuiteNotRunning if it is absent)."""
    from rcl_interfaces.srv import GetParameters, ListParameters
    from rclpy.parameter import parameter_value_to_python
    listed = session.call(ListParameters, f'{node}/list_parameters',
                          ListParameters.Request(prefixes=[], depth=0), timeout_s)
    names = sorted(listed.result.names)
    values = session.call(GetParameters, f'{node}/get_parameters',
                          GetParameters.Request(names=names), timeout_s)
    return {name: parameter_value_to_python(value) for name, value in zip(names, values.values)}


def run(args):
    """Run the command of parsed ``args``; the exit code (0 on success)."""
    unknown = [node for node in args.nodes if node not in NODES]
    if unknown:
        print(f'bmsctl: unknown node(s) {", ".join(unknown)}; known: {", ".join(NODES)}',
              file=sys.stderr)
        return 2
    nodes = args.nodes or list(NODES)
    answered = 0
    with Session(args.namespace) as session:
        for node in nodes:
            try:
                parameters = parameters_of(session, node, args.timeout)
            except SuiteNotRunning as error:
                print(f'bmsctl: {node}: {error}', file=sys.stderr)
                continue
            answered += 1
            for name, value in parameters.items():
                if not args.all and (name in ROS_OWN or name.startswith('qos_overrides.')):
                    continue
                if args.grep and args.grep not in name:
                    continue
                print(f'{node}: {name} = {format_value(value)}')
    return 0 if answered else 3
