"""bmsctl: operate a running bms_ros suite from a terminal.

    bmsctl status [--once]                  live status line (SoC, current, limits, cells, trips)
    bmsctl reset --reason TEXT              ask protection to clear latched trips
    bmsctl request drive|charge|standby     ask the pack supervisor for a state
    bmsctl balancing off|voltage|soc [--threshold-v X] [--hysteresis-v X] [--soc-threshold X]
    bmsctl soc --from-ocv | --set X         recalibrate or set the estimator's SoC
    bmsctl record OUT_DIR | replay BAG      record or play a bag (bms_ros.tools.bag)

Every verb takes --namespace NS (one suite per pack) and --timeout S.
"""
import argparse
import importlib
import sys

VERBS = ('status', 'reset', 'request', 'balancing', 'soc', 'record', 'replay')


def build_parser():
    parser = argparse.ArgumentParser(prog='bmsctl', description=__doc__.split('\n\n')[0],
                                     epilog=__doc__.split('\n\n', 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='verb', required=True)
    for verb in VERBS:
        module = importlib.import_module(f'{__name__}.{verb}')
        verb_parser = sub.add_parser(verb, help=module.__doc__.splitlines()[0])
        verb_parser.add_argument('--namespace', default='', help='namespace of the pack')
        verb_parser.add_argument('--timeout', type=float, default=5.0,
                                 help='seconds to wait for the suite (default 5)')
        module.add_arguments(verb_parser)
        verb_parser.set_defaults(run=module.run)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == '__main__':
    sys.exit(main())
