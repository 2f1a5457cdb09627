"""State of energy and run time from the cell model, vectorised over the series cells.

Remaining energy is what the terminals deliver from now until the pack is empty, at a given
pack power P (W drawn, >= 0) and cell temperature:

    E = integral over the charge q still deliverable of  V_pack(q) dq
    V_pack(q) = sum_i OCV_i(soc_i - q / Q_i, T_i) - I(q) sum_i R_i,   P = V_pack I

with R_i = R0_i(T) + R1_i (a sustained load has its RC pair charged), so the losses I^2 R are
subtracted, not assumed away (SoC x nominal Wh would ignore temperature, load and OCV shape).
The integration marches in charge steps and stops at the first of: the weakest cell at the SoC
floor, a cell's terminal voltage at the cut-off voltage (at ``peak_power_w``, the highest load
of a profile), or a power the pack cannot deliver. Time to empty is the integral of dq / I.

Time to full: CC at I_cc to the cell's CV point (OCV(z) + I_cc R = V_cv), then CV with the
current tapering as exp(-t / tau), tau = R 3600 Q / (dOCV/dz): the cell's resistance times the
capacitance of its OCV, until the SoC ceiling or the termination current; the pack is full when
its first cell is (as pack_soc in bms_ros.core.estimation.estimator).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..cell import CellSpec, arrhenius_factor
from ..ocv import REFERENCE_TEMPERATURE_DEGC
from .config import EnergyConfig

FloatArray = NDArray[np.float64]
# cumulative integral at each grid point, values, slope of each interval
Table = tuple[FloatArray, FloatArray, FloatArray]

WH_PER_V_AH = 1.0           # V x Ah = Wh


@dataclass
class Discharge:
    """Result of one discharge integration (pack values; energy in Wh at the terminals)."""

    energy_wh: float           # delivered at the terminals, losses subtracted
    time_s: float              # inf at zero power
    charge_ah: float           # delivered charge
    end: str                   # 'floor', 'cutoff', 'power' (the pack cannot deliver P) or 'empty'
    cell_energy_wh: FloatArray  # each cell's share of energy_wh


class CellEnergyModel:
    """OCV integrals, resistances and the discharge / charge predictions of one cell type."""

    def __init__(self, cell: CellSpec, config: EnergyConfig) -> None:
        self.cell = cell
        self.config = config
        ocv = cell.ocv
        self.grid = ocv.soc_grid
        self.cutoff_v = config.cutoff_voltage_v or cell.limits.voltage_min_v
        self.cv_v = config.cv_voltage_v or cell.limits.voltage_max_v
        # cumulative integrals of the piecewise-linear OCV (and its entropic term) over SoC,
        # once per cell type: an integral is then two table look-ups
        self._ocv_table = _integral_table(self.grid, ocv.ocv_grid_v)
        self._dt_table = _integral_table(self.grid, ocv.docv_dt_v_per_degc)
        self._isothermal = not np.any(ocv.docv_dt_v_per_degc)
        self._grid_cache: tuple[FloatArray, FloatArray] | None = None

    # ------------------------------------------------------------------ building blocks
    def ocv_integral(self, soc_lo: ArrayLike, soc_hi: ArrayLike,
                     temperature_degc: ArrayLike = REFERENCE_TEMPERATURE_DEGC) -> FloatArray:
        """Integral of OCV(z, T) dz from soc_lo to soc_hi (V per unit SoC; x Q in Ah = Wh)."""
        lo = np.minimum(np.maximum(soc_lo, 0.0), 1.0)     # np.clip without its wrapper overhead
        hi = np.minimum(np.maximum(soc_hi, 0.0), 1.0)
        base = self._primitive(self._ocv_table, hi) - self._primitive(self._ocv_table, lo)
        if self._isothermal:
            return base
        entropic = self._primitive(self._dt_table, hi) - self._primitive(self._dt_table, lo)
        return base + entropic * (np.asarray(temperature_degc, dtype=float)
                                  - REFERENCE_TEMPERATURE_DEGC)

    def soc_from_ocv(self, ocv_v: ArrayLike,
                     temperature_degc: ArrayLike = REFERENCE_TEMPERATURE_DEGC) -> FloatArray:
        """SoC for an OCV (V) at a temperature, clipped to 0..1: the table's own inverse,
        exact at each element's temperature (it caches its lookup itself).
        """
        return np.asarray(self.cell.ocv.soc_from_ocv(ocv_v, temperature_degc), dtype=float)

    def _primitive(self, table: Table, z: FloatArray) -> FloatArray:
        """Exact integral from 0 to z (0..1) of a piecewise-linear table (cumulative, values,
        slopes per grid interval): a quadratic inside each interval.
        """
        cumulative, values, slopes = table
        g = self.grid
        k = np.minimum(np.searchsorted(g, z, side='right') - 1, g.size - 2)
        dz = z - g[k]
        return cumulative[k] + dz * (values[k] + 0.5 * slopes[k] * dz)

    def r0_ohm_at(self, cell_r0_ohm: ArrayLike, temperature_degc: ArrayLike,
                  activation_k: float | None = None) -> FloatArray:
        """R0(T) per cell (ohm) from the estimate's R0 (normalised to 25 degC): by the
        estimator's learnt law (``activation_k``, Ea/R in K, as ``Estimate.r0_activation_k``),
        else (None, NaN) by the cell file's.
        """
        t = np.asarray(temperature_degc, dtype=float)
        r0 = np.asarray(cell_r0_ohm, dtype=float)
        if activation_k is None or not math.isfinite(activation_k):
            out: FloatArray = r0 * self.cell.r0_at(t) / self.cell.r0_ohm
        else:
            out = r0 * arrhenius_factor(t, activation_k)
        return out

    def resistance_ohm(self, cell_r0_ohm: ArrayLike, temperature_degc: ArrayLike,
                       activation_k: float | None = None) -> FloatArray:
        """R0(T) + R1 per cell (ohm) from the estimate's R0 (normalised to 25 degC); R0(T) by
        the learnt law when ``activation_k`` (K) is given, else by the cell file's.
        """
        r0 = self.r0_ohm_at(cell_r0_ohm, temperature_degc, activation_k)
        return r0 + self.cell.r1_ohm * np.asarray(cell_r0_ohm, dtype=float) / self.cell.r0_ohm

    def _grids(self) -> tuple[FloatArray, FloatArray]:
        """The coarse grid (0..1) and the fine one inside a bracket (0..1), made once."""
        grids = self._grid_cache
        if grids is None:
            coarse_n, fine_n = _grid_split(self.config.integration_steps)
            grids = self._grid_cache = (np.linspace(0.0, 1.0, coarse_n + 1),
                                        np.linspace(0.0, 1.0, fine_n + 1))
        return grids

    def rc_resistance_ohm(self, cell_r0_ohm: ArrayLike) -> FloatArray:
        """R1 per cell (ohm): the RC pair's resistance, scaled with the estimate's R0 at 25 degC."""
        return self.cell.r1_ohm * np.asarray(cell_r0_ohm, dtype=float) / self.cell.r0_ohm

    def loss_resistance_ohm(self, cell_r0_ohm: ArrayLike, temperature_degc: ArrayLike,
                            loss_factor: float, rc_loss_factor: float,
                            activation_k: float | None = None) -> FloatArray:
        """R0(T) E[P^2]/E[P]^2 + R1 E[P_rc^2]/E[P]^2 per cell (ohm): the I^2 R losses of a varying
        load at its mean current (R1 only sees the current low-passed at tau1); ``activation_k``
        as :meth:`resistance_ohm`.
        """
        r1 = self.rc_resistance_ohm(cell_r0_ohm)
        r0 = self.resistance_ohm(cell_r0_ohm, temperature_degc, activation_k) - r1
        return r0 * float(loss_factor) + r1 * float(rc_loss_factor)

    # ------------------------------------------------------------------ discharge
    def peak_resistance_ohm(self, cell_r0_ohm: ArrayLike, temperature_degc: ArrayLike,
                            peak_s: float = 10.0, activation_k: float | None = None
                            ) -> FloatArray:
        """R0(T) + R1 (1 - exp(-peak_s / tau1)) per cell: what a peak of ``peak_s`` meets;
        ``activation_k`` as :meth:`resistance_ohm`.
        """
        r0 = np.asarray(cell_r0_ohm, dtype=float)
        return self.r0_ohm_at(r0, temperature_degc, activation_k) + self.cell.r1_ohm * r0 \
            / self.cell.r0_ohm * (1.0 - np.exp(-peak_s / self.cell.tau1_s))

    def discharge(self, soc: ArrayLike, capacity_ah: ArrayLike, resistance_ohm: ArrayLike,
                  temperature_degc: ArrayLike, power_w: float,
                  peak_power_w: float | None = None, loss_factor: float = 1.0,
                  peak_resistance_ohm: ArrayLike | None = None,
                  loss_resistance_ohm: ArrayLike | None = None) -> Discharge:
        """Integrate a discharge at constant pack power ``power_w`` (W drawn, >= 0).

        ``peak_power_w`` (default ``power_w``) is the load the cut-off voltage is judged at,
        through ``peak_resistance_ohm`` per cell (default ``resistance_ohm``: a sustained peak)
        on top of the mean load's drop; ``loss_factor`` scales the I^2 R losses
        (E[P^2] / E[P]^2 of a varying load); ``loss_resistance_ohm`` per cell, when given,
        replaces ``loss_factor x resistance_ohm`` (see :meth:`loss_resistance_ohm`).

        The end is searched on a coarse charge grid and refined inside the bracket where it
        falls (together ``integration_steps`` resolution); the OCV energy is the exact integral
        of the table (:meth:`ocv_integral`), the I R losses a trapezoid over the same points,
        and the time is energy / power (P = (E - I R) I exactly at every point).
        """
        cfg = self.config
        z0 = np.minimum(np.maximum(np.asarray(soc, dtype=float), 0.0), 1.0)
        q = np.asarray(capacity_ah, dtype=float)
        r = np.asarray(resistance_ohm, dtype=float)
        t = np.asarray(temperature_degc, dtype=float)
        if t.shape != z0.shape:
            t = np.broadcast_to(t, z0.shape)
        n_cells = z0.size
        power = max(float(power_w), 0.0)
        peak = power if peak_power_w is None else max(float(peak_power_w), power)
        deliverable = float(((z0 - cfg.soc_floor) * q).min()) if n_cells else 0.0
        if not math.isfinite(deliverable) or deliverable <= 0.0:
            return Discharge(0.0, 0.0, 0.0, 'empty', np.zeros(n_cells))
        r_loss = r * float(loss_factor) if loss_resistance_ohm is None else \
            np.asarray(loss_resistance_ohm, dtype=float)
        r_pk = None if peak_resistance_ohm is None else \
            np.asarray(peak_resistance_ohm, dtype=float)
        march = _March(self, z0, q, r, t, power, peak, r_loss, r_pk)
        coarse_unit, fine_unit = self._grids()
        fine_n = fine_unit.size - 1
        charge = deliverable * coarse_unit                                  # Ah
        current, margin, bad, reason = march.at(charge)
        end_reason = 'floor'
        q_end = deliverable
        points_q, points_i = charge, current
        if bad.any():
            k = int(np.argmax(bad))
            end_reason = reason(k)
            if k == 0:
                return Discharge(0.0, 0.0, 0.0, end_reason, np.zeros(n_cells))
            # refine inside the bracket (charge[k-1], charge[k]]
            fine = charge[k - 1] + (charge[k] - charge[k - 1]) * fine_unit
            f_current, f_margin, f_bad, f_reason = march.at(fine[1:])
            j = int(np.argmax(f_bad)) if f_bad.any() else fine_n - 1
            end_reason = f_reason(j) if f_bad.any() else end_reason
            prev_margin = margin[k - 1] if j == 0 else f_margin[j - 1]
            prev_i = current[k - 1] if j == 0 else f_current[j - 1]
            q_end = fine[j]                      # the last good point
            points_q = np.concatenate([charge[:k], fine[1:j + 1]])
            points_i = np.concatenate([current[:k], f_current[:j]])
            if end_reason == 'cutoff' and f_bad.any() and prev_margin > f_margin[j]:
                # cross the cut-off margin linearly inside the last fine step (the current too)
                frac = float(np.clip(prev_margin / (prev_margin - f_margin[j]), 0.0, 1.0))
                q_end = fine[j] + frac * (fine[j + 1] - fine[j])
                points_q = np.append(points_q, q_end)
                points_i = np.append(points_i, prev_i + frac * (f_current[j] - prev_i))
        # per cell: the exact OCV integral minus the I r_loss drop integrated over the charge
        z_end = z0 - q_end / q
        ocv_wh = q * self.ocv_integral(z_end, z0, t)
        loss_ah_a = float(np.sum(0.5 * (points_i[1:] + points_i[:-1]) * np.diff(points_q)))
        cell_energy = (ocv_wh - r_loss * loss_ah_a) * WH_PER_V_AH
        energy = float(cell_energy.sum())
        time_s = energy * 3600.0 / power if power > 0.0 else float('inf')
        return Discharge(energy, time_s, float(q_end), end_reason, cell_energy)

    def cell_remaining_energy_wh(self, soc: ArrayLike, capacity_ah: ArrayLike,
                                 resistance_ohm: ArrayLike, temperature_degc: ArrayLike,
                                 current_a: float) -> FloatArray:
        """Each cell's energy down to its own floor at a discharge current (A, >= 0), Wh."""
        z = np.clip(np.asarray(soc, dtype=float), 0.0, 1.0)
        q = np.asarray(capacity_ah, dtype=float)
        r = np.asarray(resistance_ohm, dtype=float)
        i = max(float(current_a), 0.0)
        cut = self.soc_from_ocv(self.cutoff_v + i * r, temperature_degc)
        end = np.minimum(np.maximum(self.config.soc_floor, cut), z)
        energy = q * (self.ocv_integral(end, z, temperature_degc) - i * r * (z - end))
        return np.maximum(energy, 0.0)

    # ------------------------------------------------------------------ charge
    def time_to_full_s(self, soc: ArrayLike, capacity_ah: ArrayLike, resistance_ohm: ArrayLike,
                       temperature_degc: ArrayLike, current_a: float) -> float:
        """Time (s) until the first cell reaches the SoC ceiling charging CC-CV at ``current_a``.

        inf when the current is below the termination current or the ceiling is out of reach.
        """
        cfg = self.config
        z = np.clip(np.asarray(soc, dtype=float), 0.0, 1.0)
        q = np.asarray(capacity_ah, dtype=float)
        r = np.asarray(resistance_ohm, dtype=float)
        i_cc = float(current_a)
        i_term = cfg.termination_current_c * self.cell.capacity_ah
        ceiling = cfg.soc_ceiling
        if z.size and np.any(z >= ceiling):
            return 0.0
        if not np.isfinite(i_cc) or i_cc <= i_term or z.size == 0:
            return float('inf')
        z_cv = self.soc_from_ocv(self.cv_v - i_cc * r, temperature_degc)
        z_cv = np.clip(z_cv, z, ceiling)
        t_cc = (z_cv - z) * q * 3600.0 / i_cc
        # CV: I(z) = (V_cv - OCV(z)) / R, dt = 3600 Q dz / I(z), to the ceiling or I_term;
        # locally I decays as exp(-t / tau), tau = R 3600 Q / (dOCV/dz)
        steps = self.config.integration_steps
        frac = np.linspace(0.0, 1.0, steps + 1)[:, None]
        zz = z_cv[None, :] + frac * (ceiling - z_cv)[None, :]
        current = (self.cv_v - self.cell.ocv.ocv(zz, temperature_degc)) / r[None, :]
        current = np.minimum(current, i_cc)
        alive = current > i_term
        inv = np.where(alive, 1.0 / np.maximum(current, 1e-12), 0.0)
        dz = np.diff(zz, axis=0)
        seg_alive = alive[1:] & alive[:-1]
        t_cv = np.sum(0.5 * (inv[1:] + inv[:-1]) * dz * seg_alive, axis=0) * 3600.0 * q
        # the last live step ends where the current meets I_term (linear in between)
        k = np.argmin(seg_alive, axis=0)
        stopped = ~seg_alive.all(axis=0)
        cols = np.arange(z.size)
        if stopped.any():
            i_a, i_b = current[k, cols], current[k + 1, cols]
            part = np.clip((i_a - i_term) / np.maximum(i_a - i_b, 1e-12), 0.0, 1.0)
            extra = np.where(alive[k, cols], part * dz[k, cols] * 3600.0 * q * 2.0 /
                             (np.maximum(i_a, 1e-12) + i_term), 0.0)
            t_cv = t_cv + np.where(stopped, extra, 0.0)
        return float(np.min(t_cc + t_cv))


def _grid_split(steps: int) -> tuple[int, int]:
    """(coarse, fine) step counts with coarse x fine ~ ``steps`` (the end's resolution)."""
    coarse = max(8, round(math.sqrt(steps) * 1.5))
    return coarse, max(2, math.ceil(steps / coarse))


class _March:
    """Pack EMF, mean-load current and the cut-off margin at given delivered charges (Ah)."""

    def __init__(self, model: CellEnergyModel, z0: FloatArray, q: FloatArray, r: FloatArray,
                 t: FloatArray, power: float, peak: float, r_loss: FloatArray,
                 r_pk: FloatArray | None) -> None:
        self.ocv = model.cell.ocv.ocv
        self.cutoff_v = model.cutoff_v
        self.z0, self.inv_q, self.r, self.t = z0, 1.0 / q, r, t
        self.power, self.peak = power, peak
        self.r_loss_pack = float(r_loss.sum())
        self.r_pack = float(r.sum())
        self.r_pk = r_pk
        if r_pk is not None:
            self.r_slow = r - r_pk                   # the RC pair's part a short peak does not see
            self.r_pk_pack = float(r_pk.sum())

    def at(self, charge: FloatArray
           ) -> tuple[FloatArray, FloatArray, NDArray[np.bool_], Callable[[int], str]]:
        """(mean current A, min terminal margin V, bad, end reason of a point) per charge
        point (Ah delivered).
        """
        z = self.z0[None, :] - charge[:, None] * self.inv_q[None, :]
        ocv = np.asarray(self.ocv(z, self.t[None, :]))                   # (points, n)
        emf = ocv.sum(axis=1)
        current, ok = _current_at_power(emf, self.r_loss_pack, self.power)
        if self.r_pk is None:
            peak_current, peak_ok = _current_at_power(emf, self.r_pack, self.peak)
            terminal = ocv - peak_current[:, None] * self.r[None, :]
        else:
            # the RC pair carries the mean load (its drop behind the EMF); the peak draws its
            # power through r_pk from what is left
            behind = ocv - current[:, None] * self.r_slow[None, :]
            peak_current, peak_ok = _current_at_power(behind.sum(axis=1), self.r_pk_pack,
                                                      self.peak)
            terminal = behind - peak_current[:, None] * self.r_pk[None, :]
        margin = terminal.min(axis=1) - self.cutoff_v
        feasible = ok & peak_ok
        bad = (margin < 0.0) | ~feasible
        return current, margin, bad, lambda k: 'cutoff' if feasible[k] else 'power'


def _integral_table(grid: FloatArray, values: ArrayLike) -> Table:
    """(integral from 0 to each grid point, values, slope of each interval) of the linear
    interpolation of ``values`` on ``grid``.
    """
    v = np.asarray(values, dtype=float)
    seg = 0.5 * (v[1:] + v[:-1]) * np.diff(grid)
    return (np.concatenate([[0.0], np.cumsum(seg)]), v, np.diff(v) / np.diff(grid))


def _current_at_power(emf_v: ArrayLike, r_ohm: float, power_w: float
                      ) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Current (A, >= 0) that draws ``power_w`` from an EMF behind R: P = (E - I R) I.

    Returns (current, ok): ok is False where the power exceeds E^2 / 4R (unreachable).
    """
    emf = np.asarray(emf_v, dtype=float)
    if power_w <= 0.0:
        return np.zeros_like(emf), np.ones(emf.shape, dtype=bool)
    if r_ohm <= 0.0:
        return power_w / np.maximum(emf, 1e-9), emf > 0.0
    disc = emf * emf - 4.0 * r_ohm * power_w
    ok = disc >= 0.0
    current = (emf - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * r_ohm)
    return current, ok
