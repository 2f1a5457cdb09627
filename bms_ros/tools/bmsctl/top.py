"""Full-screen live view: cells as bars, temperatures, SoC, SoH, limits, state, trips, events."""
import shutil
import sys

from bms_ros.core import operator_view
from bms_ros.tools.bmsctl.client import Session


def add_arguments(parser):
    """Add this command's arguments to ``parser``."""
    parser.add_argument('--period', type=float, default=0.5, help='seconds between redraws')
    parser.add_argument('--plain', action='store_true',
                        help='print the view as plain text once and exit (no full screen)')


def render(latest, events, width):
    """The view as a rich renderable: one panel per operator_view panel."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text
    panels = []
    for title, lines in operator_view.view_panels(latest, events, width):
        text = Text('\n'.join(lines), no_wrap=True, overflow='ellipsis')
        for word, style in (('TRIP', 'bold red'), ('ALARM', 'red'), ('WARN', 'yellow'),
                            ('ERROR', 'bold red')):
            text.highlight_words([word], style)
        panels.append(Panel(text, title=title, title_align='left'))
    return Group(*panels)


def run(args):
    """Run the command of parsed ``args``; the exit code (0 on success)."""
    from bms_ros.tools.status import StatusMonitor

    with Session() as session:
        monitor = StatusMonitor(args.namespace)
        session.executor.add_node(monitor)
        missing = _wait(session, monitor, args.timeout)
        if missing and not monitor.received_at:
            print(f'bmsctl: nothing received after {args.timeout:g} s on '
                  f'{monitor.get_namespace()}: missing {missing} (is the suite running, same '
                  'ROS_DOMAIN_ID and namespace?)', file=sys.stderr)
            return 3
        width = shutil.get_terminal_size((100, 40)).columns
        if args.plain or not sys.stdout.isatty():
            print(operator_view.view_text(monitor.latest, monitor.events, width))
            return 0
        from rich.console import Console
        from rich.live import Live
        console = Console()
        try:
            with Live(render(monitor.latest, monitor.events, console.width - 4), console=console,
                      screen=True, auto_refresh=False) as live:
                while True:
                    session.spin(args.period)
                    live.update(render(monitor.latest, monitor.events, console.width - 4),
                                refresh=True)
        except KeyboardInterrupt:
            return 0


def _wait(session, monitor, timeout_s):
    """Wait up to ``timeout_s`` for every topic of the view; what is still missing."""
    import time
    deadline = time.monotonic() + timeout_s
    fields = operator_view.WIDE_FIELDS
    while True:
        missing = monitor.missing(fields)
        if not missing or time.monotonic() > deadline:
            return missing
        session.spin(0.05)
