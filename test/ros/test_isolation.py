"""Two packs on one machine keep their persisted state apart: two protection nodes (namespaces
pack_a and pack_b, serial numbers SN-A and SN-B) share one state base and are fed by the probe;
pack_a's latched trip never reaches pack_b, resetting pack_b leaves pack_a's file alone, the
estimator's SoC lands in pack_a's folder too, and a node that fails to start writes nothing.
"""
import os
import time

import pytest
import yaml

from bms_interfaces.msg import BatteryEstimate, ProtectionEvent, ProtectionStatus
from bms_interfaces.srv import ResetTrips
from bms_ros.core.estimation.stored_state import FILE_NAME as ESTIMATOR_FILE
from bms_ros.core.persistence import read_json
from bms_ros.core.protection.latch import FILE_NAME, RESET_LOG_NAME
from bms_ros.core.state_paths import state_folder

from .harness import LATCHED, RELIABLE
from .pack_plant import CELL_V, CELLS, FakePack, write_profile

pytestmark = pytest.mark.ros

TRIP = ProtectionEvent.LEVEL_TRIP


def pack_profile(tmp_path, name, serial):
    folder = tmp_path / name
    folder.mkdir()
    path = write_profile(folder)
    with open(path, encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    data['pack']['serial_number'] = serial
    with open(path, 'w', encoding='utf-8') as stream:
        yaml.safe_dump(data, stream)
    return path


def latched_ids(path):
    document = read_json(path)
    return [t['limit_id'] for t in document['trips']] if document else []


def tree(base):
    """Every folder and file below ``base`` (relative; atomic-write temporaries left out)."""
    found = []
    for folder, dirs, files in os.walk(base):
        found += [os.path.relpath(os.path.join(folder, n), base) for n in dirs + files
                  if not n.startswith('.')]
    return sorted(found)


def wait_file(path, predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while not predicate(latched_ids(path)):
        assert time.monotonic() < deadline, f'{what}: {path} holds {latched_ids(path)}'
        time.sleep(0.05)


def test_two_packs_do_not_share_persisted_state(ros_env, tmp_path):
    base = str(tmp_path / 'state')
    profiles = {'pack_a': pack_profile(tmp_path, 'a', 'SN-A'),
                'pack_b': pack_profile(tmp_path, 'b', 'SN-B')}
    folder = {'pack_a': state_folder('/pack_a', 'SN-A', base),
              'pack_b': state_folder('/pack_b', 'SN-B', base)}
    assert folder['pack_a'] == os.path.join(base, 'pack_a', 'SN-A')
    ros_env.env['XDG_STATE_HOME'] = str(tmp_path / 'xdg')   # must stay empty

    def start(ns, profile=None):
        return ros_env.start_module('bms_ros.nodes.protection', name=f'protection_{ns}',
                                    params={'profile': profile or profiles[ns],
                                            'state_dir': base},
                                    remaps={'__ns': f'/{ns}'})

    events = {ns: ros_env.subscribe(ProtectionEvent, f'/{ns}/trip_event', LATCHED)
              for ns in profiles}
    status = {ns: ros_env.subscribe(ProtectionStatus, f'/{ns}/protection_status', LATCHED)
              for ns in profiles}
    estimates = ros_env.subscribe(BatteryEstimate, '/pack_a/estimate', RELIABLE)
    # healthy measurements at 10 Hz to /<ns>/measurement of each pack (no estimates: the
    # estimator of pack_a makes its own)
    packs = {ns: FakePack(ros_env, namespace=ns) for ns in profiles}
    for pack in packs.values():
        pack.set(estimates=False)
        pack.start()
    node = {ns: start(ns) for ns in profiles}
    try:
        for ns in profiles:
            status[ns].wait_for(lambda s: not s.trip_latched, timeout_s=20.0,
                                what=f'{ns} healthy')
        # pack_a: cell 3 over-voltage trips and latches to pack_a's own file
        cells = [CELL_V] * CELLS
        cells[3] = 3.8
        packs['pack_a'].set(cells_v=cells)
        events['pack_a'].wait_for(lambda e: e.limit_id == 'cell_overvoltage' and e.index == 3
                                  and e.level == TRIP and e.latched, timeout_s=10.0,
                                  what='pack_a trip')
        file_a = os.path.join(folder['pack_a'], FILE_NAME)
        file_b = os.path.join(folder['pack_b'], FILE_NAME)
        wait_file(file_a, lambda ids: ids == ['cell_overvoltage'], 10.0, 'pack_a latch file')
        packs['pack_a'].set(cells_v=[CELL_V] * CELLS)   # the condition is gone
        assert latched_ids(file_b) == []

        # pack_b restarted: restores nothing of pack_a's
        node['pack_b'].kill()
        status['pack_b'].clear()
        node['pack_b'] = start('pack_b')
        restarted = status['pack_b'].wait_for(timeout_s=20.0, what='pack_b after restart')
        assert not restarted.trip_latched
        assert '0 latched trip(s) restored' in node['pack_b'].log_tail(), \
            node['pack_b'].log_tail()

        # resetting pack_b leaves pack_a's file (and its latch) alone
        answer = ros_env.call(ResetTrips, '/pack_b/reset_trips',
                              ResetTrips.Request(requester='test', reason='pack_b reset'))
        assert answer.success, answer.message
        assert latched_ids(file_a) == ['cell_overvoltage']
        assert os.path.exists(os.path.join(folder['pack_b'], RESET_LOG_NAME))
        assert not os.path.exists(os.path.join(folder['pack_a'], RESET_LOG_NAME))
        assert status['pack_a'].latest().trip_latched

        # pack_a killed and restarted: its own trip comes back from its own file
        node['pack_a'].kill()
        events['pack_a'].clear()
        node['pack_a'] = start('pack_a')
        restored = events['pack_a'].wait_for(
            lambda e: e.limit_id == 'cell_overvoltage' and e.index == 3 and e.latched,
            timeout_s=20.0, what='pack_a restored trip')
        assert restored.message.endswith('(restored after restart, reset required)')
        assert sorted(os.listdir(base)) == ['pack_a', 'pack_b']

        # the estimator keeps pack_a's SoC in pack_a's folder too (the same function)
        estimator = ros_env.start_module(
            'bms_ros.nodes.state_estimator', name='state_estimator_pack_a',
            params={'profile': profiles['pack_a'], 'state_dir': base},
            remaps={'__ns': '/pack_a'})
        estimates.wait_for(lambda e: e.pack_soc == e.pack_soc, timeout_s=20.0,
                           what='a pack_a estimate')
        assert estimator.stop() == 0, estimator.log_tail()
        saved = read_json(os.path.join(folder['pack_a'], ESTIMATOR_FILE))
        assert saved is not None and saved['cells_series'] == CELLS
        assert not os.path.exists(os.path.join(folder['pack_b'], ESTIMATOR_FILE))

        # a node that fails to start (a serial number that would climb into pack_a's folder)
        # exits 2 and writes nothing, anywhere
        before = tree(base)
        bad = start('pack_c', pack_profile(tmp_path, 'c', '../pack_a'))
        assert bad.popen.wait(20.0) == 2
        assert 'pack.serial_number' in bad.log_tail(), bad.log_tail()
        assert tree(base) == before
        assert not os.path.exists(tmp_path / 'xdg')
    finally:
        for pack in packs.values():
            pack.stop()
