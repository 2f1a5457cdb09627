"""Soak: the whole graph on the 96-cell pack (config/profiles/nmc_96s.yaml) at full CAN rate for
10 minutes of simulated time (60 wall seconds at time scale 10; the CAN frames keep their real
rates, ~500 frames/s), in DRIVE on the ECE-15 cycle, with a cell over-voltage warning raised
and cleared every 5 s. Reports lost messages, memory growth and latency drift.

    .venv/bin/python -m bench.run soak            # BMS_BENCH_SOAK_S=60, BMS_BENCH_SOAK_SCALE=10

Method (test/ros/suite.py run_soak; test/ros/test_soak.py asserts a 30 s version): every node
in its own process as bringup starts them; a probe node in this process subscribes the reliable
topics with DDS's message-lost event, counts events against protection's own log, measures the
age of each measurement on arrival, and samples each process's RSS every second.
"""
import os
import shutil
import tempfile

import test.conftest  # noqa: F401  (reserves a private block of ROS domain ids)
from test.ros.harness import RosTestEnv
from test.ros.suite import run_soak

WALL_S = float(os.environ.get('BMS_BENCH_SOAK_S', '60'))
TIME_SCALE = float(os.environ.get('BMS_BENCH_SOAK_SCALE', '10'))


def soak(wall_s=WALL_S, time_scale=TIME_SCALE):
    """The figures of one soak run (dict, see run_soak)."""
    folder = tempfile.mkdtemp(prefix='bms_bench_soak_')
    env = RosTestEnv(folder)
    try:
        return run_soak(env, folder, wall_s=wall_s, time_scale=time_scale)
    finally:
        env.close()
        shutil.rmtree(folder, ignore_errors=True)


def rows_of(r):
    """Table rows of a soak result."""
    run = (f'{r["cells"]} cells, {r["sim_s"]:.0f} s simulated in {r["wall_s"]:.0f} s '
           f'(x{r["time_scale"]:g})')
    lost = r['lost']
    frames = r['can_rx_frames'] or {'published': float('nan'), 'received': float('nan')}
    rows = [
        {'benchmark': 'soak trip_event events received / published', 'unit': 'events',
         'value': float(r['events_received']), 'goal': f'= {r["events_published"]}',
         'note': f'{r["cycles"]} warning cycles, expected {r["events_expected"]}; {run}'},
        {'benchmark': 'soak samples lost (DDS message_lost)', 'unit': 'samples',
         'value': float(sum(lost.values())), 'goal': '0',
         'note': ', '.join(f'{k} {v}' for k, v in lost.items())},
        {'benchmark': 'soak can_rx frames received / published', 'unit': 'frames',
         'value': float(frames['received']), 'goal': f'= {frames["published"]}',
         'note': f'{frames["published"] / r["wall_s"]:.0f} frames/s on the bus topic'},
        {'benchmark': 'soak measurements received', 'unit': '1/s',
         'value': r['measurements_received'] / r['wall_s'], 'goal': '>= 10',
         'note': f'{r["measurements_received"]} of at least '
                 f'{r["measurements_min_expected"]:.0f} expected; timer 10 Hz + prompt '
                 'publishes'},
        {'benchmark': 'soak measurement max stamp gap', 'unit': 'ms',
         'value': 1000 * r['measurement_max_gap_s'], 'goal': '< 500',
         'note': "below the supervisor's 0.5 s measurement timeout"},
        {'benchmark': 'soak measurement age p50 first third', 'unit': 'ms',
         'value': 1000 * r['age_early_p50_s'], 'goal': '', 'note': 'receive - header stamp'},
        {'benchmark': 'soak measurement age p50 last third', 'unit': 'ms',
         'value': 1000 * r['age_late_p50_s'],
         'goal': f'< {1000 * r["age_early_p50_s"] + 50:.1f} (first third + 50 ms)',
         'note': f'no drift; p99 over the run {1000 * r["age_p99_s"]:.1f} ms'},
    ]
    for name in sorted(r['rss_slope_kib_per_min']):
        rows.append({'benchmark': f'soak RSS slope {name}', 'unit': 'KiB/min',
                     'value': r['rss_slope_kib_per_min'][name], 'goal': '~0',
                     'note': f'RSS {r["rss_mib"][name]:.1f} MiB, +{r["rss_growth_kib"][name]:.0f}'
                             f' KiB over the 2nd half, CPU {r["cpu_pct"][name]:.1f} %'})
    rows.append({'benchmark': 'soak end state', 'unit': '', 'value': r['final_state'],
                 'goal': 'DRIVE', 'note': f'dead processes: {r["dead"] or "none"}; other '
                                          f'events: {r["other_events"] or "none"}'})
    return rows


def run():
    return rows_of(soak())


if __name__ == '__main__':
    import sys

    from bench.run import format_table
    print(format_table(run()))
    sys.exit(0)
