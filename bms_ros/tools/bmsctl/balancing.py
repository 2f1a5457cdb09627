"""Set the balancing mode (off, voltage, soc) and thresholds."""
from bms_interfaces.srv import SetBalancingMode
from bms_ros.tools.bmsctl.client import run_call


def add_arguments(parser):
    parser.add_argument('mode', choices=('off', 'voltage', 'soc'))
    parser.add_argument('--threshold-v', type=float, default=0.0)
    parser.add_argument('--hysteresis-v', type=float, default=0.0)
    parser.add_argument('--soc-threshold', type=float, default=0.0)


def run(args):
    request = SetBalancingMode.Request(
        mode=getattr(SetBalancingMode.Request, f'MODE_{args.mode.upper()}'),
        threshold_v=args.threshold_v, hysteresis_v=args.hysteresis_v,
        soc_threshold=args.soc_threshold)

    def describe(response):
        return response.success, f'balancing {args.mode}: {response.message}'
    return run_call(args.namespace, args.timeout, SetBalancingMode, 'set_balancing_mode',
                    request, describe)
