"""Ageing and slow faults of a simulated pack over days: capacity fade, R0 growth, leaks.

Pure numpy, vectorised over the series cells; drives a :class:`bms_ros.core.pack_model.PackModel`
between missions without stepping it (hours of rest in one call):

* capacity fade and R0 growth per equivalent full cycle (EFC) and per day (calendar), each cell
  with its own rate (a Gaussian spread around the pack's rate);
* a small leak (internal short) per cell: a current (A, magnitude) that discharges that cell
  only, added to the model's per-cell self-discharge current (``PackModel.self_discharge_a``);
* a rest of any length in closed form (contactors open, only self-discharge and leaks flow;
  the RC voltage and the temperatures relax), and a series charge that puts the same charge
  into every cell until the highest reaches a SoC (a charger does not see single cells).

Current sign: + = charging, as everywhere in bms_ros.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

SECONDS_PER_DAY = 86400.0

# a bms_ros.core.pack_model.PackModel (duck-typed here: pack_model is not typed yet)
Model = Any


@dataclass(frozen=True)
class AgeingRates:
    """Fade and growth rates of one pack (fractions of the new value; >= 0)."""

    capacity_fade_per_efc: float = 2.0e-4      # 0.02 % of capacity per equivalent full cycle
    capacity_fade_per_day: float = 1.0e-4      # calendar ageing
    r0_growth_per_efc: float = 5.0e-4
    r0_growth_per_day: float = 2.0e-4
    cell_spread_rel: float = 0.2               # std of each cell's rates / the pack's rates

    def scaled(self, factor: float) -> AgeingRates:
        """The same rates times ``factor`` (a fast-ageing pack)."""
        return AgeingRates(self.capacity_fade_per_efc * factor,
                           self.capacity_fade_per_day * factor,
                           self.r0_growth_per_efc * factor, self.r0_growth_per_day * factor,
                           self.cell_spread_rel)


class PackAgeing:
    """The ageing state of one pack: throughput (Ah per cell), days, per-cell rate factors."""

    def __init__(self, model: Model, rates: AgeingRates | None = None, seed: int = 0) -> None:
        self.model = model
        self.rates = rates or AgeingRates()
        n = model.cells
        rng = np.random.default_rng([int(seed), 17])
        spread = self.rates.cell_spread_rel
        self.fade_factor = np.clip(1.0 + spread * rng.standard_normal(n), 0.0, None)
        self.growth_factor = np.clip(1.0 + spread * rng.standard_normal(n), 0.0, None)
        self.new_capacity_ah = model.capacity_ah.copy()
        self.new_r0_factor = np.asarray(model.r0_factor, dtype=float).copy()
        self.leak_a = np.zeros(n)
        self.base_self_discharge_a = np.asarray(model.self_discharge_a, dtype=float).copy()
        self.days = 0.0
        self.efc = 0.0
        self._soc_mark = model.soc.copy()

    # ------------------------------------------------------------------ faults
    def set_leak(self, cell: int, leak_a: float) -> None:
        """An internal short of ``leak_a`` (A, magnitude) in ``cell``: its self-discharge."""
        if not 0 <= int(cell) < self.model.cells:
            raise ValueError(f'cell {cell} out of range 0..{self.model.cells - 1}')
        if not math.isfinite(leak_a) or leak_a < 0.0:
            raise ValueError(f'leak must be a finite magnitude >= 0 A, got {leak_a}')
        self.leak_a[int(cell)] = float(leak_a)
        self.model.self_discharge_a = self.base_self_discharge_a + self.leak_a

    # ------------------------------------------------------------------ ageing
    def count_throughput(self) -> None:
        """Add the SoC moved since the last call to the equivalent full cycles (EFC)."""
        moved = np.abs(self.model.soc - self._soc_mark)
        self.efc += 0.5 * float(np.mean(moved))        # one EFC = 1 down + 1 up
        self._soc_mark = self.model.soc.copy()

    def age_to(self, days: float) -> None:
        """Apply the fade and growth reached at ``days`` and the EFC counted so far."""
        self.count_throughput()
        self.days = float(days)
        r = self.rates
        fade = self.fade_factor * (r.capacity_fade_per_efc * self.efc
                                   + r.capacity_fade_per_day * self.days)
        growth = self.growth_factor * (r.r0_growth_per_efc * self.efc
                                       + r.r0_growth_per_day * self.days)
        set_cell_parameters(self.model, self.new_capacity_ah * np.clip(1.0 - fade, 0.3, 1.0),
                            self.new_r0_factor * (1.0 + growth))

    # ------------------------------------------------------------------ between missions
    def rest(self, duration_s: float) -> None:
        """Contactors open for ``duration_s``: see :func:`rest`; ages the calendar."""
        open_contactors(self.model)
        rest(self.model, duration_s)
        self.age_to(self.days + duration_s / SECONDS_PER_DAY)

    def charge_to(self, max_soc: float) -> float:
        """Series charge to ``max_soc`` of the highest cell: see :func:`series_charge`."""
        charge = series_charge(self.model, max_soc)
        self.count_throughput()
        return charge


def set_cell_parameters(model: Model, capacity_ah: ArrayLike, r0_factor: ArrayLike) -> None:
    """Set each cell's capacity (Ah) and R0 factor (R1 follows) of a PackModel in place."""
    capacity = np.asarray(capacity_ah, dtype=float)
    factor = np.asarray(r0_factor, dtype=float)
    if capacity.shape != (model.cells,) or factor.shape != (model.cells,):
        raise ValueError(f'expected {model.cells} values per cell')
    model.capacity_ah = capacity.copy()
    model.r0_factor = factor.copy()
    model.r1_ohm = model.cell.r1_ohm * factor
    # the model's coulomb-counting constant depends on the capacity (PackModel.__init__)
    model._ah_per_as = model.step_s / (3600.0 * model.capacity_ah)
    model.r0_ohm = model.cell.r0_at(model.temperatures_degc) * model.r0_factor


def open_contactors(model: Model) -> None:
    """Command every contactor open and step the model until their feedback reads open."""
    model.set_contactors(False, False, False)
    model.advance(max(model.config.contactor_opening_delay_s, model.step_s) + model.step_s)


def rest(model: Model, duration_s: float, keep_bleed: bool = False) -> None:
    """Advance a PackModel by ``duration_s`` with the contactors open, in closed form.

    Only the self-discharge (and leak) current flows, -self_discharge_a per cell, and with
    ``keep_bleed`` the bleed current of the cells the model bleeds (V / R_bleed, the voltage
    held over the call: call it per sample); the RC voltage settles exactly on that current;
    temperatures relax to ambient through the cell's cooling (neighbours and bleed heat left
    out); the DC link is discharged. The model's clock advances by ``duration_s``. The caller
    opens the contactors first (:func:`open_contactors`).
    """
    duration_s = float(duration_s)
    if duration_s < 0.0 or not math.isfinite(duration_s):
        raise ValueError(f'rest duration must be >= 0 s, got {duration_s}')
    if not keep_bleed:
        model.set_bleed(np.zeros(model.cells, dtype=bool))
    bleed_a = np.where(model.bleed, model.cell_voltages_v / model.config.bleed_resistance_ohm,
                       0.0)
    i_cell = -np.asarray(model.self_discharge_a, dtype=float) * np.ones(model.cells) - bleed_a
    model.soc = np.clip(model.soc + i_cell * duration_s / (3600.0 * model.capacity_ah), 0.0, 1.0)
    decay = math.exp(-duration_s / model.tau1_s)
    model.rc_v = model.rc_v * decay + model.r1_ohm * (1.0 - decay) * i_cell
    cell = model.cell
    thermal = math.exp(-duration_s * cell.cooling_w_per_k
                       / (cell.mass_kg * cell.heat_capacity_j_per_kg_k))
    model.temperatures_degc = model.ambient_degc + (model.temperatures_degc
                                                    - model.ambient_degc) * thermal
    model.ocv_v = cell.ocv.ocv(model.soc, model.temperatures_degc)
    model.r0_ohm = cell.r0_at(model.temperatures_degc) * model.r0_factor
    model.cell_current_a = i_cell
    model.bleed_current_a = bleed_a
    model.cell_voltages_v = model.ocv_v + i_cell * model.r0_ohm + model.rc_v
    model.pack_voltage_v = float(np.sum(model.cell_voltages_v))
    model.pack_current_a = 0.0
    model.link_voltage_v = 0.0
    model.sim_time_s += duration_s


def series_charge(model: Model, max_soc: float) -> float:
    """Put the same charge (Ah) into every cell until the highest reaches ``max_soc``.

    What a charger on a series string does (it sees the pack, not the cells); the string is
    left relaxed (RC voltage 0) at the present temperatures. Returns the charge (Ah, >= 0).
    """
    headroom = (float(max_soc) - model.soc) * model.capacity_ah
    charge_ah = max(float(np.min(headroom)), 0.0)
    model.soc = np.clip(model.soc + charge_ah / model.capacity_ah, 0.0, 1.0)
    model.rc_v = np.zeros(model.cells)
    model.ocv_v = model.cell.ocv.ocv(model.soc, model.temperatures_degc)
    model.cell_voltages_v = model.ocv_v.copy()
    model.pack_voltage_v = float(np.sum(model.cell_voltages_v))
    return charge_ah
