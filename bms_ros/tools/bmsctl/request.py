"""Ask the pack supervisor for a state: standby, drive or charge."""
from bms_interfaces.msg import PackState
from bms_interfaces.srv import RequestState
from bms_ros.core import contract
from bms_ros.tools.bmsctl.client import run_call


def add_arguments(parser):
    """Add this command's arguments to ``parser``."""
    parser.add_argument('state', choices=('standby', 'drive', 'charge'))
    parser.add_argument('--requester', default='bmsctl')


def run(args):
    """Run the command of parsed ``args``; the exit code (0 on success)."""
    request = RequestState.Request(state=getattr(PackState, f'STATE_{args.state.upper()}'),
                                   requester=args.requester)

    def describe(response):
        verdict = 'accepted' if response.accepted else 'refused'
        return response.accepted, f'{args.state} {verdict}: {response.reason}'
    return run_call(args.namespace, args.timeout, RequestState, contract.REQUEST_STATE, request,
                    describe)
