"""Play a bag back onto the suite's topics with /clock (bms_ros.tools.bag play)."""


def add_arguments(parser):
    parser.add_argument('bag')
    parser.add_argument('--rate', type=float, default=1.0)


def run(args):
    from bms_ros.tools import bag
    return bag.main(['play', args.bag, '--rate', str(args.rate), '--clock'])
