"""Datasheet description of one cell type, loaded from config/cells/*.yaml."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .config import Section
from .ocv import FloatOrArray, OcvTable

CHEMISTRIES = ('NMC', 'LFP', 'NCA', 'LMO', 'LCO')


def arrhenius_factor(temperature_degc: ArrayLike, activation_k: float) -> FloatOrArray:
    """R(T) / R(25 degC) = exp(k (1/T - 1/298.15 K)) for k = Ea/R (K); 1 at 25 degC."""
    kelvin = np.asarray(temperature_degc, dtype=float) + 273.15
    return np.exp(activation_k * (1.0 / kelvin - 1.0 / 298.15))


@dataclass(frozen=True)
class CellLimits:
    """Absolute limits of one cell (datasheet); currents are magnitudes."""

    voltage_min_v: float
    voltage_max_v: float
    charge_current_max_a: float
    discharge_current_max_a: float
    charge_temperature_min_degc: float
    charge_temperature_max_degc: float
    discharge_temperature_min_degc: float
    discharge_temperature_max_degc: float


@dataclass(frozen=True)
class CellSpec:
    """One cell: capacity, OCV table, equivalent-circuit and thermal parameters, limits."""

    name: str
    chemistry: str
    capacity_ah: float
    ocv: OcvTable
    r0_ohm: float
    r1_ohm: float
    tau1_s: float
    r0_arrhenius_k: float
    mass_kg: float
    heat_capacity_j_per_kg_k: float
    cooling_w_per_k: float
    limits: CellLimits
    path: str = ''
    # OCV hysteresis (estimation.hysteresis): half the gap between the charge and discharge
    # OCV (V) and how fast it follows the charge passed (per unit SoC); 0: none
    hysteresis_v: float = 0.0
    hysteresis_rate: float = 0.0

    @property
    def c1_f(self) -> float:
        """C1 of the RC branch (F): tau1 / R1."""
        return self.tau1_s / self.r1_ohm

    def r0_at(self, temperature_degc: ArrayLike) -> FloatOrArray:
        """R0 at a temperature: Arrhenius, R0 * exp(Ea/R * (1/T - 1/298.15 K)); 1x at 25 degC."""
        return self.r0_ohm * arrhenius_factor(temperature_degc, self.r0_arrhenius_k)

    def scaled(self, cells_parallel: int) -> CellSpec:
        """The same cell as a group of ``cells_parallel`` cells in parallel."""
        p = float(cells_parallel)
        lim = self.limits
        return CellSpec(
            name=f'{self.name} x{cells_parallel}p' if cells_parallel != 1 else self.name,
            chemistry=self.chemistry, capacity_ah=self.capacity_ah * p, ocv=self.ocv,
            r0_ohm=self.r0_ohm / p, r1_ohm=self.r1_ohm / p, tau1_s=self.tau1_s,
            r0_arrhenius_k=self.r0_arrhenius_k, mass_kg=self.mass_kg * p,
            heat_capacity_j_per_kg_k=self.heat_capacity_j_per_kg_k,
            cooling_w_per_k=self.cooling_w_per_k * p,
            limits=CellLimits(
                lim.voltage_min_v, lim.voltage_max_v, lim.charge_current_max_a * p,
                lim.discharge_current_max_a * p, lim.charge_temperature_min_degc,
                lim.charge_temperature_max_degc, lim.discharge_temperature_min_degc,
                lim.discharge_temperature_max_degc),
            path=self.path, hysteresis_v=self.hysteresis_v, hysteresis_rate=self.hysteresis_rate)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> CellSpec:
        """Load and validate a cell file; ConfigError names the file and field."""
        top = Section.from_file(path)
        # estimator: the cell's own estimator settings (EstimatorConfig, read by estimate_csv)
        top.reject_unknown(('name', 'chemistry', 'capacity_ah', 'ocv_table', 'ecm', 'thermal',
                            'limits', 'estimator', 'ocv_hysteresis'))
        ecm = top.section('ecm')
        ecm.reject_unknown(('r0_ohm', 'r1_ohm', 'tau1_s', 'r0_arrhenius_k'))
        thermal = top.section('thermal')
        thermal.reject_unknown(('mass_kg', 'heat_capacity_j_per_kg_k', 'cooling_w_per_k'))
        lim = top.section('limits')
        lim.reject_unknown(CellLimits.__dataclass_fields__)
        limits = CellLimits(**{
            name: lim.number(name, exclusive_minimum=0.0 if 'current' in name or 'voltage' in name
                             else None)
            for name in CellLimits.__dataclass_fields__})
        if limits.voltage_min_v >= limits.voltage_max_v:
            raise lim.error('voltage_min_v',
                            f'must be below voltage_max_v ({limits.voltage_max_v})')
        for mode in ('charge', 'discharge'):
            low = getattr(limits, f'{mode}_temperature_min_degc')
            high = getattr(limits, f'{mode}_temperature_max_degc')
            if low >= high:
                raise lim.error(f'{mode}_temperature_min_degc',
                                f'must be below {mode}_temperature_max_degc ({high})')
        ocv = OcvTable.from_csv(top.path_field('ocv_table'))
        hysteresis_v = hysteresis_rate = 0.0
        if top.has('ocv_hysteresis'):
            hys = top.section('ocv_hysteresis')
            hys.reject_unknown(('half_gap_v', 'rate_per_soc'))
            hysteresis_v = hys.number('half_gap_v', minimum=0.0, maximum=0.2)
            hysteresis_rate = hys.number('rate_per_soc', exclusive_minimum=0.0, maximum=1e4)
        spec = cls(
            name=top.string('name'),
            chemistry=top.string('chemistry', choices=CHEMISTRIES),
            capacity_ah=top.number('capacity_ah', exclusive_minimum=0.0),
            ocv=ocv,
            r0_ohm=ecm.number('r0_ohm', exclusive_minimum=0.0),
            r1_ohm=ecm.number('r1_ohm', exclusive_minimum=0.0),
            tau1_s=ecm.number('tau1_s', exclusive_minimum=0.0),
            r0_arrhenius_k=ecm.number('r0_arrhenius_k', 0.0, minimum=0.0),
            mass_kg=thermal.number('mass_kg', exclusive_minimum=0.0),
            heat_capacity_j_per_kg_k=thermal.number('heat_capacity_j_per_kg_k',
                                                    exclusive_minimum=0.0),
            cooling_w_per_k=thermal.number('cooling_w_per_k', exclusive_minimum=0.0),
            limits=limits, path=top.path, hysteresis_v=hysteresis_v,
            hysteresis_rate=hysteresis_rate)
        if not math.isclose(ocv.ocv_grid_v[0], limits.voltage_min_v, abs_tol=0.2) or \
                not math.isclose(ocv.ocv_grid_v[-1], limits.voltage_max_v, abs_tol=0.2):
            raise top.error('ocv_table',
                            f'OCV range {ocv.ocv_grid_v[0]:.2f}..{ocv.ocv_grid_v[-1]:.2f} V '
                            f'does not match limits '
                            f'{limits.voltage_min_v}..{limits.voltage_max_v} V')
        return spec
