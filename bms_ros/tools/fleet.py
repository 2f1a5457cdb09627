"""bms-fleet: analyse many recorded bags on Dask, per pack in time order, into trends and a report.

    python -m bms_ros.tools.fleet BAGS... --out DIR [--workers N | --scheduler ADDRESS]
                                  [--threads] [--profile P] [--can-profile P]

BAGS: bag folders, .mcap files, recorded CAN logs (candump .log, .asc, .blf, .trc, .csv, also
gzipped), folders holding them (searched recursively) or glob patterns. A CAN log is decoded
inside its task by the driver's codec (bms_ros.core.can_log) with the profile in
``can_profile.yaml`` next to it, else ``--can-profile``, else the default profile; its pack is
that profile's serial number, else the log's name up to the first '_' (docs/fleet.md).
Each bag is one Dask task: its measurements go through the estimation and protection cores
(bms_ros.core.fleet.replay, the batched replay); the tasks of one pack (serial number from the
bag) form a chain in time order, each starting from the state the previous bag left (cell SoC,
capacity, R0, current offset: what the node persists). By default an embedded LocalCluster of
``--workers`` processes runs them; ``--scheduler tcp://host:8786`` uses an existing cluster
(the workers must have bms_ros installed). Bags that cannot be used are skipped with the
reason and counted. Writes to DIR: bags.parquet, packs.parquet, cells.parquet, events.parquet,
skipped.parquet, report.html with PNGs. Exit codes: 0 done, 1 no bag analysed, 2 bad arguments.
"""
import argparse
import glob
import logging
import math
import os
import sys
import time
from dataclasses import asdict

import numpy as np

from bms_ros.core.errors import BmsError

DAY_S = 86400.0
TABLES = ('bags', 'packs', 'cells', 'events', 'skipped')


# ------------------------------------------------------------------------------ inputs

def find_bags(inputs):
    """Bag paths (folders with metadata.yaml, or .mcap files outside one) and CAN logs from
    paths/globs.
    """
    from bms_ros.tools.bag.bagio import is_bag
    from bms_ros.tools.fleet_bags import is_can_log
    found, missing = [], []
    for item in inputs:
        matches = sorted(glob.glob(item)) if glob.has_magic(item) else [item]
        if not matches or not all(os.path.exists(m) for m in matches):
            missing.append(item)
            continue
        for path in matches:
            if os.path.isdir(path) and not is_bag(path):
                for root, dirs, files in os.walk(path):
                    dirs.sort()
                    if 'metadata.yaml' in files:
                        found.append(root)
                        dirs[:] = []
                        continue
                    found += [os.path.join(root, f) for f in sorted(files)
                              if f.endswith('.mcap') or is_can_log(os.path.join(root, f))]
            else:
                found.append(path)
    seen = set()
    unique = [p for p in (os.path.abspath(p) for p in found) if not (p in seen or seen.add(p))]
    return unique, missing


def probe_bag(path, profile=None, can_profile=None):
    """{'path', 'serial', 'start_unix_s'} of a bag or CAN log, or {'path', 'skipped',
    'detail'}.
    """
    from bms_ros.core.bag_schema import BagError
    from bms_ros.tools.bag.bagio import Bag
    from bms_ros.tools.bag.offline import resolve_profile
    from bms_ros.tools.fleet_bags import (
        BagSkipped,
        bag_identity,
        is_can_log,
        probe_can_log,
    )
    if is_can_log(path):
        try:
            return probe_can_log(path, can_profile)
        except BagSkipped as skipped:
            return {'path': skipped.path, 'skipped': skipped.reason, 'detail': skipped.detail}
    try:
        try:
            with Bag(path) as bag:
                serials, namespaces = bag_identity(bag)
                start = bag.start_ns * 1e-9
                if not namespaces:
                    raise BagSkipped(path, 'no_measurement', 'no measurement topic (topics: '
                                     + (', '.join(sorted(bag.topics)) or 'none') + ')')
                if len(namespaces) > 1 or len(serials) > 1:
                    raise BagSkipped(path, 'several_packs', 'holds several packs (' + ', '.join(
                        serials or [n or '/' for n in namespaces]) + '): one pack per bag')
                if not serials:
                    from bms_ros.core.profile import Profile
                    serials = [Profile(resolve_profile(bag, profile)).pack.serial_number]
        except BagSkipped:
            raise
        except (BagError, BmsError, OSError, ValueError, KeyError) as error:
            raise BagSkipped(path, 'unreadable', f'cannot be read: {error}') from None
        except Exception as error:      # rosbags' own errors on a corrupt file
            raise BagSkipped(path, 'unreadable',
                             f'cannot be read: {type(error).__name__}: {error}') from None
    except BagSkipped as skipped:
        return {'path': skipped.path, 'skipped': skipped.reason, 'detail': skipped.detail}
    return {'path': os.fspath(path), 'serial': serials[0], 'start_unix_s': float(start)}


# ------------------------------------------------------------------------------ one task

def analyse_bag(path, previous=None, profile=None, options=None, can_profile=None):
    """One Dask task: replay one bag (or decode and replay one CAN log) from the previous
    bag's result (its carried state).

    Returns a dict: 'row' (the bag's trend values) and 'carried', or 'skipped' with the reason;
    a skipped bag hands the previous state on, so the chain goes on.
    """
    from bms_ros.core.fleet.replay import (
        CarriedState,
        ReplayOptions,
        measurement_times,
        replay_columns,
    )
    from bms_ros.tools.fleet_bags import BagSkipped, is_can_log, read_bag, read_can_log
    carried = previous.get('carried') if previous else None
    started = time.perf_counter()
    try:
        bag = read_can_log(path, can_profile) if is_can_log(path) else read_bag(path, profile)
        columns = bag['columns']
        t_s = measurement_times(columns, bag['receive_s'])
        if not np.all(np.isfinite(t_s)):
            raise BagSkipped(path, 'bad_times', 'measurement times are not numbers')
        state = CarriedState(**carried) if carried else None
        result = replay_columns(columns, bag['profile_obj'], state,
                                ReplayOptions(**(options or {})), t_s=t_s)
    except BagSkipped as skipped:
        return {'path': os.fspath(path), 'skipped': skipped.reason, 'detail': skipped.detail,
                'carried': carried}
    except Exception as error:            # the rest of the fleet goes on; the reason is kept
        return {'path': os.fspath(path), 'skipped': 'replay_failed',
                'detail': f'{type(error).__name__}: {error}', 'carried': carried}
    gap_s = result.start_unix_s - carried['end_unix_s'] if carried else math.nan
    row = {
        'path': os.fspath(path), 'serial': bag['serial'], 'profile': bag['profile'],
        'source': 'can_log' if bag.get('serial_source') == 'can_log' else 'bag',
        'start_unix_s': result.start_unix_s, 'end_unix_s': result.end_unix_s,
        'duration_s': result.duration_s, 'gap_s': gap_s, 'messages': bag['messages'],
        'measurements': result.measurements, 'rejected_messages': bag['rejected'],
        'estimator_rejected': result.estimator_rejected,
        'protection_rejected': result.protection_rejected, 'fed': result.fed,
        'evaluated': result.evaluated, 'chained': carried is not None,
        'capacity_ah': result.capacity_ah,
        'cell_capacity_median_ah': float(np.median(result.cell_capacity_ah)),
        'cell_capacity_min_ah': float(np.min(result.cell_capacity_ah)),
        'capacity_measured_median_ah': float(np.nanmedian(result.cell_capacity_measured_ah))
        if np.isfinite(result.cell_capacity_measured_ah).any() else math.nan,
        'cell_r0_mean_ohm': float(np.mean(result.cell_r0_ohm)),
        'current_offset_a': result.current_offset_a,
        'soc_start': result.pack_soc[0] if result.pack_soc else math.nan,
        'soc_end': result.pack_soc[-1] if result.pack_soc else math.nan,
        'cell_soc_spread': float(np.nanmax(result.cell_soc) - np.nanmin(result.cell_soc)),
        'cell_voltage_spread_v': result.cell_voltage_spread_v,
        'anchored_at_end': result.anchored_at_end,
        'capacity_updates': int(max(result.capacity_updates or [0])),
        'charge_ah': result.charge_ah, 'throughput_ah': result.throughput_ah,
        'trips': len(result.trips()), 'events': len(result.events),
        'final_trip_latched': result.final_trip_latched,
        'cell_soc': result.cell_soc, 'cell_capacity_ah': result.cell_capacity_ah,
        'cell_r0_ohm': result.cell_r0_ohm, 'bleed_ah': result.bleed_ah,
        'replay_wall_s': result.wall_s, 'task_wall_s': time.perf_counter() - started,
    }
    events = [dict(e, path=os.fspath(path), serial=bag['serial'],
                   unix_s=result.start_unix_s + e['t_s']) for e in result.events]
    return {'path': os.fspath(path), 'row': row, 'events': events,
            'carried': asdict(result.carried())}


# ------------------------------------------------------------------------------ the engine

def make_client(workers=2, scheduler=None, threads=False):
    """A dask.distributed Client: to ``scheduler`` if given, else an embedded LocalCluster of
    ``workers`` single-threaded worker processes (threads: in this process).
    """
    from dask.distributed import Client, LocalCluster
    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1,
                           processes=not threads, dashboard_address=None,
                           silence_logs=logging.ERROR)
    return Client(cluster), cluster


def run_fleet(paths, client, profile=None, options=None, can_profile=None):
    """Probe every bag, chain each pack's bags in time order, run them; (results, skipped)."""
    probes = client.gather(client.map(probe_bag, paths, profile=profile,
                                      can_profile=can_profile, pure=False))
    skipped = [p for p in probes if 'skipped' in p]
    packs = {}
    for p in probes:
        if 'skipped' not in p:
            packs.setdefault(p['serial'], []).append(p)
    futures = []
    for _serial, bags in sorted(packs.items()):
        previous = None
        for bag in sorted(bags, key=lambda b: (b['start_unix_s'], b['path'])):
            # the previous bag's future is an argument: Dask runs this one after it
            previous = client.submit(analyse_bag, bag['path'], previous, profile, options,
                                     can_profile, pure=False)
            futures.append(previous)
    results = client.gather(futures)
    skipped += [r for r in results if 'skipped' in r]
    return [r for r in results if 'row' in r], skipped


# ------------------------------------------------------------------------------ tables

def build_tables(results, skipped, leak_reference_a=0.004, leak_threshold_a=0.012):
    """pandas DataFrames: bags, packs (trends and flags), cells (self-discharge), events,
    skipped.
    """
    import pandas as pd

    from bms_ros.core.fleet import detect
    rows = [r['row'] for r in results]
    bags = pd.DataFrame(rows)
    events = pd.DataFrame([e for r in results for e in r['events']])
    skipped_df = pd.DataFrame([{k: s.get(k) for k in ('path', 'skipped', 'detail')}
                               for s in skipped], columns=['path', 'skipped', 'detail'])
    packs, cells = [], []
    if not bags.empty:
        bags = bags.sort_values(['serial', 'start_unix_s']).reset_index(drop=True)
        t_first = float(bags['start_unix_s'].min())
        bags['day'] = (bags['start_unix_s'] - t_first) / DAY_S
        for serial, group in bags.groupby('serial', sort=True):
            days = group['day'].to_numpy()
            # the fade trend from each bag's own capacity measurement (the estimator's
            # carried capacity is a slow filter of them and lags a fast fade)
            cap = group['capacity_measured_median_ah'].to_numpy()
            valid = group['anchored_at_end'].to_numpy(bool)
            soc = np.array(group['cell_soc'].tolist(), dtype=float)
            qcell = np.array(group['cell_capacity_ah'].tolist(), dtype=float)
            bled = np.cumsum(np.array(group['bleed_ah'].tolist(), dtype=float), axis=0)
            t_end = group['end_unix_s'].to_numpy()
            _, excess = detect.excess_self_discharge(t_end, soc, qcell, bled, valid)
            alarms = detect.leak_alarms(t_end, excess, leak_reference_a, leak_threshold_a)
            hours = float(group['duration_s'].sum()) / 3600.0
            learnt = np.isfinite(cap)
            first_cap = cap[learnt][0] if learnt.any() else math.nan
            packs.append({
                'serial': serial, 'bags': len(group), 'hours': hours,
                'first_day': float(days.min()), 'last_day': float(days.max()),
                'capacity_first_ah': first_cap,
                'capacity_last_ah': float(cap[learnt][-1]) if learnt.any() else math.nan,
                'capacity_estimator_last_ah': float(group['cell_capacity_median_ah'].iloc[-1]),
                'capacity_fade_pct_per_100d': -100.0 * 100.0 * detect.slope(
                    days[learnt], cap[learnt]) / first_cap if learnt.sum() >= 2 else math.nan,
                'r0_growth_pct_per_100d': 100.0 * 100.0 * detect.slope(
                    days, group['cell_r0_mean_ohm'].to_numpy())
                / float(group['cell_r0_mean_ohm'].iloc[0]),
                'soc_spread_drift_pct_per_day': 100.0 * detect.slope(
                    days[valid], group['cell_soc_spread'].to_numpy()[valid]),
                'current_offset_last_a': float(group['current_offset_a'].iloc[-1]),
                'current_offset_drift_a_per_day': detect.slope(
                    days, group['current_offset_a'].to_numpy()),
                'trips': int(group['trips'].sum()),
                'trips_per_100h': (100.0 * float(group['trips'].sum()) / hours if hours
                                   else math.nan),
                'leak_cells': [int(i) for i in np.flatnonzero(alarms['alarm'])],
            })
            for i in range(soc.shape[1]):
                alarm_t = alarms['alarm_t_s'][i]
                cells.append({
                    'serial': serial, 'cell': i,
                    'excess_self_discharge_a': alarms['leak_a'][i],
                    'cusum_max_a': float(np.max(alarms['statistic'][:, i])),
                    'leak_alarm': bool(alarms['alarm'][i]),
                    'alarm_day': (alarm_t - t_first) / DAY_S if math.isfinite(alarm_t)
                    else math.nan,
                    'capacity_last_ah': float(qcell[-1, i]),
                    'r0_last_ohm': float(group['cell_r0_ohm'].iloc[-1][i]),
                    'excess_series_a': [float(v) for v in excess[:, i]],
                })
    packs_df = pd.DataFrame(packs)
    if not packs_df.empty:
        # the scale at least 1 %/100 d: a fade rate from a few bags is that uncertain
        packs_df['capacity_fade_z'] = detect.robust_z(packs_df['capacity_fade_pct_per_100d'],
                                                      floor=1.0)
        packs_df['capacity_fade_outlier'] = detect.outliers(
            packs_df['capacity_fade_pct_per_100d'], floor=1.0)
        packs_df['current_offset_drift_flag'] = detect.drift_flags(
            packs_df['current_offset_drift_a_per_day'], limit=0.005, floor=0.002)
        packs_df['r0_growth_outlier'] = detect.outliers(packs_df['r0_growth_pct_per_100d'],
                                                        floor=2.0)
    return {'bags': bags, 'packs': packs_df, 'cells': pd.DataFrame(cells), 'events': events,
            'skipped': skipped_df}


def write_tables(tables, out_dir):
    """Each table as <name>.parquet (pyarrow); returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for name, frame in tables.items():
        path = os.path.join(out_dir, f'{name}.parquet')
        frame.to_parquet(path, engine='pyarrow', index=False)
        paths[name] = path
    return paths


# ------------------------------------------------------------------------------ report

def write_report(tables, out_dir, summary):
    """report.html and its PNGs (matplotlib Agg); outliers and alarms in red."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    bags, packs, cells = tables['bags'], tables['packs'], tables['cells']
    pngs = []

    def save(fig, name):
        path = os.path.join(out_dir, name)
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
        pngs.append(name)

    flagged = set()
    if not packs.empty:
        flagged = set(packs.loc[packs['capacity_fade_outlier'], 'serial'])
    for column, title, name, scale in (
            ('capacity_measured_median_ah', 'capacity measured per bag (median cell, Ah)',
             'capacity.png', 1.0),
            ('cell_capacity_median_ah', 'capacity of the estimator (median cell, Ah)',
             'capacity_estimator.png', 1.0),
            ('cell_r0_mean_ohm', 'R0 (mean cell, mOhm)', 'r0.png', 1000.0),
            ('cell_soc_spread', 'cell SoC spread at the end anchor (%)', 'imbalance.png', 100.0),
            ('current_offset_a', 'current offset learnt (A)', 'current_offset.png', 1.0)):
        if bags.empty:
            break
        fig, ax = plt.subplots(figsize=(8, 4))
        for serial, group in bags.groupby('serial'):
            red = serial in flagged and name == 'capacity.png'
            ax.plot(group['day'], group[column] * scale, '-o', ms=3,
                    color='red' if red else None, lw=2.5 if red else 1.0,
                    label=serial + (' (outlier)' if red else ''))
        ax.set_xlabel('day')
        ax.set_title(title)
        if bags['serial'].nunique() <= 12:
            ax.legend(fontsize=7)
        save(fig, name)
    if not cells.empty:
        fig, ax = plt.subplots(figsize=(8, 4))
        serials = sorted(cells['serial'].unique())
        grid = np.array([cells[cells['serial'] == s].sort_values('cell')[
            'excess_self_discharge_a'].to_numpy() * 1000.0 for s in serials])
        image = ax.imshow(grid, aspect='auto', cmap='viridis')
        fig.colorbar(image, ax=ax, label='excess self-discharge (mA)')
        for _, c in cells[cells['leak_alarm']].iterrows():
            ax.plot(c['cell'], serials.index(c['serial']), 'rx', ms=12, mew=3)
        ax.set_yticks(range(len(serials)), serials, fontsize=6)
        ax.set_xlabel('cell')
        ax.set_title('per-cell self-discharge (x: CUSUM alarm)')
        save(fig, 'self_discharge.png')
    if not packs.empty:
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.bar(packs['serial'], packs['trips_per_100h'])
        ax.set_ylabel('trips per 100 h')
        ax.tick_params(axis='x', rotation=90, labelsize=6)
        save(fig, 'trips.png')

    def table_html(frame, columns):
        if frame.empty:
            return '<p>none</p>'
        return frame[[c for c in columns if c in frame]].to_html(index=False, float_format=(
            lambda v: f'{v:.4g}'))
    html = ['<html><head><meta charset="utf-8"><title>bms-fleet report</title></head><body>',
            '<h1>bms-fleet report</h1>',
            f'<p>{summary["bags_found"]} bags found, {summary["bags_analysed"]} analysed, '
            f'{summary["bags_skipped"]} skipped; {summary["packs"]} packs, '
            f'{summary["hours"]:.1f} h of data in {summary["wall_s"]:.1f} s '
            f'({summary["workers"]} workers).</p>',
            '<h2>Packs</h2>', table_html(packs, [
                'serial', 'bags', 'hours', 'capacity_last_ah', 'capacity_fade_pct_per_100d',
                'capacity_fade_z', 'capacity_fade_outlier', 'r0_growth_pct_per_100d',
                'soc_spread_drift_pct_per_day', 'current_offset_drift_a_per_day',
                'current_offset_drift_flag', 'trips_per_100h', 'leak_cells']),
            '<h2>Cells with a self-discharge alarm</h2>',
            table_html(cells[cells['leak_alarm']] if not cells.empty else cells,
                       ['serial', 'cell', 'excess_self_discharge_a', 'alarm_day']),
            '<h2>Skipped bags</h2>', table_html(tables['skipped'], ['path', 'skipped', 'detail'])]
    html += [f'<h2>{p[:-4]}</h2><img src="{p}">' for p in pngs]
    html.append('</body></html>')
    path = os.path.join(out_dir, 'report.html')
    with open(path, 'w', encoding='utf-8') as stream:
        stream.write('\n'.join(html))
    return path, pngs


# ------------------------------------------------------------------------------ CLI

def analyse(inputs, out_dir, workers=2, scheduler=None, threads=False, profile=None,
            options=None, client=None, can_profile=None):
    """The whole run; returns the summary dict (tables and report written to ``out_dir``)."""
    started = time.perf_counter()
    paths, missing = find_bags(inputs)
    own = client is None
    cluster = None
    if own:
        client, cluster = make_client(workers, scheduler, threads)
    try:
        n_workers = len(client.scheduler_info().get('workers', {}))
        results, skipped = run_fleet(paths, client, profile, options, can_profile) \
            if paths else ([], [])
    finally:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
    skipped += [{'path': m, 'skipped': 'not_found', 'detail': f'{m}: no such file or pattern'}
                for m in missing]
    tables = build_tables(results, skipped)
    wall = time.perf_counter() - started
    hours = float(tables['bags']['duration_s'].sum()) / 3600.0 if results else 0.0
    summary = {'bags_found': len(paths), 'bags_analysed': len(results),
               'bags_skipped': len(skipped), 'packs': int(len(tables['packs'])),
               'hours': hours, 'wall_s': wall, 'workers': n_workers,
               'skipped_by_reason': tables['skipped']['skipped'].value_counts().to_dict()}
    write_tables(tables, out_dir)
    summary['report'], _ = write_report(tables, out_dir, summary)
    summary['tables'] = tables
    return summary


def build_parser():
    """The bms-fleet argument parser."""
    parser = argparse.ArgumentParser(prog='bms-fleet', description=__doc__.split('\n')[0])
    parser.add_argument('bags', nargs='+', help='bag folders, .mcap files, CAN logs (.log '
                        '.asc .blf .trc .csv), folders or globs')
    parser.add_argument('--out', required=True, help='output folder (tables and report)')
    parser.add_argument('--workers', type=int, default=2,
                        help='LocalCluster worker processes (default 2)')
    parser.add_argument('--scheduler', default=None,
                        help='address of an existing Dask scheduler (tcp://host:8786)')
    parser.add_argument('--threads', action='store_true',
                        help='LocalCluster workers as threads of this process')
    parser.add_argument('--profile', default=None,
                        help='profile YAML for every bag (default: the one each bag notes)')
    parser.add_argument('--can-profile', default=None,
                        help='profile YAML decoding the CAN logs (its can: DBC and mapping) '
                        'where no can_profile.yaml lies next to them (default: the default '
                        'profile)')
    return parser


def main(argv=None):
    """The bms-fleet command line: analyse the bags and logs, write the report; exit code."""
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        print('bms-fleet: --workers must be >= 1', file=sys.stderr)
        return 2
    if args.profile and not os.path.isfile(args.profile):
        print(f'bms-fleet: --profile {args.profile}: no such file', file=sys.stderr)
        return 2
    if args.can_profile and not os.path.isfile(args.can_profile):
        print(f'bms-fleet: --can-profile {args.can_profile}: no such file', file=sys.stderr)
        return 2
    try:
        summary = analyse(args.bags, args.out, args.workers, args.scheduler, args.threads,
                          args.profile, can_profile=args.can_profile)
    except (BmsError, OSError) as error:
        print(f'bms-fleet: {error}', file=sys.stderr)
        return 2
    print(f'{summary["bags_analysed"]} of {summary["bags_found"]} bags analysed '
          f'({summary["hours"]:.1f} h of data, {summary["packs"]} packs) in '
          f'{summary["wall_s"]:.1f} s on {summary["workers"]} workers; '
          f'{summary["bags_skipped"]} skipped')
    for _, s in summary['tables']['skipped'].iterrows():
        print(f'  skipped ({s["skipped"]}): {s["detail"] or s["path"]}')
    packs = summary['tables']['packs']
    if not packs.empty:
        for _, p in packs.iterrows():
            flags = [name for name, on in (
                ('capacity fade outlier', p['capacity_fade_outlier']),
                ('current offset drift', p['current_offset_drift_flag'])) if on]
            if p['leak_cells']:
                flags.append(f'self-discharge alarm in cell(s) {list(p["leak_cells"])}')
            if flags:
                print(f'  {p["serial"]}: ' + '; '.join(flags))
    print(f'report: {summary["report"]}')
    return 0 if summary['bags_analysed'] else 1


if __name__ == '__main__':
    sys.exit(main())
