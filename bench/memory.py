"""Peak memory (RSS) and CPU of every process of the suite on the simulated pack.

Starts the suite with the bringup tool in a private ROS domain (from the block of domain ids
this process reserves, as the tests do), asks for DRIVE so the simulated pack runs its drive
cycle, lets it run, samples each process with psutil, and reports peak RSS and mean CPU per
node.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

import psutil

import test.conftest  # noqa: F401  (reserves a private block of ROS domain ids)
from test.ros.harness import next_domain_id

RUN_S = float(os.environ.get('BMS_BENCH_MEMORY_S', '40'))


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_suite(profile, seconds, extra=()):
    """Run bringup for ``seconds`` and sample its children: {name: (peak_rss_mb, cpu_pct)}."""
    log_dir = tempfile.mkdtemp(prefix='bms_bench_')
    env = dict(os.environ, ROS_DOMAIN_ID=str(next_domain_id()),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    argv = [sys.executable, '-m', 'bms_ros.tools.bringup', '--profile', profile,
            '--can-port', str(free_port()), '--log-dir', log_dir,
            '--duration', str(seconds + 5), '--request-state', 'drive', *extra]
    bringup = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    peaks, cpu_first, names = {}, {}, {}
    time.sleep(5.0)  # start-up is not what we measure
    start = time.monotonic()
    try:
        parent = psutil.Process(bringup.pid)
        while time.monotonic() - start < seconds and bringup.poll() is None:
            for child in parent.children():
                try:
                    if child.pid not in names:
                        cmd = child.cmdline()
                        module = cmd[cmd.index('-m') + 1] if '-m' in cmd else cmd[0]
                        names[child.pid] = module.rsplit('.', 1)[-1]
                        cpu_first[child.pid] = (time.monotonic(), sum(child.cpu_times()[:2]))
                    peaks[child.pid] = max(peaks.get(child.pid, 0), child.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
            time.sleep(0.5)
        result = {}
        for pid, name in names.items():
            try:
                t0, c0 = cpu_first[pid]
                proc = psutil.Process(pid)
                cpu = 100.0 * (sum(proc.cpu_times()[:2]) - c0) / (time.monotonic() - t0)
            except psutil.NoSuchProcess:
                cpu = float('nan')
            result[name] = (peaks[pid] / 2**20, cpu)
        return result
    finally:
        bringup.terminate()
        bringup.wait(30)


def run():
    from bms_ros.core.profile import config_dir
    rows = []
    for profile in ('lfp_16s', 'nmc_96s'):
        path = os.path.join(config_dir(), 'profiles', f'{profile}.yaml')
        for name, (rss_mb, cpu) in sorted(run_suite(path, RUN_S).items()):
            rows.append({'benchmark': f'{profile} {name} peak RSS', 'value': rss_mb, 'unit': 'MiB',
                         'goal': '', 'note': f'mean CPU {cpu:.1f} % of a core over {RUN_S:g} s'})
    return rows
