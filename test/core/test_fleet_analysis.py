"""bms-fleet on a tiny synthetic fleet (3 packs x 4 bags) plus bad bags, on a 1-worker
LocalCluster in this process: leak found, fast fader an outlier, capacity trend, bad input.
"""
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from bms_ros.core import bag_schema
from bms_ros.core.fleet.cdr import MeasurementLayout
from bms_ros.tools import fleet, fleet_synth
from bms_ros.tools.bag.bagio import BagWriter, new_message

# missions every 3 days: the leaking cell stays within the spread warning (a bag in warning
# replays at the offline speed), the fast fader still fades ~1 % over the 4 bags
SPEC = fleet_synth.FleetSpec(packs=3, bags=4, days_per_bag=3.0, leak_start_day=0.0)
STREAM = [bag_schema.qos_fields(bag_schema.STREAM, 10)]


def _bad_bags(folder, good_bag):
    """A truncated bag, a corrupt one, one without our topics, one with two packs."""
    os.makedirs(folder)
    truncated = os.path.join(folder, 'truncated')
    shutil.copytree(good_bag, truncated)
    mcap = [f for f in os.listdir(truncated) if f.endswith('.mcap')][0]
    path = os.path.join(truncated, mcap)
    with open(path, 'r+b') as stream:
        stream.truncate(os.path.getsize(path) // 2)
    corrupt = os.path.join(folder, 'corrupt')
    shutil.copytree(good_bag, corrupt)
    with open(os.path.join(corrupt, mcap), 'wb') as stream:
        stream.write(b'\x89MCAP0\r\n' + os.urandom(4000))
    with BagWriter(os.path.join(folder, 'foreign')) as writer:
        writer.add_topic('/chatter', 'std_msgs/msg/String', STREAM)
        for k in range(5):
            writer.write_message('/chatter', 10 ** 18 + k * 10 ** 8,
                                 new_message('std_msgs/msg/String', data=f'hello {k}'),
                                 'std_msgs/msg/String')
    layout = MeasurementLayout(16, 8, 'pack')
    with BagWriter(os.path.join(folder, 'two_packs')) as writer:
        for ns in ('pack_a', 'pack_b'):
            topic = bag_schema.resolve(ns, 'measurement')
            writer.add_topic(topic, 'bms_interfaces/msg/PackMeasurement', STREAM)
            for k in range(20):
                t_ns = 10 ** 18 + k * 10 ** 8
                writer.write(topic, t_ns, layout.encode(
                    t_ns, np.full(16, 3.3), np.full(8, 25.0), 0.0, 52.8, 0.0,
                    (False, False, False), np.zeros(16, bool)))
    return 4


@pytest.fixture(scope='module')
def fleet_run(tmp_path_factory):
    from dask.distributed import Client, LocalCluster
    root = tmp_path_factory.mktemp('fleet')
    bags_dir = str(root / 'bags')
    truth = fleet_synth.generate(SPEC, bags_dir, jobs=1)
    bad = _bad_bags(str(root / 'bad'), truth['packs'][0]['bags'][0]['path'])
    out = str(root / 'out')
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        summary = fleet.analyse([bags_dir, str(root / 'bad' / '*'), str(root / 'missing')],
                                out, client=client)
    return {'summary': summary, 'truth': truth, 'out': out, 'bad': bad}


def test_every_good_bag_analysed_and_bad_ones_skipped_with_reasons(fleet_run):
    summary = fleet_run['summary']
    assert summary['bags_analysed'] == SPEC.packs * SPEC.bags
    skipped = summary['tables']['skipped']
    reasons = dict(zip([os.path.basename(p) for p in skipped['path']], skipped['skipped']))
    assert reasons == {'truncated': 'unreadable', 'corrupt': 'unreadable',
                       'foreign': 'no_measurement', 'two_packs': 'several_packs',
                       'missing': 'not_found'}
    assert all(skipped['detail'].str.len() > 10)
    assert summary['bags_skipped'] == fleet_run['bad'] + 1
    html = open(summary['report'], encoding='utf-8').read()
    assert f'{summary["bags_skipped"]} skipped' in html and 'two_packs' in html


def test_chains_carry_the_state_in_time_order(fleet_run):
    bags = fleet_run['summary']['tables']['bags']
    assert sorted(bags['serial'].unique()) == [SPEC.serial(p) for p in range(SPEC.packs)]
    for _, group in bags.groupby('serial'):
        assert list(group['chained']) == [False] + [True] * (SPEC.bags - 1)
        assert np.all(np.diff(group['start_unix_s']) > 0)
        assert np.all(group["gap_s"].iloc[1:] > 1.5 * 86400.0)
    assert (bags['trips'] == 0).all()
    assert bags['anchored_at_end'].all()


def test_leaking_cell_found_and_no_healthy_cell_flagged(fleet_run):
    cells = fleet_run['summary']['tables']['cells']
    flagged = cells[cells['leak_alarm']]
    assert list(zip(flagged['serial'], flagged['cell'])) == [(SPEC.serial(SPEC.leak_pack),
                                                              SPEC.leak_cell)]
    leak = flagged['excess_self_discharge_a'].iloc[0]
    assert leak == pytest.approx(SPEC.leak_a, abs=0.003)
    healthy = cells[~cells['leak_alarm']]['excess_self_discharge_a']
    assert np.nanmax(np.abs(healthy)) < 0.004


def test_fast_fading_pack_is_the_capacity_outlier(fleet_run):
    packs = fleet_run['summary']['tables']['packs'].set_index('serial')
    assert list(packs.index[packs['capacity_fade_outlier']]) == [SPEC.serial(SPEC.fast_fade_pack)]
    assert list(packs.index[packs['current_offset_drift_flag']]) == [
        SPEC.serial(SPEC.offset_pack)]
    drift = packs.loc[SPEC.serial(SPEC.offset_pack), 'current_offset_drift_a_per_day']
    assert drift == pytest.approx(SPEC.offset_drift_a_per_day, rel=0.3)


def test_capacity_trend_within_3_percent_of_the_truth(fleet_run):
    bags = fleet_run['summary']['tables']['bags']
    for pack in fleet_run['truth']['packs']:
        estimated = bags[bags['serial'] == pack['serial']]['cell_capacity_median_ah'].to_numpy()
        true = np.array([np.median(b['capacity_ah_start']) for b in pack['bags']])
        error = estimated / true - 1.0
        assert np.max(np.abs(error)) <= 0.03, (pack['serial'], error)


def test_tables_are_parquet_and_the_report_has_its_figures(fleet_run):
    out = fleet_run['out']
    for name in fleet.TABLES:
        frame = pd.read_parquet(os.path.join(out, f'{name}.parquet'))
        assert len(frame) == len(fleet_run['summary']['tables'][name])
    html = open(os.path.join(out, 'report.html'), encoding='utf-8').read()
    for png in ('capacity.png', 'r0.png', 'imbalance.png', 'self_discharge.png', 'trips.png'):
        assert f'src="{png}"' in html and os.path.getsize(os.path.join(out, png)) > 1000
    json.dumps(fleet_run['summary']['skipped_by_reason'])


def test_cli_rejects_bad_arguments_before_starting_a_cluster(tmp_path, capsys):
    assert fleet.main([str(tmp_path), '--out', str(tmp_path / 'o'), '--workers', '0']) == 2
    assert fleet.main([str(tmp_path), '--out', str(tmp_path / 'o'), '--profile',
                       str(tmp_path / 'nope.yaml')]) == 2
    assert 'no such file' in capsys.readouterr().err
    assert fleet_synth.main(['--out', str(tmp_path), '--packs', '0']) == 2


def test_find_bags_walks_folders_and_globs(tmp_path):
    for name in ('a/bag1', 'a/b/bag2'):
        os.makedirs(tmp_path / name)
        (tmp_path / name / 'metadata.yaml').write_text('x')
        (tmp_path / name / 'x.mcap').write_text('x')
    (tmp_path / 'loose.mcap').write_text('x')
    found, missing = fleet.find_bags([str(tmp_path / 'a'), str(tmp_path / '*.mcap'),
                                      str(tmp_path / 'none*'), str(tmp_path / 'a' / 'bag1')])
    assert [os.path.relpath(p, tmp_path) for p in found] == ['a/b/bag2', 'a/bag1', 'loose.mcap']
    assert missing == [str(tmp_path / 'none*')]
