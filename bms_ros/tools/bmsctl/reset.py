"""Ask the protection node to clear latched trips (refused while a condition persists)."""
import getpass

from bms_interfaces.srv import ResetTrips
from bms_ros.core import contract
from bms_ros.core.operator_view import reset_reply
from bms_ros.tools.bmsctl.client import run_call


def add_arguments(parser):
    """Add this command's arguments to ``parser``."""
    parser.add_argument('--reason', required=True, help='why (logged by the protection node)')
    parser.add_argument('--requester', default=f'bmsctl:{getpass.getuser()}')


def run(args):
    """Run the command of parsed ``args``; the exit code (0 on success)."""
    request = ResetTrips.Request(requester=args.requester, reason=args.reason)

    def describe(response):
        return response.success, reset_reply(response.success, response.message,
                                             list(response.still_latched))
    return run_call(args.namespace, args.timeout, ResetTrips, contract.RESET_TRIPS, request,
                    describe)
