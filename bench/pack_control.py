"""Period of the state request on the bus while DRIVE holds (control style (b), a pack BMS).

The pack_report node in its own process on the CAN hub, the pack's own BMS played from this
process (test/ros/test_pack_control.FakePackBms, statereq_bms.dbc): after request_state DRIVE,
the intervals between consecutive 'Normal' state-request frames over ``BMS_BENCH_REQUEST_S``
[3] seconds, as the pack receives them. test_pack_control checks that the request repeats;
how often is this figure (the DBC cycle time is 100 ms).

    .venv/bin/python -m bench.run pack_control
"""
import os
import pathlib
import tempfile
import time

import numpy as np

import test.conftest  # noqa: F401  (reserves a private block of ROS domain ids)
from bms_interfaces.msg import PackState
from bms_interfaces.srv import RequestState
from bms_ros.core import contract
from test.ros.harness import LATCHED, RosTestEnv
from test.ros.test_pack_control import NORMAL_RAW, REPORT, FakePackBms
from test.ros.test_vendor_layouts import write_profile
from test.support.can_pack import start_hub

WINDOW_S = float(os.environ.get('BMS_BENCH_REQUEST_S', '3'))


def measure(window_s=WINDOW_S):
    """Seconds between consecutive 'Normal' requests received by the pack in DRIVE."""
    with tempfile.TemporaryDirectory(prefix='bms_pack_control_') as folder:
        env = RosTestEnv(folder)
        pack = None
        try:
            port = start_hub(env)
            profile = write_profile(pathlib.Path(folder), 'statereq_bms', port)
            pack = FakePackBms(port, REPORT)
            states = env.subscribe(PackState, contract.PACK_STATE, LATCHED)
            env.start_module('bms_ros.nodes.pack_report', params={'profile': profile})
            states.wait_for(lambda m: m.state_name == 'STANDBY', timeout_s=30.0)
            answer = env.call(RequestState, contract.REQUEST_STATE,
                              RequestState.Request(state=PackState.STATE_DRIVE,
                                                   requester='bench'), timeout_s=10.0)
            assert answer.accepted, answer.reason
            states.wait_for(lambda m: m.state == PackState.STATE_DRIVE, timeout_s=10.0)
            start = time.monotonic()
            time.sleep(window_s)    # the measurement window
            times = [t for t, raw in list(pack.requests) if t >= start and raw == NORMAL_RAW]
            return np.diff(np.array(times))
        finally:
            if pack is not None:
                pack.close()
            env.close()


def run():
    gaps = measure()
    note = (f'{len(gaps)} intervals over {WINDOW_S:g} s in DRIVE, pack_report node on the CAN '
            'hub, statereq_bms.dbc')
    return [{'benchmark': 'state request period in DRIVE, p50', 'value': 1e3 * float(
                np.median(gaps)), 'unit': 'ms', 'goal': '100 ms (DBC cycle time)', 'note': note},
            {'benchmark': 'state request period in DRIVE, max', 'value': 1e3 * float(
                np.max(gaps)), 'unit': 'ms', 'goal': '', 'note': note}]


if __name__ == '__main__':
    for row in run():
        print(row)
