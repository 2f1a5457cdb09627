"""Record, play and replay offline the suite's topics as rosbag2 (MCAP) bags.

    python -m bms_ros.tools.bag record OUT_DIR [--namespace NS] [--duration S] [--topics ...]
    python -m bms_ros.tools.bag play BAG [--rate X] [--clock] [--namespace NS]
    python -m bms_ros.tools.bag offline BAG [--profile P] [--json OUT]

record and play need rclpy; offline does not (it runs the estimation and protection cores
directly, faster than real time). See docs/bags.md.
"""
import argparse
import sys

from bms_ros.core.bag_schema import BagError
from bms_ros.core.errors import BmsError

EXIT_USAGE = 2


def build_parser():
    """The argument parser of the record, play and replay commands."""
    from . import offline, play, record
    parser = argparse.ArgumentParser(prog='python -m bms_ros.tools.bag', description=__doc__.split(
        '\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest='verb', required=True)
    for name, module in (('record', record), ('play', play), ('offline', offline)):
        sub = verbs.add_parser(name, help=module.__doc__.split('\n')[0],
                               description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv=None):
    """Entry point; returns the process exit code (0 ok, 1 failed, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args = []
    if '--ros-args' in argv:  # passed on to rclpy (record, play): e.g. -p use_sim_time:=true
        ros_args = argv[argv.index('--ros-args'):]
        argv = argv[:argv.index('--ros-args')]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.ros_args = ros_args
    try:
        return args.run(args) or 0
    except BagError as error:
        print(f'bag {args.verb}: {error}', file=sys.stderr)
        return EXIT_USAGE
    except BmsError as error:
        print(f'bag {args.verb}: {error}', file=sys.stderr)
        return EXIT_USAGE
