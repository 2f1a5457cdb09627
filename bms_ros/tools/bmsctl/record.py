"""Record the suite's topics to a rosbag2 (MCAP) bag (bms_ros.tools.bag record)."""


def add_arguments(parser):
    """Add this command's arguments to ``parser``."""
    parser.add_argument('out_dir')
    parser.add_argument('--duration', type=float, default=0.0, help='seconds, 0 = until Ctrl-C')


def run(args):
    """Run the command of parsed ``args``; the exit code (0 on success)."""
    from bms_ros.tools import bag
    argv = ['record', args.out_dir, '--duration', str(args.duration)]
    if args.namespace:
        argv += ['--namespace', args.namespace]
    return bag.main(argv)
