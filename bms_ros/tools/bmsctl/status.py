"""Live status line of the suite within 80 columns (--wide or --fields for more)."""
import argparse
import sys

from bms_ros.core import operator_view
from bms_ros.tools.bmsctl.client import Session


def field_list(text):
    """argparse type: comma-separated status fields (operator_view.FIELDS)."""
    try:
        return operator_view.parse_fields(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser):
    """Add this command's arguments to ``parser``."""
    parser.add_argument('--once', action='store_true',
                        help='print one complete line (every field\'s topic received) and exit')
    parser.add_argument('--period', type=float, default=0.5, help='seconds between lines')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--wide', action='store_true',
                       help='every field, not cut to the terminal width')
    group.add_argument('--fields', type=field_list,
                       help='comma-separated fields: ' + ', '.join(operator_view.FIELDS))


def fields_and_width(args):
    """(fields, width) of the arguments: the default 80 columns, --wide or --fields."""
    if args.wide:
        return operator_view.WIDE_FIELDS, None
    if args.fields:
        return args.fields, None
    return operator_view.DEFAULT_FIELDS, operator_view.LINE_WIDTH


def wait_for_inputs(session, monitor, fields, timeout_s):
    """'' once every topic the fields read has arrived, else what is still missing."""
    import time
    deadline = time.monotonic() + timeout_s
    while True:
        missing = monitor.missing(fields)
        if not missing or time.monotonic() > deadline:
            return missing
        session.spin(0.05)


def run(args):
    """Run the command of parsed ``args``; the exit code (0 on success)."""
    from bms_ros.tools.status import StatusMonitor

    fields, width = fields_and_width(args)
    with Session() as session:
        monitor = StatusMonitor(args.namespace)
        session.executor.add_node(monitor)
        missing = wait_for_inputs(session, monitor, fields, args.timeout)
        if missing:
            nothing = not monitor.received_at
            print(f'bmsctl: {"nothing received" if nothing else "incomplete"} after '
                  f'{args.timeout:g} s on {monitor.get_namespace()}: missing {missing} '
                  f'(is the suite running, same ROS_DOMAIN_ID and namespace?)', file=sys.stderr)
            return 3
        tty = sys.stdout.isatty()
        while True:
            line = monitor.line(fields, width)
            if args.once:
                print(line)
                return 0
            print('\r\033[K' + line if tty else line, end='' if tty else '\n', flush=True)
            try:
                session.spin(args.period)
            except KeyboardInterrupt:
                if tty:
                    print()
                return 0
