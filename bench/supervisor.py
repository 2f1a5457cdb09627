"""Time from a DRIVE request to the DRIVE state, through the supervised pre-charge.

The protection and pack-supervisor nodes run in their own processes against the stand-in pack
of the ROS tests (test/ros/pack_plant.py): contactors close 15 ms after the command, the DC link
charges through 22 Ohm x 2.2 mF (tau 48 ms, as the LFP profile's simulator section), and the
measurement comes at 10 Hz as from the CAN driver. The time is dominated by the 10 Hz feedback:
each of the four sequence steps waits for a measurement showing the previous one done.

    .venv/bin/python -m bench.run supervisor           # BMS_BENCH_DRIVE_REQUESTS=10 (default)
"""
import os
import tempfile
import time

import numpy as np

import test.conftest  # noqa: F401  (reserves a private block of ROS domain ids)
from bench.trip_latency import bench_profile, request, start_nodes
from bms_interfaces.msg import PackState
from test.ros.harness import LATCHED, RosTestEnv
from test.ros.pack_plant import FakePack

REQUESTS = int(os.environ.get('BMS_BENCH_DRIVE_REQUESTS', '10'))


def measure(requests=REQUESTS):
    """Seconds from each accepted DRIVE request to the PackState DRIVE message."""
    with tempfile.TemporaryDirectory(prefix='bms_supervisor_') as folder:
        env = RosTestEnv(folder)
        pack = None
        try:
            profile = bench_profile(folder, supervisor={})   # the profile's own pre-charge
            start_nodes(env, profile, os.path.join(folder, 'state'))
            states = env.subscribe(PackState, 'pack_state', LATCHED)
            pack = FakePack(env)
            env.wait_for_subscribers(pack.measurement_pub, count=2, timeout_s=30.0)
            pack.start()
            states.wait_for(lambda s: s.state == PackState.STATE_STANDBY, timeout_s=30.0)
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
                time.sleep(0.3)
                pack.set(link_v=0.0)   # a discharged DC link, as at a first start
            return np.array(times)
        finally:
            if pack is not None:
                pack.stop()
            env.close()


def run():
    times = measure()
    note = (f'{len(times)} requests; stand-in pack: contactors 15 ms, DC link tau 48 ms, '
            f'feedback at 10 Hz')
    return [{'benchmark': f'request -> DRIVE {name}', 'value': float(value), 'unit': 's',
             'goal': '< 1 s' if name == 'max' else '', 'note': note}
            for name, value in (('p50', np.percentile(times, 50)), ('max', np.max(times)))]


if __name__ == '__main__':
    for row in run():
        print(row)
