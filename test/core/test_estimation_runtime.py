"""The estimator runtime (core/estimation/runtime.py) that the node, estimate_csv and the
offline replay share: time line across clock jumps, rejection, limits on a trip, set_soc,
persistence, and estimate_csv's settings and --initial-soc.
"""
import dataclasses
import os

import numpy as np
import pytest

from bms_ros.core.cell import CellSpec
from bms_ros.core.estimation.config import EstimatorConfig
from bms_ros.core.estimation.runtime import CsvMeasurement, EstimatorRuntime
from bms_ros.core.estimation.synthetic import EcmCells
from bms_ros.core.profile import config_dir
from bms_ros.tools import estimate_csv

CELL = os.path.join(config_dir(), 'cells', 'nmc_lg_m50.yaml')


class Messages:
    """Collects what the runtime tells the operator."""

    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(('info', text))

    def warning(self, text):
        self.lines.append(('warning', text))

    def error(self, text):
        self.lines.append(('error', text))


@pytest.fixture()
def nmc():
    return CellSpec.from_file(CELL)


def runtime(cell, messages=None):
    return EstimatorRuntime(cell, 1, EstimatorConfig(), 1, [0], 'test', messages)


def test_clock_jump_counts_the_steady_interval(nmc):
    """A stamp that jumps back 1000 s (a simulator reset) or ahead 1000 s counts only the
    steady clock's 1 s: the charge of a 5 A discharge over 3 s, not over hours.
    """
    messages = Messages()
    rt = runtime(nmc, messages)
    truth = EcmCells(nmc, [0.8])
    stamps = [100.0, 101.0, -899.0, -898.0, 1102.0]
    for k, stamp in enumerate(stamps):
        if k:
            truth.step(1.0, -5.0)
        msg = CsvMeasurement(-5.0 if k else 0.0, truth.voltage_v()[0], 25.0)
        assert rt.on_measurement(msg, stamp, stamp, steady_s=float(k)) is not None
    assert rt.clock_jumps == 2
    assert rt.last_t_s == pytest.approx(100.0 + 4.0)
    assert sum('clock jumped' in text for _, text in messages.lines) == 2
    # 4 s at 5 A is 0.11 % of 5 Ah; hours would have emptied it
    assert rt.estimate().cell_soc[0] == pytest.approx(0.8, abs=0.01)


def test_rejects_and_counts_with_one_message_per_reason(nmc):
    messages = Messages()
    rt = runtime(nmc, messages)
    good = CsvMeasurement(0.0, 3.9, 25.0)
    assert rt.on_measurement(good, 1.0, 1.0, 1.0) == 1.0
    for _ in range(3):
        assert rt.on_measurement(good, 1.0, 1.0, 1.0) is None     # stamp does not advance
    bad = CsvMeasurement(float('nan'), 3.9, 25.0)
    assert rt.on_measurement(bad, 2.0, 2.0, 2.0) is None
    assert rt.rejected == 4
    warnings = [text for level, text in messages.lines if level == 'warning']
    assert len(warnings) == 2 and 'does not advance' in warnings[0]


def test_limits_are_zero_while_a_trip_is_latched(nmc):
    rt = runtime(nmc)
    rt.on_measurement(CsvMeasurement(0.0, 3.9, 25.0), 1.0, 1.0, 1.0)
    assert rt.estimate().discharge_current_limit_a > 0.0
    rt.on_protection(True)
    est = rt.estimate()
    assert est.charge_current_limit_a == est.discharge_current_limit_a == 0.0
    assert est.charge_current_limit_long_a == est.discharge_current_limit_long_a == 0.0
    rt.on_protection(False)
    assert rt.estimate().discharge_current_limit_a > 0.0


def test_set_soc_decisions(nmc):
    rt = runtime(nmc)
    assert rt.set_soc([], from_ocv=True) == (False, 'no measurement yet')
    rt.on_measurement(CsvMeasurement(-5.0, 3.8, 25.0), 1.0, 1.0, 1.0)
    ok, text = rt.set_soc([], from_ocv=True)
    assert not ok and 'not at rest' in text
    assert rt.set_soc([], from_ocv=True, force=True)[0]
    assert rt.set_soc([0.5, 0.6]) == (False, 'cell_soc has 2 values: give 1 or 1')
    assert rt.set_soc([1.5]) == (False, 'cell_soc must be within 0..1')
    assert rt.set_soc([0.42]) == (True, 'SoC set on 1 cells')
    assert rt.estimate().cell_soc[0] == pytest.approx(0.42)


def test_save_and_restore(nmc, tmp_path):
    rt = runtime(nmc)
    rt.on_measurement(CsvMeasurement(0.0, 3.9, 25.0), 1.0, 1.0, 1.0)
    rt.set_soc([0.55])
    assert rt.save(str(tmp_path / 'state.json'))
    other = runtime(nmc)
    assert other.restore(str(tmp_path / 'state.json'))
    assert other.estimate().cell_soc[0] == pytest.approx(0.55, abs=1e-6)
    (tmp_path / 'bad.json').write_text('{not json')
    messages = Messages()
    third = runtime(nmc, messages)
    assert not third.restore(str(tmp_path / 'bad.json'))
    assert any(level == 'warning' and 'ignoring saved state' in text
               for level, text in messages.lines)


def test_start_under_load_removes_the_rc_polarisation(nmc):
    """Started under a 1 C load that has run for 10 min (no initial SoC), with
    startup_polarisation 0.5: the first estimate takes the RC polarisation into account, not
    only R0 i (the default 0 assumes a load that has just started).
    """
    truth = EcmCells(nmc, [0.9])
    for _ in range(600):
        truth.step(1.0, -5.0)
    config = dataclasses.replace(EstimatorConfig(), startup_polarisation=0.5)
    rt = EstimatorRuntime(nmc, 1, config, 1, [0], 'test')
    v = truth.voltage_v()[0]
    rt.on_measurement(CsvMeasurement(-5.0, v, 25.0), 0.0, 0.0, 0.0)
    error = rt.estimate().cell_soc[0] - truth.soc[0]
    r0_only = nmc.ocv.soc_from_ocv(v + nmc.r0_ohm * 5.0) - truth.soc[0]
    # R0 i alone leaves R1 i = 60 mV: 6 points low; half of R1 i + r_diff i is 60 mV here
    assert r0_only < -0.05
    assert abs(error) < 0.01


def rest_recording(path, soc=0.9, seconds=60):
    truth = EcmCells(CellSpec.from_file(CELL), [soc])
    with open(path, 'w') as stream:
        stream.write('t_s,current_a,voltage_v,temperature_c\n')
        for k in range(seconds):
            stream.write(f'{k},0.0,{truth.voltage_v()[0]:.4f},25.0\n')


def test_initial_soc_takes_effect_at_rest(tmp_path):
    """A first sample at rest is read as OCV once and fused with the given SoC by the two
    doubts: a confidently given SoC (--initial-soc-std 0.001) holds.
    """
    rest_recording(tmp_path / 'in.csv')
    for std, expected, tolerance in ((0.001, 0.7, 0.01), (None, 0.9, 0.01)):
        args = ['--cell', CELL, '--input', str(tmp_path / 'in.csv'), '--output',
                str(tmp_path / 'out.csv'), '--initial-soc', '0.7']
        if std is not None:
            args += ['--initial-soc-std', str(std)]
        assert estimate_csv.main(args) == 0
        out = np.genfromtxt(tmp_path / 'out.csv', delimiter=',', names=True)
        assert out['soc_est'][0] == pytest.approx(expected, abs=tolerance)


def test_estimate_csv_prints_its_settings(tmp_path, capsys):
    rest_recording(tmp_path / 'in.csv', seconds=5)
    base = ['--cell', CELL, '--input', str(tmp_path / 'in.csv'), '--output',
            str(tmp_path / 'out.csv')]
    assert estimate_csv.main(base) == 0
    err = capsys.readouterr().err
    assert 'settings from defaults' in err and 'rest_time_s=300.0' in err
    assert 'warning: no --profile' in err
    profile = os.path.join(config_dir(), 'profiles', 'nmc_96s.yaml')
    assert estimate_csv.main(base + ['--profile', profile]) == 0
    err = capsys.readouterr().err
    assert f'settings from profile {profile}' in err and 'rest_time_s=600.0' in err
    assert 'warning' not in err
