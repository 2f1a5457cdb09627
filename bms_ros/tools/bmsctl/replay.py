"""Play a bag back onto the suite's topics with /clock (bms_ros.tools.bag play)."""


def add_arguments(parser):
    """Add this command's arguments to ``parser``."""
    parser.add_argument('bag')
    parser.add_argument('--rate', type=float, default=1.0)


def run(args):
    """Run the command of parsed ``args``; the exit code (0 on success)."""
    from bms_ros.tools import bag
    return bag.main(['play', args.bag, '--rate', str(args.rate), '--clock'])
