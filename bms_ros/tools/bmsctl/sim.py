"""The simulated pack: inject or clear faults, set the load (A or W) and the ambient."""
import argparse
import math
import re
import sys
import time

from bms_ros.core import contract
from bms_ros.core.sim_faults import CONTACTORS, FAULTS, FRAME_FAULTS
from bms_ros.tools.bmsctl.client import Session, SuiteNotRunning

SIMULATOR = 'pack_simulator'
LOAD_PATTERN = re.compile(r'^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(a|w|kw)?\s*$',
                          re.IGNORECASE)


def load_value(text):
    """argparse type: '-20A', '20', '500W', '-1.5kW' -> (value, 'A' or 'W'); + = charging."""
    match = LOAD_PATTERN.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f'expected a current or power such as -20A, 15, 500W '
                                         f'or -1.5kW (+ = charging), got {text!r}')
    value = float(match.group(1))
    unit = (match.group(2) or 'a').lower()
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f'expected a finite value, got {text!r}')
    if unit == 'kw':
        return value * 1000.0, 'W'
    return value, unit.upper()


def negative_load_last(argv):
    """argv with a negative load such as '-20A' moved behind '--' (argparse would take it for
    an option).
    """
    argv = list(argv)
    if 'sim' not in argv or 'load' not in argv[argv.index('sim'):]:
        return argv
    start = argv.index('load', argv.index('sim')) + 1
    for i in range(start, len(argv)):
        token = argv[i]
        if token == '--':
            break
        if token.startswith('-') and LOAD_PATTERN.match(token):
            return argv[:i] + argv[i + 1:] + ['--', token]
    return argv


def index_value(text):
    """argparse type: an integer index, or a contactor name (negative, positive, precharge)."""
    if text in CONTACTORS:
        return CONTACTORS.index(text)
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an index or one of {", ".join(CONTACTORS)}, '
                                         f'got {text!r}') from None


def add_arguments(parser):
    """Add this command's arguments to ``parser``."""
    sub = parser.add_subparsers(dest='action', required=True)
    names = ', '.join(list(FAULTS) + list(FRAME_FAULTS))
    fault = sub.add_parser('fault', help='inject a fault', description=f'faults: {names}')
    fault.add_argument('fault', choices=list(FAULTS) + list(FRAME_FAULTS), metavar='FAULT',
                       help=names)
    fault.add_argument('index', nargs='?', type=index_value, default=0,
                       help='cell, sensor, contactor (negative, positive, precharge) or message '
                            'index (default 0)')
    fault.add_argument('--value', type=float, default=0.0,
                       help='V, W, A or ohm as the fault needs (0: its default)')
    clear = sub.add_parser('clear', help='clear a fault (all: every fault)')
    clear.add_argument('fault', choices=['all'] + list(FAULTS) + list(FRAME_FAULTS),
                       metavar='FAULT', help='all, ' + names)
    clear.add_argument('index', nargs='?', type=index_value, default=-1,
                       help='the instance (default -1: every instance)')
    load = sub.add_parser('load', help='set the load: -20A, 15 (A), 500W, -1.5kW; + = charging')
    load.add_argument('load', type=load_value, metavar='LOAD')
    ambient = sub.add_parser('ambient', help='set the ambient temperature (degC)')
    ambient.add_argument('degc', type=float)


def run(args):
    """Run the command of parsed ``args``; the exit code (0 on success)."""
    try:
        with Session(args.namespace) as session:
            if args.action in ('fault', 'clear'):
                return _fault(session, args)
            if args.action == 'load':
                return _load(session, args)
            return _ambient(session, args)
    except SuiteNotRunning as error:
        print(f'bmsctl: {error} (is the suite running with the simulated pack?)',
              file=sys.stderr)
        return 3


def _fault(session, args):
    from bms_interfaces.srv import InjectFault
    clear = args.action == 'clear'
    request = InjectFault.Request(fault=args.fault, index=args.index, value=args.value
                                  if not clear else 0.0, clear=clear)
    response = session.call(InjectFault, contract.INJECT_FAULT, request, args.timeout)
    verb = 'cleared' if clear else 'injected'
    if response.success:
        print(f'{verb}: {response.message}')
        return 0
    print(f'refused by the simulator: {response.message}')
    return 1


def _load(session, args):
    from std_msgs.msg import Float32

    from bms_interfaces.msg import SimTruth
    from bms_ros.nodes import qos
    value, unit = args.load
    stream = qos.STREAM
    topic = contract.LOAD_DEMAND if unit == 'A' else contract.LOAD_DEMAND_POWER
    publisher = session.node.create_publisher(Float32, topic, stream)
    truths = []
    session.node.create_subscription(SimTruth, contract.SIM_TRUTH, truths.append, stream)
    deadline = time.monotonic() + args.timeout
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            raise SuiteNotRunning(f'nobody subscribes {session.node.resolve_topic_name(topic)} '
                                  f'after {args.timeout:g} s')
        session.spin(0.05)
    publisher.publish(Float32(data=value))
    sent_at = time.monotonic()
    # the pack's answer: its current a moment later (sim_truth, 10 Hz)
    while time.monotonic() < sent_at + min(1.5, args.timeout) or not truths:
        if time.monotonic() > sent_at + args.timeout:
            break
        session.spin(0.05)
    what = f'{value:+g} {unit}' + (' (charging)' if value > 0 else ' (discharging)'
                                   if value < 0 else '')
    if not truths:
        print(f'load {what} sent on {session.node.resolve_topic_name(topic)}; no sim_truth '
              f'seen to confirm it')
        return 0
    truth = truths[-1]
    if not (truth.negative_contactor_closed and truth.positive_contactor_closed):
        print(f'load {what} set; the contactors are open, so the pack carries it once in DRIVE '
              f'or CHARGE (bmsctl request drive)')
        return 0
    print(f'load {what} set; pack current now {truth.pack_current_a:+.2f} A at '
          f'{truth.pack_voltage_v:.2f} V')
    return 0


def _ambient(session, args):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    request = SetParameters.Request(parameters=[Parameter(
        name='ambient_degc', value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE,
                                                  double_value=args.degc))])
    response = session.call(SetParameters, f'{SIMULATOR}/set_parameters', request, args.timeout)
    result = response.results[0]
    if result.successful:
        print(f'ambient {args.degc:g} degC set; the cells follow with the pack\'s thermal time '
              f'constant (its start-up log line, or bmsctl config {SIMULATOR})')
        return 0
    print(f'ambient refused by the simulator: {result.reason}')
    return 1
