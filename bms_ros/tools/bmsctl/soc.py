"""Recalibrate the estimator's SoC from OCV at rest, or set it."""
from bms_interfaces.srv import SetSoc
from bms_ros.core import contract
from bms_ros.tools.bmsctl.client import run_call


def add_arguments(parser):
    """Add this command's arguments to ``parser``."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--from-ocv', action='store_true', help='re-anchor from OCV (at rest)')
    group.add_argument('--set', type=float, metavar='SOC', help='set every cell to SOC (0..1)')
    parser.add_argument('--force', action='store_true', help='re-anchor even if not at rest')


def run(args):
    """Run the command of parsed ``args``; the exit code (0 on success)."""
    request = SetSoc.Request(from_ocv=args.from_ocv, force=args.force,
                             cell_soc=[] if args.set is None else [args.set])

    def describe(response):
        socs = ', '.join(f'{v:.3f}' for v in response.cell_soc[:8])
        more = ' ...' if len(response.cell_soc) > 8 else ''
        return response.success, f'{response.message} [{socs}{more}]'
    return run_call(args.namespace, args.timeout, SetSoc, contract.SET_SOC, request, describe)
