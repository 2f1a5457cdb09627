"""Time from a DRIVE request to the DRIVE state on the simulated pack, through the CAN bus.

Starts the CAN hub, pack_simulator (real time), can_driver, protection and pack_supervisor in
their own processes (test/ros/pack_plant.py SimulatedSuite, the LFP profile: contactors close
in 15 ms, DC link 22 Ohm x 2.2 mF, tau 48 ms) and times request_state DRIVE -> PackState DRIVE
in this process. Each of the four sequence steps waits for the driver's next measurement
(10 Hz) showing the previous one done, so the time is mostly measurement periods. The first
request starts from a discharged DC link; later ones from a partly charged one (it discharges
through 4.7 kOhm, tau 10 s, in the 1 s between requests).

    .venv/bin/python -m bench.run supervisor           # BMS_BENCH_DRIVE_REQUESTS=6 (default)
"""
import os
import tempfile
import time

import numpy as np

import test.conftest  # noqa: F401  (reserves a private block of ROS domain ids)
from bms_interfaces.msg import PackMeasurement, PackState
from bms_interfaces.srv import RequestState
from bms_ros.core import contract
from test.ros.harness import LATCHED, RELIABLE, RosTestEnv
from test.ros.pack_plant import SimulatedSuite

REQUESTS = int(os.environ.get('BMS_BENCH_DRIVE_REQUESTS', '6'))


def request(env, state):
    return env.call(RequestState, contract.REQUEST_STATE,
                    RequestState.Request(state=state, requester='bench'))


def measure(requests=REQUESTS):
    """Seconds from each accepted DRIVE request to the PackState DRIVE message."""
    with tempfile.TemporaryDirectory(prefix='bms_supervisor_') as folder:
        env = RosTestEnv(folder)
        suite = None
        try:
            suite = SimulatedSuite(env, folder, supervisor={'require_estimate': False})
            states = env.subscribe(PackState, 'pack_state', LATCHED)
            measurements = env.subscribe(PackMeasurement, 'measurement', RELIABLE)
            states.wait_for(lambda s: s.state == PackState.STATE_STANDBY, timeout_s=30.0)
            measurements.wait_for(lambda m: not (m.cell_voltages_stale or m.temperatures_stale
                                                 or m.current_stale or m.contactors_stale),
                                  timeout_s=20.0)
            times = []
            for _ in range(requests):
                states.clear()
                start = time.monotonic()
                answer = request(env, PackState.STATE_DRIVE)
                assert answer.accepted, answer.reason
                states.wait_for(lambda s: s.state == PackState.STATE_DRIVE, timeout_s=10.0)
                drive_at = next(t for t, s in states.messages if s.state == PackState.STATE_DRIVE)
                times.append(drive_at - start)
                assert request(env, PackState.STATE_STANDBY).accepted
                time.sleep(1.0)
                measurements.clear()
                measurements.wait_for(lambda m: not (m.negative_contactor_closed
                                                     or m.positive_contactor_closed),
                                      timeout_s=5.0)
            return np.array(times)
        finally:
            if suite is not None:
                suite.close()
            env.close()


def run():
    times = measure()
    note = 'simulated LFP pack over the CAN hub, driver measurement at 10 Hz'
    return [{'benchmark': 'request -> DRIVE, first (discharged DC link)',
             'value': float(times[0]), 'unit': 's', 'goal': '< 1 s', 'note': note},
            {'benchmark': 'request -> DRIVE, later requests p50 / max',
             'value': float(np.median(times[1:])), 'unit': 's', 'goal': '',
             'note': f'max {np.max(times[1:]):.3f} s over {len(times) - 1}; {note}'}]


if __name__ == '__main__':
    for row in run():
        print(row)
