"""PackModel: the simulated pack's cells (equivalent circuit, charge counting), its step, and
what the BMS slave measures.

Everything is vectorised over the series cells (each a group of parallel cells, see PackSpec).
Current sign: + = charging, - = discharging, for the pack and for every cell.

Per cell i (one RC pair, zero-order hold of the current over a step dt, exact discretisation):
    v_rc[k+1] = v_rc[k] * exp(-dt/tau1) + r1 * (1 - exp(-dt/tau1)) * i_cell
    soc[k+1]  = soc[k] + i_cell * dt / (3600 * capacity_ah)
    v_cell    = OCV(soc, T) + i_cell * R0(T) + v_rc
    i_cell    = i_pack - v_cell / R_bleed (if bleeding) - i_self_discharge
i_pack: from the demand (charger.py) through the contactors and the DC link (contactors.py);
the temperatures follow thermal.py; faults act as faults.py says.
"""
from __future__ import annotations

import math
import os
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import ArrayLike

from ..ocv import REFERENCE_TEMPERATURE_DEGC
from ..sim_faults import FaultSet
from .charger import ChargerMixin
from .config import SimulatorConfig
from .contactors import Contactors, ContactorsMixin
from .faults import FaultsMixin
from .state import FloatArray
from .thermal import ThermalMixin

if TYPE_CHECKING:
    from ..profile import PackSpec, Profile

# spreads are Gaussian, truncated at this many standard deviations so no draw is unphysical
SPREAD_TRUNCATION = 3.0
_INV_298_15 = 1.0 / 298.15     # 1/K, 25 degC (core/cell.arrhenius_factor)
_sum = np.add.reduce           # np.sum's reduction without its Python wrapper
# the readings measured() makes only when asked for (the others cost next to nothing)
_MEASURED_ARRAYS = frozenset(('cell_voltages_v', 'temperatures_degc', 'cell_balancing'))


class PackModel(ContactorsMixin, ThermalMixin, ChargerMixin, FaultsMixin):
    """A simulated pack of ``pack.cells_series`` cells; advance it with step() or advance()."""

    def __init__(self, pack: PackSpec, config: SimulatorConfig | None = None) -> None:
        config = config or SimulatorConfig()
        self.pack = pack
        self.config = config
        self.cell = pack.cell
        self.step_s = config.step_s
        n = self.cells = pack.cells_series
        self.sensors = pack.temperature_sensors
        rng = np.random.default_rng(config.seed)
        # fixed draw order so that one seed always gives the same pack
        capacity_factor = _spread(rng, n, config.capacity_spread_rel)
        r0_factor = _spread(rng, n, config.r0_spread_rel)
        sd_factor = _spread(rng, n, config.self_discharge_spread_rel)
        soc_offset = config.soc_spread * np.clip(rng.standard_normal(n), -SPREAD_TRUNCATION,
                                                 SPREAD_TRUNCATION)
        for faded in config.faded_cells:
            capacity_factor[faded.index] *= faded.capacity_factor
            r0_factor[faded.index] *= faded.r0_factor
        self._noise_rng = np.random.default_rng([config.seed, 1])

        self.capacity_ah = self.cell.capacity_ah * capacity_factor
        self.r0_factor = r0_factor
        self.r1_ohm = self.cell.r1_ohm * r0_factor
        self.tau1_s = self.cell.tau1_s
        self.self_discharge_a = config.self_discharge_a * sd_factor
        self.soc = np.clip(config.initial_soc + soc_offset, 0.0, 1.0)
        self.rc_v = np.zeros(n)
        t0 = config.ambient_degc if config.initial_temperature_degc is None \
            else config.initial_temperature_degc
        self.temperatures_degc = np.full(n, float(t0))
        self.ambient_degc = config.ambient_degc
        self.bleed = np.zeros(n, dtype=bool)
        self.faults = FaultSet(n, self.sensors)
        self.load = config.load
        self.sim_time_s = 0.0
        self.pack_current_a = 0.0
        self.demand_current_a = 0.0
        self.link_voltage_v = 0.0
        self._init_charger()
        self._pending_s = 0.0
        self._contactors = Contactors(config.contactor_closing_delay_s,
                                      config.contactor_opening_delay_s)

        # constants of the exact discretisation
        self._rc_decay = math.exp(-self.step_s / self.tau1_s)
        self._ah_per_as = self.step_s / (3600.0 * self.capacity_ah)
        self._r1_gain = self.r1_ohm * (1.0 - self._rc_decay)
        self._r1_gain_of = self.r1_ohm
        docv_dt = self.cell.ocv.docv_dt_v_per_degc
        self._docv_dt = docv_dt if np.any(docv_dt) else None
        self._init_thermal()

        self.ocv_v = self._ocv(self.soc, self.temperatures_degc)
        self.r0_ohm = self._r0(self.temperatures_degc)
        self.cell_current_a = np.zeros(n)
        self.bleed_current_a = np.zeros(n)
        self.cell_voltages_v = self.ocv_v + self.rc_v
        self.pack_voltage_v = float(self.cell_voltages_v.sum())
        for fault, index, value in config.faults:
            self.inject_fault(fault, index, value)

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_profile(cls, profile: Profile | str | os.PathLike[str]) -> PackModel:
        """A model from a Profile (or a profile path) and its validated `simulator:` section."""
        if isinstance(profile, (str, os.PathLike)):
            from ..profile import Profile
            profile = Profile(profile)
        config = SimulatorConfig.from_section(profile.section('simulator'), profile.pack)
        return cls(profile.pack, config)

    # ----------------------------------------------------------------- commands

    def set_bleed(self, cell_bleed: ArrayLike) -> None:
        """Command the bleed resistors, one bool per cell (true = bleed)."""
        mask = np.asarray(cell_bleed, dtype=bool)
        if mask.shape != (self.cells,):
            raise ValueError(f'cell_bleed: expected {self.cells} values, got {mask.size}')
        self.bleed = mask.copy()

    # ----------------------------------------------------------------- simulation

    def advance(self, duration_s: float) -> int:
        """Advance by ``duration_s`` of simulated time in whole steps; returns steps taken."""
        self._pending_s += duration_s
        steps = int(self._pending_s / self.step_s + 1e-9)
        self._pending_s -= steps * self.step_s
        for _ in range(steps):
            self.step()
        return steps

    def step(self) -> None:
        """Advance one step of ``step_s`` simulated seconds."""
        # Cheap per step on a few dozen cells, where each numpy call costs more than its
        # arithmetic: no term that is exactly zero (no cell bleeding) is computed, constants
        # are cached, temporaries are reused in place (a + b as b + a: the same bits); every
        # other operation is the same in the same order (test_pack_model_equivalence).
        dt = self.step_s
        now = self.sim_time_s
        faults = self.faults
        self._contactors.update(now, faults.contactor_welded, faults.contactor_stuck_open)
        negative, positive, _ = self._contactors.actual
        demand = self.demand_a(now)
        self.demand_current_a = demand
        temperatures = self.temperatures_degc
        r0 = self._r0(temperatures)
        bleed = self.bleed
        bleeding = bool(bleed.any())
        # bleed from the last terminal voltage: it changes little within a step
        bleed_a = np.where(bleed, self.cell_voltages_v / self.config.bleed_resistance_ohm,
                           0.0) if bleeding else np.zeros(self.cells)
        i_pack = self._link_step(demand, r0, dt)     # from the pack EMF at the step's start
        # i_pack - 0.0 is i_pack: without bleeding the zeros are not subtracted
        i_cell = (i_pack - bleed_a if bleeding else i_pack) - self.self_discharge_a
        if self._r1_gain_of is not self.r1_ohm:         # R1 was set (core/ageing)
            self._r1_gain = self.r1_ohm * (1.0 - self._rc_decay)
            self._r1_gain_of = self.r1_ohm
        rc = self.rc_v * self._rc_decay
        rc += self._r1_gain * i_cell
        self.rc_v = rc
        soc = i_cell * self._ah_per_as
        soc += self.soc
        self.soc = soc.clip(0.0, 1.0, out=soc)
        self._thermal_step(i_cell, rc, r0, bleed_a if bleeding else None, temperatures)
        ocv = self._ocv(soc, self.temperatures_degc)
        self.ocv_v = ocv
        self.r0_ohm = r0
        self.cell_current_a = i_cell
        self.bleed_current_a = bleed_a
        cell_voltages = i_cell * r0
        cell_voltages += ocv
        cell_voltages += rc
        self.cell_voltages_v = cell_voltages
        self.pack_voltage_v = float(_sum(cell_voltages))
        self.pack_current_a = i_pack
        if negative and positive:
            self.link_voltage_v = self.pack_voltage_v
        self.sim_time_s += dt

    def _r0(self, temperatures_degc: FloatArray) -> FloatArray:
        """R0 per cell at these temperatures (ohm): the cell's R0(T) x its spread factor."""
        # CellSpec.r0_at and arrhenius_factor inlined, the same operations in the same order
        cell = self.cell
        kelvin = temperatures_degc + 273.15
        factor = np.exp(cell.r0_arrhenius_k * (1.0 / kelvin - _INV_298_15))
        return cell.r0_ohm * factor * self.r0_factor

    def _ocv(self, soc: FloatArray, temperatures_degc: FloatArray) -> FloatArray:
        """OCV per cell (V) at ``soc`` (0..1) and these temperatures (degC)."""
        # OcvTable.ocv inlined without its clip: the model's SoC is already inside 0..1
        table = self.cell.ocv
        base = np.interp(soc, table.soc_grid, table.ocv_grid_v)
        slope = self._docv_dt
        dt = 0.0 if slope is None else np.interp(soc, table.soc_grid, slope)
        return cast('FloatArray', base + dt * (temperatures_degc - REFERENCE_TEMPERATURE_DEGC))

    # ----------------------------------------------------------------- outputs

    def measured(self, fields: Collection[str] | None = None) -> dict[str, Any]:
        """The measurement as the BMS slave reports it, named as PackMeasurement fields.

        Seeded Gaussian noise on every analogue value; NaN for a failed reading; the current
        is + = charging and includes the current-sensor offset fault. ``fields``: only these
        (None: all); the noise of every value is drawn all the same, so the readings do not
        depend on which were asked for.
        """
        noise = self.config.noise
        faults = self.faults
        n, sensors = self.cells, self.sensors
        # one draw in the order the values take it: cells, sensors, current, pack, link
        draw = self._noise_rng.standard_normal(n + sensors + 3)
        want = _MEASURED_ARRAYS if fields is None else fields
        out: dict[str, Any] = {}
        if 'cell_voltages_v' in want:
            cells = self.cell_voltages_v + noise.cell_voltage_v * draw[:n]
            stuck = faults.stuck_cell_voltage_v
            cells = np.where(np.isfinite(stuck), stuck, cells)
            cells[faults.open_wire] = np.nan
            out['cell_voltages_v'] = cells
        if 'temperatures_degc' in want:
            temps = self.sensor_temperatures_degc() + noise.temperature_degc * draw[n:n + sensors]
            temps[faults.temperature_dropout] = np.nan
            out['temperatures_degc'] = temps
        k = n + sensors
        out['pack_current_a'] = self.pack_current_a + faults.current_offset_a \
            + noise.current_a * float(draw[k])
        out['pack_voltage_v'] = max(0.0, self.pack_voltage_v
                                    + noise.pack_voltage_v * float(draw[k + 1]))
        out['link_voltage_v'] = max(0.0, self.link_voltage_v
                                    + noise.link_voltage_v * float(draw[k + 2]))
        actual = self._contactors.actual
        out['negative_contactor_closed'] = actual[0]
        out['positive_contactor_closed'] = actual[1]
        out['precharge_relay_closed'] = actual[2]
        if 'cell_balancing' in want:
            out['cell_balancing'] = self.bleed.copy()
        return out

    def truth(self) -> dict[str, Any]:
        """Ground truth named as the bms_interfaces/SimTruth fields."""
        return {
            'cell_soc': self.soc.copy(),
            'cell_voltages_v': self.cell_voltages_v.copy(),
            'cell_ocv_v': self.ocv_v.copy(),
            'cell_temperatures_degc': self.temperatures_degc.copy(),
            'cell_capacity_ah': self.capacity_ah.copy(),
            'cell_r0_ohm': self.r0_ohm.copy(),
            'pack_current_a': self.pack_current_a,
            'pack_voltage_v': self.pack_voltage_v,
            'link_voltage_v': self.link_voltage_v,
            'negative_contactor_closed': self.negative_contactor_closed,
            'positive_contactor_closed': self.positive_contactor_closed,
            'precharge_relay_closed': self.precharge_relay_closed,
            'cell_bleed': self.bleed.copy(),
            'sim_time_s': self.sim_time_s,
        }


def _spread(rng: np.random.Generator, n: int, relative_std: float) -> FloatArray:
    """Factors 1 + N(0, relative_std), truncated at SPREAD_TRUNCATION standard deviations."""
    draw = np.clip(rng.standard_normal(n), -SPREAD_TRUNCATION, SPREAD_TRUNCATION)
    return 1.0 + relative_std * draw
