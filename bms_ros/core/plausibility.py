"""Plausibility of measurements: readings that physics cannot explain are kept out of the estimator.

foxBMS 2's plausibility and redundancy modules are the model (facts only; this is our own design).
Pure numpy, vectorised over cells and sensors, on explicit times (``now_s``, one clock). Checks:

* ``cell_range``: a cell voltage outside what the chemistry can show at the present current,
  [OCV(0 %) - margin + k R I_discharge, OCV(100 %) + margin + k R I_charge] with R = R0(T) + R1;
* ``cell_jump``: a cell's step between two samples differs from the median step of the pack's
  cells (what R0 dI moves every cell by) by more than ``jump_v + jump_ratio |median step|``;
  the cell is then held until its offset from the pack median comes back within ``jump_v`` of
  its last plausible offset (a reading stuck at a new value stays held);
* ``cell_stuck``: a reading that has not changed by more than ``stuck_resolution_v`` (one
  code) while the median cell moved by at least ``stuck_step_v`` (the current changed, the other
  cells followed, this one did not: a healthy cell shares the string's R0 dI);
* ``pack_voltage``: the sum of the valid cells (an invalid cell counted as the median cell,
  the tolerance widened by the cells' spread for each) against the measured pack voltage; a
  mismatch one cell's deviation from the median explains names that cell;
* ``temperature_jump``: a sensor reading further from its last plausible value than
  ``temperature_jump_degc + temperature_rate_degc_per_s * elapsed`` (held until back within).

A failing sample is excluded at once (the estimator never sees it); a check *flags* (counted,
logged, reported) once it has failed for its debounce. A flagged cell or sensor is used again
only after it has passed every check for ``rejoin_s``. Cross-cell checks need 3 valid cells.

Cost (every measurement, 10 Hz): a debouncer with nothing suspect and nothing flagged returns
at once, the range bounds are kept while the temperatures are the same (by value), the medians
are a partition instead of np.median; the same numbers, masks, counts and warnings as before
(test/core/test_plausibility_cost.py holds the code it replaced).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from .cell import CellSpec
    from .config import Section

BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]

log = logging.getLogger(__name__)

CELL_CHECKS = ('cell_range', 'cell_jump', 'cell_stuck', 'pack_voltage')
SENSOR_CHECKS = ('temperature_jump',)
CHECKS = CELL_CHECKS + SENSOR_CHECKS
MIN_CELLS = 3       # a median of fewer cells cannot outvote one bad reading


def _median(x: FloatArray) -> float:
    """np.median of a non-empty array without NaN, to the bit (sorts ``x`` in part, in place):
    the middle order statistic, or the mean of the two as np.median takes it, (a + b) / 2.
    """
    k = x.size // 2
    if x.size % 2:
        x.partition(k)
        return float(x[k])
    x.partition((k - 1, k))
    return float((x[k - 1] + x[k]) / 2.0)


@dataclass(frozen=True)
class PlausibilityConfig:
    """The ``estimator.plausibility:`` section (see docs/estimation.md for the reasoning)."""

    enabled: bool = True
    rejoin_s: float = 60.0                     # flagged -> plausible this long before it is used
    range_margin_v: float = 0.10               # beyond the OCV table's ends at zero current
    range_resistance_factor: float = 3.0       # x (R0(T) + R1) |I|: aged or cold cells
    range_debounce_s: float = 0.2
    jump_v: float = 0.05                       # step not explained by the common step
    jump_ratio: float = 1.0                    # + this x |median step| (R0 spread, hot cells)
    jump_debounce_s: float = 0.0
    stuck_step_v: float = 0.010                # median moved this far, the reading not at all
    stuck_resolution_v: float = 0.0005         # a change below this is "unchanged" (1 mV codes)
    pack_voltage_tolerance_v: float = 0.3      # |sum of cells - pack voltage|
    pack_voltage_debounce_s: float = 1.0
    temperature_jump_degc: float = 3.0         # sensor noise and 0.1 degC codes stay far below
    temperature_rate_degc_per_s: float = 2.0   # a cell heats slower (protection trips at 1/s)
    temperature_debounce_s: float = 0.0

    @classmethod
    def from_section(cls, section: Section) -> PlausibilityConfig:
        """Validate a ``config.Section``; ConfigError naming file and field."""
        section.reject_unknown([f.name for f in fields(cls)])
        d = cls()
        kw: dict[str, Any] = {'enabled': section.boolean('enabled', d.enabled)}
        for name in ('rejoin_s', 'range_debounce_s', 'jump_debounce_s', 'pack_voltage_debounce_s',
                     'temperature_debounce_s'):
            kw[name] = section.number(name, getattr(d, name), minimum=0.0, maximum=3600.0)
        for name in ('range_margin_v', 'jump_v', 'stuck_step_v', 'pack_voltage_tolerance_v'):
            kw[name] = section.number(name, getattr(d, name), exclusive_minimum=0.0,
                                      maximum=100.0)
        kw['stuck_resolution_v'] = section.number('stuck_resolution_v', d.stuck_resolution_v,
                                                  minimum=0.0, maximum=0.1)
        kw['range_resistance_factor'] = section.number(
            'range_resistance_factor', d.range_resistance_factor, minimum=1.0, maximum=100.0)
        kw['jump_ratio'] = section.number('jump_ratio', d.jump_ratio, minimum=0.0, maximum=10.0)
        kw['temperature_jump_degc'] = section.number(
            'temperature_jump_degc', d.temperature_jump_degc, exclusive_minimum=0.0,
            maximum=200.0)
        kw['temperature_rate_degc_per_s'] = section.number(
            'temperature_rate_degc_per_s', d.temperature_rate_degc_per_s, minimum=0.0,
            maximum=1000.0)
        if kw['stuck_resolution_v'] >= kw['stuck_step_v']:
            raise section.error('stuck_resolution_v',
                                f'must be < stuck_step_v ({kw["stuck_step_v"]:g})')
        return cls(**kw)


class _Debounce:
    """Per-item suspicion -> flag after ``debounce_s``; counts the flags raised."""

    def __init__(self, n: int, debounce_s: float) -> None:
        self.debounce_s = debounce_s
        self.since_s = np.full(n, np.nan)        # suspect since (s), NaN: not suspect
        self.flagged = np.zeros(n, dtype=bool)
        self.counts = np.zeros(n, dtype=int)
        # nothing suspect, nothing flagged: a sample without a suspect changes nothing (the
        # common case), so update returns at once (read-only: callers must not write to it)
        self.quiet = True
        self.none = np.zeros(n, dtype=bool)
        self.none.flags.writeable = False

    def update(self, now_s: float, suspect: BoolArray) -> BoolArray:
        """Returns the items whose flag rose on this sample."""
        if self.quiet and not suspect.any():
            return self.none
        start = suspect & ~np.isfinite(self.since_s)
        self.since_s[start] = now_s
        self.since_s[~suspect] = np.nan
        flagged = suspect & (now_s - self.since_s >= self.debounce_s - 1e-9)
        rose = flagged & ~self.flagged
        self.counts += rose
        self.flagged = flagged
        self.quiet = not (suspect.any() or flagged.any())
        return rose


class _Trust:
    """Used again only after ``rejoin_s`` without a flag; a suspect sample is never used."""

    def __init__(self, n: int, rejoin_s: float) -> None:
        self.rejoin_s = rejoin_s
        self.last_flag_s = np.full(n, -np.inf)

    def usable(self, now_s: float, suspect: BoolArray, flagged: BoolArray) -> BoolArray:
        self.last_flag_s[flagged] = now_s
        return ~suspect & (now_s - self.last_flag_s >= self.rejoin_s)


@dataclass
class Verdict:
    """One sample's result: what the estimator may use (bool per cell / per sensor)."""

    cell_usable: BoolArray
    temperature_usable: BoolArray
    pack_voltage_mismatch_v: float


class Plausibility:
    """Stateful checks of one string of ``n_cells`` cells of ``cell`` (a CellSpec)."""

    def __init__(self, cell: CellSpec, n_cells: int,
                 config: PlausibilityConfig | None = None) -> None:
        self.cell = cell
        self.n = int(n_cells)
        self.config = config or PlausibilityConfig()
        cfg = self.config
        n = self.n
        self.debounce = {
            'cell_range': _Debounce(n, cfg.range_debounce_s),
            'cell_jump': _Debounce(n, cfg.jump_debounce_s),
            'cell_stuck': _Debounce(n, 0.0),           # stuck_step_v is its debounce
            'pack_voltage': _Debounce(n, cfg.pack_voltage_debounce_s),
        }
        self.pack_debounce = _Debounce(1, cfg.pack_voltage_debounce_s)
        self.trust = _Trust(n, cfg.rejoin_s)
        self.last_v = np.full(n, np.nan)           # previous sample's valid reading (V)
        self.good_offset_v = np.full(n, np.nan)    # offset from the median when last plausible
        self.held = np.zeros(n, dtype=bool)        # after a jump, until it comes back
        self.hold_ref_v = np.full(n, np.nan)
        self.stuck_ref_v = np.full(n, np.nan)      # the reading when it last changed (V)
        self.stuck_ref_median_v = np.full(n, np.nan)   # ... and the median cell then (V)
        self.stuck = np.zeros(n, dtype=bool)
        self.cell_usable = np.ones(n, dtype=bool)
        self.last_ok = np.zeros(n, dtype=bool)
        self.pack_voltage_mismatch_v = math.nan
        self.samples = 0
        # sensors: sized at the first temperature sample
        self.sensors: int | None = None
        # the range bounds depend only on the temperatures: kept while they are the same
        self._range_key: bytes | None = None
        self._range: tuple[FloatArray, FloatArray, FloatArray] | None = None

    def _range_bounds(self, t: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(high at 0 A, low at 0 A, k (R0(T) + R1(T))) per cell (V, V, ohm) at ``t`` (degC)."""
        key = t.tobytes()
        kept = self._range
        if kept is None or key != self._range_key:
            cfg = self.config
            ocv = self.cell.ocv
            r = cfg.range_resistance_factor * (self.cell.r0_at(t) + self.cell.r1_ohm
                                               * self.cell.r0_at(t) / self.cell.r0_ohm)
            kept = self._range = (
                np.asarray(ocv.ocv(1.0, t) + cfg.range_margin_v, dtype=float),
                np.asarray(ocv.ocv(0.0, t) - cfg.range_margin_v, dtype=float),
                np.asarray(r, dtype=float))
            self._range_key = key
        return kept

    # ------------------------------------------------------------------ cells
    def check(self, now_s: float, current_a: float, cell_voltage_v: ArrayLike,
              cell_voltage_valid: ArrayLike, cell_temperature_degc: ArrayLike,
              pack_voltage_v: float = math.nan) -> BoolArray:
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
        high_0a, low_0a, r = self._range_bounds(t)
        high = high_0a + r * max(current_a, 0.0)
        low = low_0a + r * min(current_a, 0.0)
        suspect['cell_range'] = ok & ((v > high) | (v < low))
        # --- cross-cell: steps against the median step, offsets against the median cell
        both = ok & np.isfinite(self.last_v)
        dv = np.where(both, v - self.last_v, np.nan)
        common = _median(dv[both]) if both.sum() >= MIN_CELLS else math.nan
        median_v = _median(v[ok]) if ok.sum() >= MIN_CELLS else math.nan
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
            debounce = self.debounce[name]
            rose = debounce.update(now_s, suspect[name])
            if debounce.quiet:                  # nothing suspect or flagged: nothing to add
                continue
            for i in np.flatnonzero(rose):
                log.warning('cell %d implausible (%s) at %.1f s: %.4f V, median %.4f V, '
                            'current %.1f A', i, name, now_s, v[i], median_v, current_a)
            any_suspect |= suspect[name]
            any_flagged |= debounce.flagged
        plausible = ok & ~any_suspect
        self.good_offset_v[plausible] = offset[plausible]
        self.last_v = np.where(ok, v, np.nan)
        self.last_ok = ok
        self.cell_usable = ok & self.trust.usable(now_s, any_suspect, any_flagged)
        return self.cell_usable

    # ------------------------------------------------------------------ temperatures
    def check_temperatures(self, now_s: float, temperatures_degc: ArrayLike,
                           temperature_valid: ArrayLike) -> BoolArray:
        """Per sensor (degC, validity) at ``now_s`` (s); returns the sensors usable (bool)."""
        cfg = self.config
        t = np.asarray(temperatures_degc, dtype=float)
        ok = np.asarray(temperature_valid, dtype=bool) & np.isfinite(t)
        if not cfg.enabled:
            return ok
        if self.sensors != t.size:
            self.sensors = t.size
            self.temperature_debounce = _Debounce(t.size, cfg.temperature_debounce_s)
            self.temperature_trust = _Trust(t.size, cfg.rejoin_s)
            self.good_t = np.full(t.size, np.nan)        # last plausible reading (degC)
            self.good_t_s = np.full(t.size, np.nan)      # ... and when
        elapsed = now_s - self.good_t_s
        allowed = cfg.temperature_jump_degc + cfg.temperature_rate_degc_per_s * elapsed
        suspect = ok & np.isfinite(self.good_t) & (np.abs(t - self.good_t) > allowed)
        rose = self.temperature_debounce.update(now_s, suspect)
        for i in () if self.temperature_debounce.quiet else np.flatnonzero(rose):
            log.warning('temperature sensor %d implausible (temperature_jump): %.1f degC, last '
                        'plausible %.1f degC %.1f s before', i, t[i], self.good_t[i], elapsed[i])
        plausible = ok & ~suspect
        self.good_t[plausible] = t[plausible]
        self.good_t_s[plausible] = now_s
        self.temperature_usable = ok & self.temperature_trust.usable(
            now_s, suspect, self.temperature_debounce.flagged)
        return self.temperature_usable

    # ------------------------------------------------------------------ report
    def summary(self) -> dict[str, Any]:
        """What /diagnostics shows: per check the cells (sensors) flagged now and the counts."""
        checks: dict[str, dict[str, Any]] = {}
        for name in CELL_CHECKS:
            d = self.debounce[name]
            checks[name] = {'flagged': [int(i) for i in np.flatnonzero(d.flagged)],
                            'count': int(d.counts.sum()),
                            'counts': {int(i): int(d.counts[i]) for i in np.flatnonzero(d.counts)}}
        checks['pack_voltage']['pack_flagged'] = bool(self.pack_debounce.flagged[0])
        checks['pack_voltage']['pack_count'] = int(self.pack_debounce.counts[0])
        td = getattr(self, 'temperature_debounce', None)   # None before a temperature sample
        checks['temperature_jump'] = {
            'flagged': [] if td is None else [int(i) for i in np.flatnonzero(td.flagged)],
            'count': 0 if td is None else int(td.counts.sum()),
            'counts': {} if td is None else {int(i): int(td.counts[i])
                                             for i in np.flatnonzero(td.counts)}}
        held = [int(i) for i in np.flatnonzero(self.last_ok & ~self.cell_usable)]
        return {'enabled': self.config.enabled, 'samples': self.samples, 'checks': checks,
                'cells_held': held,
                'pack_voltage_mismatch_v': self.pack_voltage_mismatch_v,
                'flags': sum(c['count'] + c.get('pack_count', 0) for c in checks.values())}

    def flagged_now(self) -> bool:
        """True if any check has a flag raised now (the diagnostics level: WARN)."""
        s = self.summary()['checks']
        return any(c['flagged'] or c.get('pack_flagged') for c in s.values())

    def diagnostic(self) -> tuple[str, str, list[tuple[str, str]]]:
        """(level 'OK' | 'WARN', message, [(key, value), ...]) for /diagnostics (strings)."""
        s = self.summary()
        flagged = {name: c['flagged'] for name, c in s['checks'].items() if c['flagged']}
        pack = s['checks']['pack_voltage']['pack_flagged']
        values = [('enabled', str(s['enabled'])),
                  ('cells_held', ' '.join(map(str, s['cells_held'])) or 'none')]
        for name, c in s['checks'].items():
            what = 'sensors' if name in SENSOR_CHECKS else 'cells'
            values.append((f'{name}: {what} flagged', ' '.join(map(str, c['flagged'])) or 'none'))
            values.append((f'{name}: flags', str(c['count'])))
            if c['counts']:
                values.append((f'{name}: flags per {what[:-1]}',
                               ' '.join(f'{i}:{k}' for i, k in c['counts'].items())))
        values.append(('pack_voltage: pack flagged', str(pack)))
        values.append(('pack_voltage: pack flags', str(s['checks']['pack_voltage']['pack_count'])))
        mismatch = s['pack_voltage_mismatch_v']
        values.append(('pack_voltage_mismatch_v',
                       'nan' if not math.isfinite(mismatch) else f'{mismatch:+.3f}'))
        if not flagged and not pack and not s['cells_held']:
            return 'OK', 'all readings plausible', values
        parts = [f'{name} {",".join(map(str, items))}' for name, items in flagged.items()]
        if pack:
            parts.append('pack_voltage (sum of cells)')
        if s['cells_held']:
            parts.append(f'cells {",".join(map(str, s["cells_held"]))} counted, not corrected')
        return 'WARN', 'implausible: ' + '; '.join(parts), values
