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
from dataclasses import dataclass

import numpy as np

from ..ocv import REFERENCE_TEMPERATURE_DEGC

WH_PER_V_AH = 1.0           # V x Ah = Wh


@dataclass
class Discharge:
    """Result of one discharge integration (pack values; energy in Wh at the terminals)."""

    energy_wh: float           # delivered at the terminals, losses subtracted
    time_s: float              # inf at zero power
    charge_ah: float           # delivered charge
    end: str                   # 'floor', 'cutoff', 'power' (the pack cannot deliver P) or 'empty'
    cell_energy_wh: np.ndarray  # each cell's share of energy_wh


class CellEnergyModel:
    """OCV integrals, resistances and the discharge / charge predictions of one cell type."""

    def __init__(self, cell, config):
        self.cell = cell
        self.config = config
        ocv = cell.ocv
        self.grid = ocv.soc_grid
        self.cutoff_v = config.cutoff_voltage_v or cell.limits.voltage_min_v
        self.cv_v = config.cv_voltage_v or cell.limits.voltage_max_v
        # cumulative integrals of the piecewise-linear OCV (and its entropic term) over SoC
        self._ocv_cum = _cumulative(self.grid, ocv.ocv_grid_v)
        self._dt_cum = _cumulative(self.grid, ocv.docv_dt_v_per_degc)

    # ------------------------------------------------------------------ building blocks
    def ocv_integral(self, soc_lo, soc_hi, temperature_degc=REFERENCE_TEMPERATURE_DEGC):
        """Integral of OCV(z, T) dz from soc_lo to soc_hi (V per unit SoC; x Q in Ah = Wh)."""
        lo = np.clip(soc_lo, 0.0, 1.0)
        hi = np.clip(soc_hi, 0.0, 1.0)
        base = self._primitive(self._ocv_cum, self.cell.ocv.ocv_grid_v, hi) - \
            self._primitive(self._ocv_cum, self.cell.ocv.ocv_grid_v, lo)
        entropic = self._primitive(self._dt_cum, self.cell.ocv.docv_dt_v_per_degc, hi) - \
            self._primitive(self._dt_cum, self.cell.ocv.docv_dt_v_per_degc, lo)
        return base + entropic * (np.asarray(temperature_degc, dtype=float)
                                  - REFERENCE_TEMPERATURE_DEGC)

    def _primitive(self, cumulative, values, z):
        """Exact integral from 0 to z of the linear interpolation of ``values`` on the grid."""
        g = self.grid
        k = np.clip(np.searchsorted(g, z, side='right') - 1, 0, g.size - 2)
        dz = z - g[k]
        slope = (values[k + 1] - values[k]) / (g[k + 1] - g[k])
        return cumulative[k] + values[k] * dz + 0.5 * slope * dz * dz

    def resistance_ohm(self, cell_r0_ohm, temperature_degc):
        """R0(T) + R1 per cell (ohm) from the estimate's R0 (normalised to 25 degC)."""
        t = np.asarray(temperature_degc, dtype=float)
        r0 = np.asarray(cell_r0_ohm, dtype=float) * self.cell.r0_at(t) / self.cell.r0_ohm
        return r0 + self.cell.r1_ohm * np.asarray(cell_r0_ohm, dtype=float) / self.cell.r0_ohm

    # ------------------------------------------------------------------ discharge
    def peak_resistance_ohm(self, cell_r0_ohm, temperature_degc, peak_s=10.0):
        """R0(T) + R1 (1 - exp(-peak_s / tau1)) per cell: what a peak of ``peak_s`` meets."""
        t = np.asarray(temperature_degc, dtype=float)
        r0 = np.asarray(cell_r0_ohm, dtype=float)
        return r0 * self.cell.r0_at(t) / self.cell.r0_ohm + self.cell.r1_ohm * r0 \
            / self.cell.r0_ohm * (1.0 - np.exp(-peak_s / self.cell.tau1_s))

    def discharge(self, soc, capacity_ah, resistance_ohm, temperature_degc, power_w,
                  peak_power_w=None, loss_factor=1.0, peak_resistance_ohm=None):
        """Integrate a discharge at constant pack power ``power_w`` (W drawn, >= 0).

        ``peak_power_w`` (default ``power_w``) is the load the cut-off voltage is judged at,
        through ``peak_resistance_ohm`` per cell (default ``resistance_ohm``: a sustained peak)
        on top of the mean load's drop; ``loss_factor`` scales the I^2 R losses
        (E[P^2] / E[P]^2 of a varying load).
        """
        cfg = self.config
        z0 = np.clip(np.asarray(soc, dtype=float), 0.0, 1.0)
        q = np.asarray(capacity_ah, dtype=float)
        r = np.asarray(resistance_ohm, dtype=float)
        t = np.broadcast_to(np.asarray(temperature_degc, dtype=float), z0.shape)
        n_cells = z0.size
        power = max(float(power_w), 0.0)
        peak = power if peak_power_w is None else max(float(peak_power_w), power)
        deliverable = float(np.min((z0 - cfg.soc_floor) * q)) if n_cells else 0.0
        zero = np.zeros(n_cells)
        if not np.isfinite(deliverable) or deliverable <= 0.0:
            return Discharge(0.0, 0.0, 0.0, 'empty', zero)
        steps = cfg.integration_steps
        charge = np.linspace(0.0, deliverable, steps + 1)                  # Ah
        z = z0[None, :] - charge[:, None] / q[None, :]
        ocv = self.cell.ocv.ocv(z, t[None, :])                            # (steps+1, n)
        emf = ocv.sum(axis=1)
        r_pack = float(r.sum())
        current, ok = _current_at_power(emf, r_pack * loss_factor, power)
        if peak_resistance_ohm is None:
            peak_current, peak_ok = _current_at_power(emf, r_pack, peak)
            terminal = ocv - peak_current[:, None] * r[None, :]
        else:
            r_pk = np.asarray(peak_resistance_ohm, dtype=float)
            # the RC pair carries the mean load (its drop behind the EMF); the peak draws its
            # power through r_pk from what is left
            behind = ocv - current[:, None] * (r - r_pk)[None, :]
            peak_current, peak_ok = _current_at_power(behind.sum(axis=1), float(r_pk.sum()),
                                                      peak)
            terminal = behind - peak_current[:, None] * r_pk[None, :]
        margin = np.min(terminal, axis=1) - self.cutoff_v
        bad = (margin < 0.0) | ~ok | ~peak_ok
        end_reason = 'floor'
        last = steps
        frac = 1.0
        if bad.any():
            k = int(np.argmax(bad))
            end_reason = 'cutoff' if (ok[k] and peak_ok[k]) else 'power'
            if k == 0:
                return Discharge(0.0, 0.0, 0.0, end_reason, zero)
            last = k
            # cross the cut-off margin linearly inside the last step
            if end_reason == 'cutoff' and margin[k - 1] > margin[k]:
                frac = float(np.clip(margin[k - 1] / (margin[k - 1] - margin[k]), 0.0, 1.0))
            else:
                frac = 0.0
        # per-cell terminal voltage along the way (losses at the mean-load current)
        cell_v = ocv - (current * loss_factor)[:, None] * r[None, :]
        dq = np.diff(charge)
        w = np.ones(steps)
        w[last:] = 0.0
        if last < steps + 1 and last >= 1:
            w[last - 1] = frac if bad.any() else 1.0
        seg_cell = 0.5 * (cell_v[1:] + cell_v[:-1]) * (dq * w)[:, None]   # Wh per step, cell
        cell_energy = seg_cell.sum(axis=0) * WH_PER_V_AH
        delivered = float(np.sum(dq * w))
        if power > 0.0:
            inv = np.where(current > 0.0, 1.0 / np.maximum(current, 1e-12), 0.0)
            time_s = float(np.sum(0.5 * (inv[1:] + inv[:-1]) * dq * w) * 3600.0)
        else:
            time_s = float('inf')
        return Discharge(float(cell_energy.sum()), time_s, delivered, end_reason, cell_energy)

    def cell_remaining_energy_wh(self, soc, capacity_ah, resistance_ohm, temperature_degc,
                                 current_a):
        """Each cell's energy down to its own floor at a discharge current (A, >= 0), Wh."""
        z = np.clip(np.asarray(soc, dtype=float), 0.0, 1.0)
        q = np.asarray(capacity_ah, dtype=float)
        r = np.asarray(resistance_ohm, dtype=float)
        i = max(float(current_a), 0.0)
        cut = self.cell.ocv.soc_from_ocv(self.cutoff_v + i * r, temperature_degc)
        end = np.minimum(np.maximum(self.config.soc_floor, cut), z)
        energy = q * (self.ocv_integral(end, z, temperature_degc) - i * r * (z - end))
        return np.maximum(energy, 0.0)

    # ------------------------------------------------------------------ charge
    def time_to_full_s(self, soc, capacity_ah, resistance_ohm, temperature_degc, current_a):
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
        z_cv = self.cell.ocv.soc_from_ocv(self.cv_v - i_cc * r, temperature_degc)
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


def _cumulative(grid, values):
    """Integral from 0 to each grid point of the linear interpolation of ``values``."""
    seg = 0.5 * (values[1:] + values[:-1]) * np.diff(grid)
    return np.concatenate([[0.0], np.cumsum(seg)])


def _current_at_power(emf_v, r_ohm, power_w):
    """Current (A, >= 0) that draws ``power_w`` from an EMF behind R: P = (E - I R) I.

    Returns (current, ok): ok is False where the power exceeds E^2 / 4R (unreachable)."""
    emf = np.asarray(emf_v, dtype=float)
    if power_w <= 0.0:
        return np.zeros_like(emf), np.ones(emf.shape, dtype=bool)
    if r_ohm <= 0.0:
        return power_w / np.maximum(emf, 1e-9), emf > 0.0
    disc = emf * emf - 4.0 * r_ohm * power_w
    ok = disc >= 0.0
    current = (emf - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * r_ohm)
    return current, ok
