"""Set the balancing mode (off, voltage, soc) and thresholds."""
import argparse
import math

from bms_interfaces.srv import SetBalancingMode
from bms_ros.core import contract
from bms_ros.tools.bmsctl.client import run_call


def positive(unit, maximum=None):
    """argparse type: a finite number > 0 (and <= maximum); the service reads 0 as 'keep'."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected a number in {unit}, got {text!r}') \
                from None
        if not math.isfinite(value) or value <= 0.0 or (maximum is not None and value > maximum):
            bound = f' and <= {maximum:g}' if maximum is not None else ''
            raise argparse.ArgumentTypeError(f'expected a number > 0{bound} ({unit}), got '
                                             f'{text}; leave it out to keep the present value')
        return value
    return parse


def add_arguments(parser):
    """Add this command's arguments to ``parser``."""
    parser.add_argument('mode', choices=('off', 'voltage', 'soc'))
    parser.add_argument('--threshold-v', type=positive('V', 1.0),
                        help='voltage mode: bleed cells above min + this (V; default: keep)')
    parser.add_argument('--hysteresis-v', type=positive('V', 1.0),
                        help='V (default: keep)')
    parser.add_argument('--soc-threshold', type=positive('SoC 0..1', 1.0),
                        help='soc mode: 0..1 (default: keep)')


def run(args):
    """Run the command of parsed ``args``; the exit code (0 on success)."""
    request = SetBalancingMode.Request(
        mode=getattr(SetBalancingMode.Request, f'MODE_{args.mode.upper()}'),
        threshold_v=args.threshold_v or 0.0, hysteresis_v=args.hysteresis_v or 0.0,
        soc_threshold=args.soc_threshold or 0.0)

    def describe(response):
        return response.success, f'balancing {args.mode}: {response.message}'
    return run_call(args.namespace, args.timeout, SetBalancingMode, contract.SET_BALANCING_MODE,
                    request, describe)
