"""Starts: a persisted SoC is the prior when valid (under load it is kept, at rest it is fused
with the OCV by the two doubts); without one the SoC is read from the voltage.
"""
import json

import numpy as np
import pytest

from bms_ros.core.cell import CellSpec
from bms_ros.core.estimation import EstimatorConfig, PackEstimator, stored_state
from bms_ros.core.estimation.synthetic import EcmCells
from bms_ros.core.profile import config_dir


@pytest.fixture(scope='module')
def nmc():
    return CellSpec.from_file(f'{config_dir()}/cells/nmc_lg_m50.yaml')


def loaded_truth(cell, soc, seconds=600.0, current_a=-5.0):
    """A 1-RC truth after ``seconds`` of ``current_a``: its RC polarisation settled."""
    truth = EcmCells(cell, soc)
    for _ in range(int(seconds)):
        truth.step(1.0, current_a)
    return truth


def saved_state(cell, tmp_path, soc):
    saver = PackEstimator(cell, len(soc), EstimatorConfig())
    saver.set_soc(soc)
    path = tmp_path / 'state.json'
    stored_state.save(path, saver, 'pack_a')
    return path


def test_persisted_soc_is_the_prior_at_a_start_under_load(nmc, tmp_path):
    truth = loaded_truth(nmc, [0.8, 0.75])
    path = saved_state(nmc, tmp_path, list(truth.soc))
    restored = PackEstimator(nmc, 2, EstimatorConfig())
    assert stored_state.load(path, restored, 'pack_a')
    blind = PackEstimator(nmc, 2, EstimatorConfig())
    for est in (restored, blind):
        est.step(0.0, -5.0, truth.voltage_v(), np.ones(2, dtype=bool), np.full(2, 25.0))
    # read from the voltage under load (default: only R0 i removed) it is > 5 points low;
    # the persisted SoC (doubt 5 %) is kept to within 1 point
    assert np.all(blind.filter.soc - truth.soc < -0.05)
    assert restored.filter.soc == pytest.approx(truth.soc, abs=0.01)


def test_persisted_soc_is_fused_with_the_ocv_at_a_start_at_rest(nmc, tmp_path):
    truth = EcmCells(nmc, [0.62])
    path = saved_state(nmc, tmp_path, [0.70])            # 8 points off (self-discharge, ...)
    est = PackEstimator(nmc, 1, EstimatorConfig())
    assert stored_state.load(path, est, 'pack_a')
    est.step(0.0, 0.0, truth.voltage_v(), np.ones(1, dtype=bool), np.full(1, 25.0))
    # the OCV's doubt (3 mV / NMC slope: < 1 %) is far below the restored 5 %: the OCV wins
    assert est.filter.soc[0] == pytest.approx(0.62, abs=0.01)
    assert est.anchors == 1


def test_invalid_saved_soc_starts_from_the_voltage(nmc, tmp_path):
    truth = EcmCells(nmc, [0.4])
    path = saved_state(nmc, tmp_path, [0.9])
    doc = json.loads(path.read_text())
    doc['cell_soc'] = [None]                  # saved before the cell was ever measured
    path.write_text(json.dumps(doc))
    est = PackEstimator(nmc, 1, EstimatorConfig())
    assert stored_state.load(path, est, 'pack_a')
    assert not est.filter.initialised[0]
    est.step(0.0, 0.0, truth.voltage_v(), np.ones(1, dtype=bool), np.full(1, 25.0))
    assert est.filter.soc[0] == pytest.approx(0.4, abs=0.01)
