"""Fault -> contactor-open latency per fail-safe row (docs/safety.md), over many trials.

The fault campaign of test/ros/test_fault_campaign.py, repeated: the whole graph in DRIVE at
20 A, one fault (SIGSTOP of a node, or a CAN frame group silenced or frozen at the pack), the
time to the first all-open frame on the bus and to the pack reporting all open (sim_truth,
10 Hz: up to 0.1 s of observation delay), then recovery to DRIVE. The bus time is the hub's
stamp of the frame; the sniffer's own delay behind it is printed beside (observer lag). SIGSTOP
stands for a hang; the supervisor is also killed (SIGKILL: a crash, a restart per trial), the
row where a dead DDS peer could hold up the driver's deadline timer.

    .venv/bin/python -m bench.run fault_latency     # BMS_BENCH_FAULT_TRIALS=20 (default)
    BMS_BENCH_FAULT_ROWS=supervisor_lost,current_lost ...   # a subset of rows
    BMS_BENCH_FAULT_LOGS=/tmp/faults ...                    # keep the processes' logs there

Two ride-through rows count how often a hung state_estimator opened the pack (goal 0): hung
0.5-2 s after a restart, and hung once running again.
"""
import contextlib
import os
import signal
import tempfile
import time

import numpy as np

import test.conftest  # noqa: F401  (reserves a private block of ROS domain ids)
from test.ros.fault_campaign import Campaign
from test.ros.harness import RosTestEnv

TRIALS = int(os.environ.get('BMS_BENCH_FAULT_TRIALS', '20'))
# row -> (how to break it, target, watch the bus, watch the pack)
CASES = {
    'supervisor_lost': ('stop', 'pack_supervisor', True, True),
    'supervisor_lost/kill': ('kill', 'pack_supervisor', True, True),
    'driver_lost': ('stop', 'can_driver', False, True),
    'protection_lost': ('stop', 'protection', True, True),
    'protection_lost/kill': ('kill', 'protection', True, True),
    'slave_lost': ('stop', 'pack_simulator', True, False),
    'cell_voltages_lost': ('can_frozen', 'cell_voltages', True, True),
    'current_lost': ('can_silent', 'current', True, True),
    'contactor_feedback_lost': ('can_frozen', 'contactors', True, True),
}


SIGNALS = {'stop': signal.SIGSTOP, 'kill': signal.SIGKILL}
# ride-through rows: the state_estimator hangs (SIGSTOP) and the pack must stay closed; it is
# restarted first (SIGKILL, start), then hung this long after its start, s (None: once it
# published its first estimate and the pack is back in DRIVE)
RIDE_THROUGH = {'estimator_hang/after_restart': (0.5, 2.0), 'estimator_hang/running': None}


def _trial(campaign, how, target, bus, pack, bound_s, observer_lag, details):
    campaign.drive()
    if how in SIGNALS:
        t0 = campaign.signal(target, SIGNALS[how])
    else:
        t0 = campaign.frame_fault(how, target)
    detail = {}
    try:
        opened = campaign.wait_opened(t0, timeout_s=bound_s + 3.0, bus=bus, pack=pack,
                                      observer_lag=observer_lag, detail=detail)
        details.append(detail)
        return opened
    finally:
        if how in SIGNALS:
            campaign.undo_node(target, SIGNALS[how])
        else:
            campaign.frame_fault(how, target, clear=True)


def _ride_through_trial(campaign, hang_after_s, trial):
    """True if the pack opened while the state_estimator hung (SIGSTOP) for its estimate
    timeout + 1.5 s; the estimator is restarted first and hung ``hang_after_s`` (lo, hi: spread
    over the trials) after its start, or once running again (None).
    """
    s = campaign.suite
    campaign.drive()
    campaign.signal('state_estimator', signal.SIGKILL)
    s.processes['state_estimator'].popen.wait(5.0)
    if hang_after_s is None:
        campaign.undo_node('state_estimator', signal.SIGKILL)    # waits for its estimate
        campaign.drive()
    else:
        s.start_node('state_estimator')
        lo, hi = hang_after_s
        time.sleep(lo + (hi - lo) * ((trial * 0.618) % 1.0))
    t0 = campaign.signal('state_estimator', signal.SIGSTOP)
    try:
        timeout_s = campaign.field('supervisor.estimate_timeout_s', 5.0)
        return not campaign.closed_throughout(t0, timeout_s + 1.5)
    finally:
        campaign.undo_node('state_estimator', signal.SIGSTOP)


def _row(name, values, bound_s, what):
    seen = np.array([v for v in values if v is not None], dtype=float)
    if not len(seen):
        return {'benchmark': name, 'value': 'none', 'unit': 's', 'goal': f'<= {bound_s:.2f} s',
                'note': f'{what}: never seen in {len(values)} trials'}
    return {'benchmark': name, 'value': float(np.percentile(seen, 99)), 'unit': 's p99',
            'goal': f'<= {bound_s:.2f} s',
            'note': f'{what}: p50 {np.median(seen):.3f} s, max {seen.max():.3f} s, '
                    f'{len(seen)}/{len(values)} trials'}


def run():
    rows_wanted = os.environ.get('BMS_BENCH_FAULT_ROWS')
    cases = {k: v for k, v in CASES.items()
             if not rows_wanted or k in rows_wanted.split(',')}
    rows = []
    keep = os.environ.get('BMS_BENCH_FAULT_LOGS')
    if keep:
        os.makedirs(keep, exist_ok=True)
    with (contextlib.nullcontext(keep) if keep
          else tempfile.TemporaryDirectory(prefix='bms_faults_')) as folder:
        env = RosTestEnv(folder)
        campaign = None
        try:
            campaign = Campaign(env, folder).start()
            for row, hang_after_s in RIDE_THROUGH.items():
                if rows_wanted and row not in rows_wanted.split(','):
                    continue
                opened = [_ride_through_trial(campaign, hang_after_s, k) for k in range(TRIALS)]
                when = ('once running' if hang_after_s is None
                        else f'{hang_after_s[0]:g}-{hang_after_s[1]:g} s after its restart')
                rows.append({'benchmark': f'{row}: pack opened', 'value': sum(opened),
                             'unit': f'of {TRIALS}', 'goal': '0 (rides through)',
                             'note': f'SIGSTOP state_estimator {when}, watched for '
                                     f'estimate_timeout_s + 1.5 s (docs/safety.md, '
                                     f'"A reader frozen just after it joined")'})
            for row, (how, target, bus, pack) in cases.items():
                bound = campaign.bounds[row.split('/')[0]]
                lag, details = [], []
                results = [_trial(campaign, how, target, bus, pack, bound, lag, details)
                           for _ in range(TRIALS)]
                if bus:
                    rows.append(_row(f'fault {row} -> open frame', [r[0] for r in results],
                                     bound, f'{how} {target}, bus'))
                    rows[-1]['note'] += f'; observer lag max {max(lag, default=0.0):.3f} s'
                if pack:
                    rows.append(_row(f'fault {row} -> pack open', [r[1] for r in results],
                                     bound + 0.1, f'{how} {target}, sim_truth'))
                    # the pack side's delivery: the simulator's stamp against the arrival here
                    delivery = [d['pack_arrival_s'] - d['pack_stamp_s'] for d in details
                                if 'pack_stamp_s' in d]
                    rows[-1]['note'] += f'; delivery max {max(delivery, default=0.0):.3f} s'
                    if bus:
                        # from the open frame on the bus to the simulator's report of it
                        behind = [d['pack_stamp_s'] - r[0] for d, r in zip(details, results)
                                  if 'pack_stamp_s' in d and r[0] is not None]
                        rows[-1]['note'] += (f'; frame to report max '
                                             f'{max(behind, default=0.0):.3f} s')
        finally:
            if campaign is not None:
                campaign.close()
            env.close()
    return rows
