"""Persisted estimator state: round trip, and every kind of bad file refused cleanly."""
import json

import numpy as np
import pytest

from bms_ros.core.cell import CellSpec
from bms_ros.core.errors import PersistenceError
from bms_ros.core.estimation import EstimatorConfig, PackEstimator, stored_state
from bms_ros.core.profile import config_dir


@pytest.fixture(scope='module')
def nmc():
    return CellSpec.from_file(f'{config_dir()}/cells/nmc_lg_m50.yaml')


def learnt(nmc):
    est = PackEstimator(nmc, 3, EstimatorConfig())
    est.set_soc([0.2, 0.5, 0.8])
    est.capacity.set([4.5, 4.8, 5.1], [0.05, 0.06, 0.07])
    est.resistance.set([0.025, 0.03, 0.02])
    return est


def test_round_trip(nmc, tmp_path):
    path = tmp_path / 'state.json'
    stored_state.save(path, learnt(nmc), 'pack_a')
    fresh = PackEstimator(nmc, 3, EstimatorConfig())
    assert stored_state.load(path, fresh, 'pack_a')
    e = fresh.estimate()
    assert e.cell_soc == pytest.approx([0.2, 0.5, 0.8])
    assert e.cell_capacity_ah == pytest.approx([4.5, 4.8, 5.1])
    assert e.cell_r0_ohm == pytest.approx([0.025, 0.03, 0.02])
    assert fresh.capacity.std_ah == pytest.approx([0.05, 0.06, 0.07])


def test_missing_file(nmc, tmp_path):
    assert not stored_state.load(tmp_path / 'none.json', PackEstimator(nmc, 3, EstimatorConfig()),
                                 'pack_a')


def test_default_path_under_xdg_state(monkeypatch, tmp_path):
    # keyed by namespace and serial number (bms_ros.core.state_paths), not by pack name
    monkeypatch.setenv('XDG_STATE_HOME', str(tmp_path))
    assert stored_state.default_path('/pack_a', 'SN-1') == str(
        tmp_path / 'bms_ros' / 'pack_a' / 'SN-1' / 'estimator_state.json')


@pytest.mark.parametrize('change,message', [
    (lambda d: 'not json {', 'unreadable'),
    (lambda d: [1, 2], 'not a JSON object'),
    (lambda d: {**d, 'format': 'other'}, 'not a bms_ros.estimator_state'),
    (lambda d: {**d, 'pack_name': 'pack_b'}, 'pack_name'),
    (lambda d: {**d, 'cells_series': 4}, 'cells_series'),
    (lambda d: {**d, 'cell_name': 'X'}, 'cell_name'),
    (lambda d: {**d, 'capacity_nominal_ah': 2.3}, 'capacity_nominal_ah'),
    (lambda d: {**d, 'cell_soc': [0.2, 0.5]}, 'cell_soc'),
    (lambda d: {**d, 'cell_soc': [0.2, 'x', 0.8]}, 'cell_soc[1]'),
    (lambda d: {**d, 'cell_capacity_ah': [4.5, 40.0, 5.1]}, 'cell_capacity_ah[1]'),
    (lambda d: {**d, 'cell_r0_ohm': [0.025, -1.0, 0.02]}, 'cell_r0_ohm[1]'),
    (lambda d: {**d, 'current_offset_a': 1e9}, 'current_offset_a'),
])
def test_bad_files_are_refused(nmc, tmp_path, change, message):
    path = tmp_path / 'state.json'
    document = stored_state.document(learnt(nmc), 'pack_a')
    bad = change(document)
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    fresh = PackEstimator(nmc, 3, EstimatorConfig())
    with pytest.raises(PersistenceError, match=message.replace('[', r'\[').replace(']', r'\]')):
        stored_state.load(path, fresh, 'pack_a')
    assert not fresh.filter.initialised.any()          # nothing half-restored


def test_uninitialised_cells_are_saved_as_null(nmc, tmp_path):
    est = PackEstimator(nmc, 2, EstimatorConfig())
    est.step(0.0, 0.0, [3.9, float('nan')], [True, False], [25.0, 25.0])
    path = tmp_path / 'state.json'
    stored_state.save(path, est, 'p')
    assert json.loads(path.read_text())['cell_soc'][1] is None
    fresh = PackEstimator(nmc, 2, EstimatorConfig())
    stored_state.load(path, fresh, 'p')
    assert fresh.filter.initialised.tolist() == [True, False]
    assert np.isnan(fresh.estimate().cell_soc[1])


def test_restored_soc_doubt_grows_with_the_age_of_the_file(nmc, tmp_path):
    """A state saved just now is doubted restored_soc_std (5 %); 10 days old, 5 % + 10 x
    0.2 %; a file from before saved_unix_s was checked (none) counts as 30 days old. The
    format is unchanged (version 1): older files still load.
    """
    path = tmp_path / 'state.json'
    stored_state.save(path, learnt(nmc), 'pack_a')
    doc = json.loads(path.read_text())
    for saved, expected in ((doc['saved_unix_s'], 0.05), (doc['saved_unix_s'] - 10 * 86400, 0.07),
                            (None, 0.11)):
        if saved is None:
            doc.pop('saved_unix_s')
        else:
            doc['saved_unix_s'] = saved
        path.write_text(json.dumps(doc))
        fresh = PackEstimator(nmc, 3, EstimatorConfig())
        assert stored_state.load(path, fresh, 'pack_a')
        assert fresh.filter.soc_std == pytest.approx([expected] * 3, abs=1e-3)
