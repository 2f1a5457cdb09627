"""bms-fleet on a mixed input: MCAP bags and recorded CAN logs (python-can's writers, frames from
the pack simulator's encoder), one pack's chain going from a bag to a log; bad logs skipped.
"""
import os

import can
import numpy as np
import pytest

from bms_ros.core.can_codec import PackEncoder
from bms_ros.core.profile import config_dir
from bms_ros.tools import fleet, fleet_synth
from bms_ros.tools.fleet_bags import FOLDER_CAN_PROFILE, _can_protocol, read_bag

SPEC = fleet_synth.FleetSpec(packs=2, bags=2, days_per_bag=3.0, leak_start_day=0.0)
LOG_PACK = 1                      # its second mission is given as a CAN log, not as a bag
STATE_FIELDS = ('cell_voltages_v', 'temperatures_degc', 'pack_current_a', 'pack_voltage_v',
                'link_voltage_v', 'negative_contactor_closed', 'positive_contactor_closed',
                'precharge_relay_closed', 'cell_balancing')


def bag_to_can_log(bag_path, log_path):
    """The bag's measurements as the pack's CAN frames (PackEncoder) at their stamps, written
    by python-can's writer for the suffix; the number of frames.
    """
    bag = read_bag(bag_path)
    columns = bag['columns']
    encoder = PackEncoder(_can_protocol(bag['profile_obj'])[2])
    frames = 0
    with can.Logger(str(log_path)) as logger:
        for k, now in enumerate(columns['header_stamp_s']):
            for msg in encoder.encode_all({f: columns[f][k] for f in STATE_FIELDS}):
                msg.timestamp = float(now)
                msg.channel = 'can0'
                logger.on_message_received(msg)
                frames += 1
    return frames


def folder_profile(folder, serial):
    """can_profile.yaml in ``folder``: the shipped profile with this pack's serial number."""
    shipped = os.path.join(config_dir(), 'profiles', 'lfp_16s.yaml')
    with open(shipped, encoding='utf-8') as stream:
        text = stream.read().replace('../', config_dir() + '/')
    text = text.replace('serial_number: SIM-LFP-0001', f'serial_number: {serial}', 1)
    with open(os.path.join(folder, FOLDER_CAN_PROFILE), 'w', encoding='utf-8') as stream:
        stream.write(text)


@pytest.fixture(scope='module')
def mixed_run(tmp_path_factory):
    from dask.distributed import Client, LocalCluster
    root = tmp_path_factory.mktemp('fleet_can')
    truth = fleet_synth.generate(SPEC, str(root / 'bags'), jobs=1)
    logs = root / 'logs'
    os.makedirs(logs)
    folder_profile(str(logs), SPEC.serial(LOG_PACK))
    moved = truth['packs'][LOG_PACK]['bags'][1]['path']
    frames = bag_to_can_log(moved, logs / 'mission1.log')
    os.rename(moved, str(root / 'converted'))          # the log stands in for this bag
    bad = root / 'bad_logs'                            # decoded by --can-profile (no YAML here)
    os.makedirs(bad)
    with can.Logger(str(bad / 'corrupt.blf')) as logger:
        for k in range(50):
            logger.on_message_received(can.Message(arbitration_id=0x123, data=bytes(8),
                                                   timestamp=1.0 + k, channel='can0'))
    with open(bad / 'corrupt.blf', 'r+b') as stream:   # the header stays, the rest garbage
        stream.seek(144)
        stream.write(os.urandom(2000))
        stream.truncate(600)
    (bad / 'empty.log').write_text('')
    with can.Logger(str(bad / 'foreign.asc')) as logger:   # frames of another protocol
        for k in range(200):
            logger.on_message_received(can.Message(arbitration_id=0x7A0 + k % 4,
                                                   data=bytes([k % 256] * 8),
                                                   timestamp=1_767_225_600.0 + 0.01 * k))
    out = str(root / 'out')
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=':0') as cluster, Client(cluster) as client:
        summary = fleet.analyse([str(root / 'bags'), str(logs), str(bad)], out, client=client,
                                can_profile=os.path.join(config_dir(), 'profiles',
                                                         'lfp_16s.yaml'))
    return {'summary': summary, 'truth': truth, 'frames': frames, 'log': str(logs / 'mission1.log')}


def test_log_decoded_grouped_and_chained_with_the_bags(mixed_run):
    summary, truth = mixed_run['summary'], mixed_run['truth']
    assert mixed_run['frames'] > 100_000
    assert summary['bags_analysed'] == SPEC.packs * SPEC.bags
    bags = summary['tables']['bags']
    assert sorted(bags['serial'].unique()) == [SPEC.serial(p) for p in range(SPEC.packs)]
    pack = bags[bags['serial'] == SPEC.serial(LOG_PACK)]
    assert list(pack['source']) == ['bag', 'can_log']
    assert list(pack['chained']) == [False, True]       # the log starts from the bag's state
    log_row = pack.iloc[1]
    assert log_row['path'] == mixed_run['log'] and log_row['anchored_at_end']
    true_bag = truth['packs'][LOG_PACK]['bags'][1]
    assert log_row['duration_s'] == pytest.approx(true_bag['duration_s'], abs=1.0)
    assert log_row['trips'] == 0 and log_row['estimator_rejected'] == 0


def test_capacity_from_the_log_within_3_percent_of_the_truth(mixed_run):
    bags = mixed_run['summary']['tables']['bags']
    for pack in mixed_run['truth']['packs']:
        estimated = bags[bags['serial'] == pack['serial']]['cell_capacity_median_ah'].to_numpy()
        true = np.array([np.median(b['capacity_ah_start']) for b in pack['bags']])
        assert np.max(np.abs(estimated / true - 1.0)) <= 0.03, (pack['serial'], estimated, true)
        measured = bags[bags['serial'] == pack['serial']]['capacity_measured_median_ah']
        assert np.max(np.abs(measured.to_numpy() / true - 1.0)) <= 0.03


def test_bad_logs_skipped_with_their_reason(mixed_run):
    skipped = mixed_run['summary']['tables']['skipped']
    reasons = dict(zip([os.path.basename(p) for p in skipped['path']], skipped['skipped']))
    assert reasons == {'corrupt.blf': 'empty_log', 'empty.log': 'empty_log',
                       'foreign.asc': 'undecodable'}, skipped.to_dict('records')
    detail = dict(zip([os.path.basename(p) for p in skipped['path']], skipped['detail']))
    assert 'wrong DBC' in detail['foreign.asc'] and '200 frames' in detail['foreign.asc']


def test_cli_rejects_a_missing_can_profile(tmp_path, capsys):
    assert fleet.main([str(tmp_path), '--out', str(tmp_path / 'o'), '--can-profile',
                       str(tmp_path / 'nope.yaml')]) == 2
    assert '--can-profile' in capsys.readouterr().err
