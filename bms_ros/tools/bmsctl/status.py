"""Live status line of the suite (SoC, current, limits, cell voltages, trips)."""
import sys
import time

from bms_ros.tools.bmsctl.client import Session


def add_arguments(parser):
    parser.add_argument('--once', action='store_true', help='print one line and exit')
    parser.add_argument('--period', type=float, default=0.5, help='seconds between lines')


def run(args):
    from bms_ros.tools.status import StatusMonitor

    with Session() as session:
        monitor = StatusMonitor(args.namespace)
        session.executor.add_node(monitor)
        deadline = time.monotonic() + args.timeout
        while not monitor.received_at:
            if time.monotonic() > deadline:
                print(f'bmsctl: nothing received from the suite in {args.timeout:g} s on '
                      f'{monitor.get_namespace()} (is it running, same ROS_DOMAIN_ID?)',
                      file=sys.stderr)
                return 3
            session.spin(0.1)
        session.spin(min(1.0, args.timeout))  # let the other topics arrive
        try:
            while True:
                line = monitor.line()
                if args.once:
                    print(line)
                    return 0
                print('\r\033[K' + line if sys.stdout.isatty() else line, end='' if
                      sys.stdout.isatty() else '\n', flush=True)
                session.spin(args.period)
        except KeyboardInterrupt:
            print()
            return 0
