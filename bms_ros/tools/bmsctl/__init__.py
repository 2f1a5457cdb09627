"""bmsctl: operate a running bms_ros suite from a terminal.

    bmsctl status [--once] [--wide | --fields F,...]   live status line within 80 columns
    bmsctl top                              full-screen live view (cells, temperatures, trips)
    bmsctl reset --reason TEXT              ask protection to clear latched trips
    bmsctl request drive|charge|standby     ask the pack supervisor for a state
    bmsctl balancing off|voltage|soc [--threshold-v X] [--hysteresis-v X] [--soc-threshold X]
    bmsctl soc --from-ocv | --set X         recalibrate or set the estimator's SoC
    bmsctl record OUT_DIR | replay BAG      record or play a bag (bms_ros.tools.bag)
    bmsctl sim fault|clear|load|ambient ... the simulated pack: faults, load (A or W), ambient
    bmsctl config [NODE] [--all]            the effective configuration of running nodes

Every verb takes --namespace NS (one suite per pack) and --timeout S. Exit codes: 0 done,
1 refused, 2 bad arguments, 3 the suite (or the node asked) does not answer. Ctrl-C or SIGTERM
ends a verb quietly. Every field of status and top: docs/operator.md.
"""
import argparse
import importlib
import sys

VERBS = ('status', 'top', 'reset', 'request', 'balancing', 'soc', 'sim', 'config', 'record',
         'replay')


def build_parser():
    """The argument parser of bmsctl and its sub-commands."""
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
    """The bmsctl command line; the exit code."""
    from bms_ros.tools.bmsctl.client import stop_on_signals
    from bms_ros.tools.bmsctl.sim import negative_load_last
    argv = negative_load_last(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    stop_on_signals()
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 0


if __name__ == '__main__':
    sys.exit(main())
