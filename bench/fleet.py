"""Fleet analysis (bms-fleet on Dask): throughput with 1 and 2 workers, memory, detection.

A synthetic fleet from bms_ros.tools.fleet_synth (BMS_BENCH_FLEET_PACKS x BMS_BENCH_FLEET_BAGS,
default 3 x 4 (the bigger one: 4 x 8 or 20 x 50), a mission every BMS_BENCH_FLEET_DAYS days
(default 3); pack 0 fades fast, pack 1 has a 10 mA leak from day BMS_BENCH_FLEET_LEAK_DAY
(default 0: four missions leave too few rests after a later start; -1: from a quarter of the
days, for the bigger fleets), pack 2 an offset drift; generated with BMS_BENCH_FLEET_JOBS
processes (default 2) once into BMS_BENCH_FLEET_CACHE, default
<tmp>/bms_ros_bench_fleet_<packs>x<bags>x<days>d_leak<day>_v2, and kept) is analysed by
bms_ros.tools.fleet.analyse on a LocalCluster of 1 and of 2 worker processes. Rows: bags/s and
hours of data per second, the
replay's speed per core (x real time, from the tasks' own wall time), memory per worker, the
leak found and its detection delay in simulated days, false alarms over the healthy cells,
capacity trend error per pack against the generator's truth, and the batched replay against
the offline replay on the shipped fixture (SoC, events).
"""
import json
import os
import shutil
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(os.path.dirname(HERE), 'test', 'fixtures', 'bags', 'lfp_thermal_event')


def _row(benchmark, value, unit, goal, note):
    return {'benchmark': benchmark, 'value': value, 'unit': unit, 'goal': goal, 'note': note}


def _memory_per_worker_mb(client):
    import psutil
    rss = client.run(lambda: psutil.Process().memory_info().rss)
    return max(rss.values()) / 2 ** 20 if rss else float('nan')


def _run(bags_dir, out, workers):
    from dask.distributed import Client, LocalCluster

    from bms_ros.tools import fleet
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        started = time.perf_counter()
        summary = fleet.analyse([bags_dir], out, client=client)
        wall = time.perf_counter() - started
        memory = _memory_per_worker_mb(client)
    return summary, wall, memory


def run():
    """The rows (module docstring); the fleet generated on the first run, then kept."""
    from bms_ros.tools import fleet_synth
    packs = int(os.environ.get('BMS_BENCH_FLEET_PACKS', '3'))
    bags = int(os.environ.get('BMS_BENCH_FLEET_BAGS', '4'))
    days = float(os.environ.get('BMS_BENCH_FLEET_DAYS', '3'))
    leak_day = float(os.environ.get('BMS_BENCH_FLEET_LEAK_DAY', '0'))
    jobs = int(os.environ.get('BMS_BENCH_FLEET_JOBS', '2'))
    spec = fleet_synth.FleetSpec(packs=packs, bags=bags, days_per_bag=days,
                                 leak_start_day=leak_day)
    rows = []
    # the fleet is generated once and kept (generation is slower than the analysis)
    bags_dir = os.environ.get('BMS_BENCH_FLEET_CACHE') or os.path.join(
        tempfile.gettempdir(), f'bms_ros_bench_fleet_{packs}x{bags}x{days:g}d_leak{leak_day:g}_v2')
    truth_path = os.path.join(bags_dir, 'fleet_truth.json')
    if os.path.isfile(truth_path):
        with open(truth_path, encoding='utf-8') as stream:
            truth = json.load(stream)
        cached = ' (kept from an earlier run)'
    else:
        shutil.rmtree(bags_dir, ignore_errors=True)
        truth = fleet_synth.generate(spec, bags_dir, jobs=jobs)
        cached = ''
    generated = truth['generated_wall_s']
    hours = sum(b['duration_s'] for p in truth['packs'] for b in p['bags']) / 3600.0
    rows.append(_row(f'fleet_synth: {packs} packs x {bags} bags (16 cells, 10 Hz)',
                     round(hours * 3600.0 / generated, 0), 'x real time', '> 1',
                     f'{hours:.1f} h of data in {generated:.1f} s with {jobs} processes'
                     f'{cached}'))
    with tempfile.TemporaryDirectory() as tmp:
        summaries = {}
        for workers in (1, 2):
            summary, wall, memory = _run(bags_dir, os.path.join(tmp, f'out{workers}'), workers)
            summaries[workers] = summary
            n = summary['bags_analysed']
            rows.append(_row(f'bms-fleet, {workers} worker(s): bags per second',
                             round(n / wall, 3), 'bags/s', '-',
                             f'{n} bags of {hours / max(n, 1):.2f} h in {wall:.1f} s '
                             '(probe + chains + tables + report)'))
            rows.append(_row(f'bms-fleet, {workers} worker(s): hours of data per second',
                             round(summary['hours'] / wall, 2), 'h/s', '-',
                             f'{summary["hours"]:.1f} h in {wall:.1f} s'))
            rows.append(_row(f'bms-fleet, {workers} worker(s): memory per worker (max RSS)',
                             round(memory, 0), 'MiB', '-', 'psutil on each worker after the run'))
        tables = summaries[1]['tables']
        task_s = float(tables['bags']['task_wall_s'].sum())
        rows.append(_row('batched replay per core (read + estimator + protection)',
                         round(summaries[1]['hours'] * 3600.0 / task_s, 0), 'x real time',
                         '>= 200', f'{task_s:.1f} s of task time for {summaries[1]["hours"]:.1f}'
                         ' h (1 worker); machine shared with other jobs'))
        rows += _detection_rows(spec, truth, tables)
    rows += _accuracy_rows()
    return rows


def _detection_rows(spec, truth, tables):
    rows = []
    cells = tables['cells']
    leak_serial = spec.serial(spec.leak_pack)
    found = cells[(cells['serial'] == leak_serial) & (cells['cell'] == spec.leak_cell)]
    alarm = bool(found['leak_alarm'].iloc[0]) if len(found) else False
    leak_start = truth['packs'][spec.leak_pack]['leak_start_day']
    delay = float(found['alarm_day'].iloc[0]) - leak_start if alarm else float('nan')
    rows.append(_row('10 mA leak found (cell 5 of the leak pack)', float(alarm), 'bool', '1',
                     f'estimated {1000 * float(found["excess_self_discharge_a"].iloc[0]):.1f} '
                     f'mA; leak from day {leak_start:g}, missions every {spec.days_per_bag:g} d'))
    rows.append(_row('leak detection delay', round(delay, 2), 'days', '-',
                     'alarm day of the CUSUM - first day of the leak'))
    healthy = cells[~((cells['serial'] == leak_serial) & (cells['cell'] == spec.leak_cell))]
    rows.append(_row('false self-discharge alarms over the healthy cells',
                     int(healthy['leak_alarm'].sum()), 'cells', '0',
                     f'of {len(healthy)} cells; largest |excess| '
                     f'{1000 * np.nanmax(np.abs(healthy["excess_self_discharge_a"])):.2f} mA'))
    bags = tables['bags']
    worst = 0.0
    for pack in truth['packs']:
        est = bags[bags['serial'] == pack['serial']]['capacity_measured_median_ah'].to_numpy()
        true = np.array([np.median(b['capacity_ah_start']) for b in pack['bags']])
        worst = max(worst, float(np.nanmax(np.abs(est / true - 1.0))))
    rows.append(_row('capacity trend error, worst bag of any pack', round(100 * worst, 2), '%',
                     '<= 3', 'per-bag capacity measurement (median cell) vs the model'))
    packs = tables['packs']
    outliers = list(packs.loc[packs['capacity_fade_outlier'], 'serial'])
    rows.append(_row('fast-fading pack flagged as the only capacity outlier',
                     float(outliers == [spec.serial(spec.fast_fade_pack)]), 'bool', '1',
                     f'outliers {outliers}'))
    drift = list(packs.loc[packs['current_offset_drift_flag'], 'serial'])
    rows.append(_row('drifting current offset flagged (and only it)',
                     float(drift == [spec.serial(spec.offset_pack)]), 'bool', '1',
                     f'flagged {drift}'))
    return rows


def _accuracy_rows():
    from bms_ros.core.fleet.replay import measurement_times, replay_columns
    from bms_ros.tools.bag.offline import replay
    from bms_ros.tools.fleet_bags import read_bag
    try:
        offline = replay(FIXTURE)
    except Exception as error:     # the fixture no longer matches the message definitions
        return [_row('batched vs offline replay, fixture', float('nan'), '-', '-',
                     f'offline replay failed: {type(error).__name__}')]
    bag = read_bag(FIXTURE)
    columns = bag['columns']
    fast = replay_columns(columns, bag['profile_obj'],
                          t_s=measurement_times(columns, bag['receive_s']))
    soc = np.interp(fast.t_s, offline.t_s, offline.pack_soc)
    same = [(e['limit_id'], e['index'], e['level'], e['active']) for e in fast.events] == \
        [(e.limit_id, e.index, e.level, e.active) for e in offline.events]
    return [_row('batched vs offline replay, fixture: max pack SoC difference',
                 round(100 * float(np.max(np.abs(np.asarray(fast.pack_soc) - soc))), 3), '%',
                 '< 0.5', f'capacity {fast.capacity_ah:.3f} vs {offline.final_capacity_ah:.3f}'
                 f' Ah; fed {fast.fed}/{fast.measurements}'),
            _row('batched vs offline replay, fixture: events identical', float(same), 'bool',
                 '1', f'{len(fast.events)} events, {len(fast.trips())} trips')]


if __name__ == '__main__':
    for row in run():
        print(row)
