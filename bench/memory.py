"""Footprint of the whole suite: RSS and CPU of every process, one process per node or single.

Starts the suite with the bringup tool in a private ROS domain (from the block of domain ids
this process reserves, as the tests do), lets it settle, samples bringup and each of its
children with psutil, and reports peak RSS (MiB) and mean CPU (% of one core) per process and
for the whole suite (bringup included). Rows:

- LFP 16s in STANDBY (the idle footprint of issue 18 item 8), one process per node and
  ``--single-process`` (every BMS node in one process; simulator and hub stay separate):
  goal for the single-process suite <= 15 % of a core and <= 200 MiB (the sum of the
  processes' RSS, as the issue measured it; the PSS sum, the RAM the suite really takes
  with shared pages counted once, beside it); the same with the container's
  ``--executor multi`` and ``--executor single`` (what the default isolated executors save);
- LFP 16s and NMC 96s in DRIVE (the simulated drive cycle), one process per node, per process.

    .venv/bin/python -m bench.run memory
    BMS_BENCH_MEMORY_S=20 .venv/bin/python -m bench.memory    # print the table alone
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
SETTLE_S = 8.0           # s after start before sampling: start-up is not what we measure
GOAL_CPU_PCT = 15.0      # whole suite, STANDBY, single process (issue 18 item 8)
GOAL_RSS_MIB = 200.0


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _name(process):
    cmd = process.cmdline()
    module = cmd[cmd.index('-m') + 1] if '-m' in cmd else os.path.basename(cmd[0])
    return module.rsplit('.', 1)[-1]


def run_suite(profile, seconds, request_state=None, single_process=False, extra=(),
              pss=None):
    """Run bringup, sample it and its children for ``seconds``: {name: (peak_rss_mib, cpu_pct)};
    the key 'bringup' is the bringup process itself, 'total' the sum over all of them. With a
    dict ``pss``, it also gets {name: peak PSS MiB} and 'total'.
    """
    log_dir = tempfile.mkdtemp(prefix='bms_bench_')
    env = dict(os.environ, ROS_DOMAIN_ID=str(next_domain_id()),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               XDG_STATE_HOME=os.path.join(log_dir, 'state'))
    argv = [sys.executable, '-m', 'bms_ros.tools.bringup', '--profile', profile,
            '--can-port', str(free_port()), '--log-dir', log_dir,
            '--duration', str(seconds + SETTLE_S + 5)]
    if request_state:
        argv += ['--request-state', request_state]
    if single_process:
        argv += ['--single-process']
    argv += list(extra)
    bringup = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    peaks, cpu_first, names, procs, pss_peaks = {}, {}, {}, {}, {}
    time.sleep(SETTLE_S)
    start = time.monotonic()
    try:
        parent = psutil.Process(bringup.pid)
        while time.monotonic() - start < seconds and bringup.poll() is None:
            for proc in [parent, *parent.children()]:
                try:
                    if proc.pid not in names:
                        names[proc.pid] = 'bringup' if proc.pid == bringup.pid else _name(proc)
                        procs[proc.pid] = proc
                        cpu_first[proc.pid] = (time.monotonic(), sum(proc.cpu_times()[:2]))
                    peaks[proc.pid] = max(peaks.get(proc.pid, 0), proc.memory_info().rss)
                    if pss is not None:
                        pss_peaks[proc.pid] = max(pss_peaks.get(proc.pid, 0),
                                                  proc.memory_full_info().pss)
                except psutil.NoSuchProcess:
                    pass
            time.sleep(0.5)
        result = {}
        for pid, name in names.items():
            try:
                t0, c0 = cpu_first[pid]
                cpu = 100.0 * (sum(procs[pid].cpu_times()[:2]) - c0) / (time.monotonic() - t0)
            except psutil.NoSuchProcess:
                cpu = float('nan')
            result[name] = (peaks[pid] / 2**20, cpu)
        result['total'] = (sum(r for r, _ in result.values()),
                           sum(c for _, c in result.values()))
        if pss is not None:
            pss.update({names[pid]: value / 2**20 for pid, value in pss_peaks.items()})
            pss['total'] = sum(pss.values())
        return result
    finally:
        bringup.terminate()
        bringup.wait(30)


def _detail(result):
    return ', '.join(f'{name} {rss:.0f} MiB {cpu:.1f} %' for name, (rss, cpu)
                     in sorted(result.items()) if name != 'total')


def _goal(limit, value):
    """The goal column: the limit, and whether this run met it (the unmet goal stays visible)."""
    return f'<= {limit:g} (single process): {"met" if value <= limit else "NOT MET"}'


def _load():
    """The machine's 1-minute load average now (the machine is shared: CPU reads high)."""
    return os.getloadavg()[0]


def run():
    from bms_ros.core.profile import config_dir
    rows = []
    lfp = os.path.join(config_dir(), 'profiles', 'lfp_16s.yaml')
    # both modes of issue 18 item 8, and the container's executor choice: the default (a
    # thread and an executor per node, as component_container_isolated) against one
    # MultiThreadedExecutor (component_container_mt) and one thread for every node's callbacks
    for single, extra, mode in ((False, (), 'one process per node'),
                                (True, (), 'single process'),
                                (True, ('--executor', 'multi'),
                                 'single process, --executor multi'),
                                (True, ('--executor', 'single'),
                                 'single process, --executor single')):
        load = _load()
        pss = {}
        result = run_suite(lfp, RUN_S, single_process=single, extra=extra, pss=pss)
        rss, cpu = result['total']
        goal = single and not extra
        rows.append({'benchmark': f'lfp_16s STANDBY whole suite CPU, {mode}', 'value': cpu,
                     'unit': '% of a core',
                     'goal': _goal(GOAL_CPU_PCT, cpu) if goal else '',
                     'note': f'mean over {RUN_S:g} s, load average {load:.1f} at the start: '
                             f'{_detail(result)}'})
        rows.append({'benchmark': f'lfp_16s STANDBY whole suite peak RSS, {mode}', 'value': rss,
                     'unit': 'MiB', 'goal': _goal(GOAL_RSS_MIB, rss) if goal else '',
                     'note': f'sum of per-process peaks, {len(result) - 1} processes (a shared '
                             f'library counts once per process)'})
        # PSS: each shared page divided among the processes that map it, so the sum is the
        # RAM the suite takes; shown beside the RSS sum, which the goal is judged on
        rows.append({'benchmark': f'lfp_16s STANDBY whole suite peak PSS, {mode}',
                     'value': pss['total'], 'unit': 'MiB', 'goal': '',
                     'note': ', '.join(f'{name} {value:.0f}' for name, value
                                       in sorted(pss.items()) if name != 'total')})
    for profile in ('lfp_16s', 'nmc_96s'):
        path = os.path.join(config_dir(), 'profiles', f'{profile}.yaml')
        result = run_suite(path, RUN_S, request_state='drive')
        for name, (rss_mb, cpu) in sorted(result.items()):
            rows.append({'benchmark': f'{profile} DRIVE {name} peak RSS', 'value': rss_mb,
                         'unit': 'MiB', 'goal': '',
                         'note': f'mean CPU {cpu:.1f} % of a core over {RUN_S:g} s'})
    return rows


if __name__ == '__main__':
    from bench.run import format_table
    print(format_table(run()))
