"""Plausibility checks made cheaper (bit-identical): against the code they replaced.

The reference below is bms_ros.core.plausibility's check / check_temperatures and debouncer as
they were before (commit 19a74b6), kept here and not in core: on random packs with every kind
of fault (out-of-range, jumping, stuck and missing cells, pack-voltage mismatch, NaN and
changing temperatures, jumping sensors) every returned mask, the mismatch, the counts, the
summary and the warnings logged must be the same, sample for sample. The speed: bench.estimation
(node path) and docs/estimation.md "Cost".
"""
import logging
import math

import numpy as np
import pytest

from bms_ros.core import plausibility
from bms_ros.core.cell import CellSpec
from bms_ros.core.plausibility import (
    CELL_CHECKS,
    MIN_CELLS,
    Plausibility,
    PlausibilityConfig,
    _median,
    _Trust,
)
from bms_ros.core.profile import config_dir

log = logging.getLogger(plausibility.__name__)      # the reference warns where the module does


class ReferenceDebounce:
    """Per-item suspicion -> flag after ``debounce_s``; counts the flags raised."""

    def __init__(self, n: int, debounce_s: float) -> None:
        self.debounce_s = debounce_s
        self.since_s = np.full(n, np.nan)        # suspect since (s), NaN: not suspect
        self.flagged = np.zeros(n, dtype=bool)
        self.counts = np.zeros(n, dtype=int)

    def update(self, now_s, suspect):
        """Returns the items whose flag rose on this sample."""
        start = suspect & ~np.isfinite(self.since_s)
        self.since_s[start] = now_s
        self.since_s[~suspect] = np.nan
        flagged = suspect & (now_s - self.since_s >= self.debounce_s - 1e-9)
        rose = flagged & ~self.flagged
        self.counts += rose
        self.flagged = flagged
        return rose




class ReferencePlausibility(Plausibility):
    """Plausibility with the old checks and debouncers."""

    def __init__(self, cell, n_cells, config=None):
        super().__init__(cell, n_cells, config)
        cfg = self.config
        n = self.n
        self.debounce = {
            'cell_range': ReferenceDebounce(n, cfg.range_debounce_s),
            'cell_jump': ReferenceDebounce(n, cfg.jump_debounce_s),
            'cell_stuck': ReferenceDebounce(n, 0.0),
            'pack_voltage': ReferenceDebounce(n, cfg.pack_voltage_debounce_s),
        }
        self.pack_debounce = ReferenceDebounce(1, cfg.pack_voltage_debounce_s)

    def check(self, now_s: float, current_a: float, cell_voltage_v: object,
              cell_voltage_valid: object, cell_temperature_degc: object,
              pack_voltage_v: float = math.nan) :
        """One measurement at ``now_s`` (s): pack current (A, + = charging), cell voltages (V)
        and validity, per-cell temperature (degC, NaN = unmeasured), pack voltage (V, NaN =
        unmeasured). Returns the cells the estimator may correct with (bool per cell).
        """
        cfg = self.config
        v = np.asarray(cell_voltage_v, dtype=float)
        ok = np.asarray(cell_voltage_valid, dtype=bool) & np.isfinite(v)
        if not cfg.enabled:
            self.cell_usable, self.last_ok = ok.copy(), ok
            return self.cell_usable
        self.samples += 1
        current_a = float(current_a) if math.isfinite(current_a) else 0.0
        suspect = {}
        # --- range: beyond what any SoC gives at this current
        t = np.asarray(cell_temperature_degc, dtype=float)
        t = np.where(np.isfinite(t), t, 25.0)
        ocv = self.cell.ocv
        r = cfg.range_resistance_factor * (self.cell.r0_at(t) + self.cell.r1_ohm
                                           * self.cell.r0_at(t) / self.cell.r0_ohm)
        high = ocv.ocv(1.0, t) + cfg.range_margin_v + r * max(current_a, 0.0)
        low = ocv.ocv(0.0, t) - cfg.range_margin_v + r * min(current_a, 0.0)
        suspect['cell_range'] = ok & ((v > high) | (v < low))
        # --- cross-cell: steps against the median step, offsets against the median cell
        both = ok & np.isfinite(self.last_v)
        dv = np.where(both, v - self.last_v, np.nan)
        common = float(np.median(dv[both])) if both.sum() >= MIN_CELLS else math.nan
        median_v = float(np.median(v[ok])) if ok.sum() >= MIN_CELLS else math.nan
        offset = v - median_v
        jump = np.zeros(self.n, dtype=bool)
        if math.isfinite(common):
            jump = both & (np.abs(dv - common) > cfg.jump_v + cfg.jump_ratio * abs(common))
        # stuck: the median moved since this reading last changed by one code, the reading not
        changed = ~ok | ~(np.abs(v - self.stuck_ref_v) <= cfg.stuck_resolution_v) \
            | ~np.isfinite(self.stuck_ref_median_v)
        self.stuck_ref_v[changed] = np.where(ok, v, np.nan)[changed]
        self.stuck_ref_median_v[changed] = median_v
        # once seen, it stays stuck until the reading changes (the median may swing back)
        self.stuck = ok & ~changed & (self.stuck | (np.abs(median_v - self.stuck_ref_median_v)
                                                    >= cfg.stuck_step_v))
        stuck = self.stuck
        # a jump holds the cell until it is back near its last plausible offset
        new = jump & ~self.held
        self.hold_ref_v[new] = np.where(np.isfinite(self.good_offset_v[new]),
                                        self.good_offset_v[new], 0.0)
        self.held |= jump
        if math.isfinite(median_v):
            back = self.held & ok & (np.abs(offset - self.hold_ref_v) <= cfg.jump_v)
            self.held &= ~back
        suspect['cell_jump'] = self.held & ok
        suspect['cell_stuck'] = stuck & ok
        # --- sum of cells against the pack voltage
        suspect['pack_voltage'] = np.zeros(self.n, dtype=bool)
        pack_suspect = False
        self.pack_voltage_mismatch_v = math.nan
        pack_voltage_v = float(pack_voltage_v)
        if math.isfinite(pack_voltage_v) and ok.any():
            missing = self.n - int(ok.sum())
            vm = median_v if math.isfinite(median_v) else float(np.median(v[ok]))
            mismatch = float(np.sum(v[ok]) + missing * vm - pack_voltage_v)
            tolerance = cfg.pack_voltage_tolerance_v + missing * float(np.ptp(v[ok]))
            self.pack_voltage_mismatch_v = mismatch
            pack_suspect = abs(mismatch) > tolerance
            if pack_suspect and math.isfinite(median_v):
                # one cell whose deviation explains the mismatch is the culprit
                deviation = np.where(ok, offset * math.copysign(1.0, mismatch), -np.inf)
                k = int(np.argmax(deviation))
                if deviation[k] > 0.5 * tolerance and \
                        abs(abs(mismatch) - deviation[k]) <= tolerance:
                    suspect['pack_voltage'][k] = True
        self.pack_debounce.update(now_s, np.array([pack_suspect]))
        # --- debounce, count, log; what the estimator may use
        any_suspect = np.zeros(self.n, dtype=bool)
        any_flagged = np.zeros(self.n, dtype=bool)
        for name in CELL_CHECKS:
            rose = self.debounce[name].update(now_s, suspect[name])
            for i in np.flatnonzero(rose):
                log.warning('cell %d implausible (%s) at %.1f s: %.4f V, median %.4f V, '
                            'current %.1f A', i, name, now_s, v[i], median_v, current_a)
            any_suspect |= suspect[name]
            any_flagged |= self.debounce[name].flagged
        plausible = ok & ~any_suspect
        self.good_offset_v[plausible] = offset[plausible]
        self.last_v = np.where(ok, v, np.nan)
        self.last_ok = ok
        self.cell_usable = ok & self.trust.usable(now_s, any_suspect, any_flagged)
        return self.cell_usable

    def check_temperatures(self, now_s: float, temperatures_degc: object,
                           temperature_valid: object) :
        """Per sensor (degC, validity) at ``now_s`` (s); returns the sensors usable (bool)."""
        cfg = self.config
        t = np.asarray(temperatures_degc, dtype=float)
        ok = np.asarray(temperature_valid, dtype=bool) & np.isfinite(t)
        if not cfg.enabled:
            return ok
        if self.sensors != t.size:
            self.sensors = t.size
            self.temperature_debounce = ReferenceDebounce(t.size, cfg.temperature_debounce_s)
            self.temperature_trust = _Trust(t.size, cfg.rejoin_s)
            self.good_t = np.full(t.size, np.nan)        # last plausible reading (degC)
            self.good_t_s = np.full(t.size, np.nan)      # ... and when
        elapsed = now_s - self.good_t_s
        allowed = cfg.temperature_jump_degc + cfg.temperature_rate_degc_per_s * elapsed
        suspect = ok & np.isfinite(self.good_t) & (np.abs(t - self.good_t) > allowed)
        rose = self.temperature_debounce.update(now_s, suspect)
        for i in np.flatnonzero(rose):
            log.warning('temperature sensor %d implausible (temperature_jump): %.1f degC, last '
                        'plausible %.1f degC %.1f s before', i, t[i], self.good_t[i], elapsed[i])
        plausible = ok & ~suspect
        self.good_t[plausible] = t[plausible]
        self.good_t_s[plausible] = now_s
        self.temperature_usable = ok & self.temperature_trust.usable(
            now_s, suspect, self.temperature_debounce.flagged)
        return self.temperature_usable



CELLS = ('nmc_lg_m50', 'lfp_a123_anr26650')


def load(name):
    return CellSpec.from_file(f'{config_dir()}/cells/{name}.yaml')


def fault_run(cell, config, n, seed, steps=1000):
    """(now_s, current_a, voltages, valid, cell temperatures, pack voltage, sensor temperatures,
    sensor valid) per sample of a random pack with faults switching on and off.
    """
    rng = np.random.default_rng(seed)
    base = rng.uniform(3.2, 3.9, n)
    temperature = rng.uniform(-10.0, 50.0, n)
    sensors = max(n // 3, 1)
    t_sensor = rng.uniform(0.0, 40.0, sensors)
    stuck_at = None
    now = 0.0
    current = 0.0
    for k in range(steps):
        now += float(rng.choice([0.1, 0.1, 0.1, 0.05, 0.3]))
        if k % 25 == 0:
            current = float(rng.choice([-2.0, -1.0, 0.0, 0.5, 1.0])) * cell.capacity_ah
        v = np.round(base + 0.8 * cell.r0_ohm * current + rng.normal(0.0, 0.001, n), 3)
        valid = rng.random(n) > 0.02
        if rng.random() < 0.03:
            v[rng.integers(n)] = np.nan                          # a NaN reading
        if rng.random() < 0.05:
            v[rng.integers(n)] += float(rng.choice([-0.3, 0.2, 1.5, -2.0]))   # jump / range
        if k % 300 == 100:
            stuck_at = (int(rng.integers(n)), float(v[0]))
        if k % 300 == 250:
            stuck_at = None
        if stuck_at is not None:
            v[stuck_at[0]] = stuck_at[1]                         # a stuck reading
        t = temperature + 0.01 * k
        if rng.random() < 0.05:
            t = t.copy()
            t[rng.integers(n)] = np.nan
        pack_v = float(np.nansum(v)) + float(rng.choice([0.0, 0.0, 0.0, 0.5, -1.2, np.nan]))
        t_s = t_sensor + 0.02 * k
        if rng.random() < 0.05:
            t_s = t_s.copy()
            t_s[rng.integers(sensors)] += float(rng.choice([10.0, -8.0]))
        if k == 700:
            t_sensor = np.append(t_sensor, 25.0)                 # the sensor count changes
            sensors += 1
            t_s = t_sensor + 0.02 * k
        yield now, current, v, valid, t, pack_v, t_s, rng.random(sensors) > 0.02


CONFIGS = (PlausibilityConfig(), PlausibilityConfig(range_debounce_s=0.0, jump_debounce_s=0.3,
                                                    pack_voltage_debounce_s=0.0, rejoin_s=5.0,
                                                    temperature_debounce_s=0.5))


@pytest.mark.parametrize('name', CELLS)
@pytest.mark.parametrize('config', CONFIGS)
@pytest.mark.parametrize('n', [2, 3, 17, 96])
def test_same_verdicts_counts_and_warnings_as_the_reference(name, config, n, caplog):
    cell = load(name)
    new, ref = Plausibility(cell, n, config), ReferencePlausibility(cell, n, config)
    caplog.set_level(logging.WARNING, logger=plausibility.__name__)
    flags = 0
    for sample in fault_run(cell, config, n, seed=n + len(name)):
        now, current, v, valid, t, pack_v, t_s, s_valid = sample
        got = new.check(now, current, v, valid, t, pack_v).copy()
        new_logs = list(caplog.messages)
        caplog.clear()
        expected = ref.check(now, current, v, valid, t, pack_v)
        ref_logs = list(caplog.messages)
        caplog.clear()
        np.testing.assert_array_equal(got, expected)
        assert new_logs == ref_logs
        mismatch, ref_mismatch = new.pack_voltage_mismatch_v, ref.pack_voltage_mismatch_v
        assert mismatch == ref_mismatch or (math.isnan(mismatch) and math.isnan(ref_mismatch))
        np.testing.assert_array_equal(new.check_temperatures(now, t_s, s_valid),
                                      ref.check_temperatures(now, t_s, s_valid))
        caplog.clear()
        np.testing.assert_array_equal(new.held, ref.held)
        np.testing.assert_array_equal(new.stuck, ref.stuck)
        np.testing.assert_array_equal(new.good_offset_v, ref.good_offset_v)
        for check in CELL_CHECKS:
            np.testing.assert_array_equal(new.debounce[check].flagged, ref.debounce[check].flagged)
        flags = new.summary()['flags']
    assert new.summary() == ref.summary()
    assert new.diagnostic() == ref.diagnostic()
    if n >= MIN_CELLS:
        assert flags > 0                                 # the faults were seen


def test_median_is_np_median():
    rng = np.random.default_rng(1)
    for size in (1, 2, 3, 4, 5, 10, 11, 200, 201):
        for _ in range(50):
            x = np.round(rng.normal(0.0, 0.01, size), int(rng.integers(2, 6)))
            assert _median(x.copy()) == float(np.median(x))
    assert _median(np.array([-0.0, 0.0, 1.0])) == 0.0


def test_disabled_and_trust_unchanged():
    """Untouched parts still in use (for completeness of the reference): _Trust, disabled."""
    cell = load('nmc_lg_m50')
    off = Plausibility(cell, 4, PlausibilityConfig(enabled=False))
    v = np.array([3.7, np.nan, 3.7, 9.0])
    np.testing.assert_array_equal(off.check(0.0, 1.0, v, np.ones(4, bool), np.full(4, 25.0)),
                                  [True, False, True, True])
    trust = _Trust(2, 1.0)
    np.testing.assert_array_equal(trust.usable(0.0, np.array([False, True]),
                                               np.array([False, True])), [True, False])
