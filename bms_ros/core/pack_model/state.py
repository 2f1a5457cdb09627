"""The simulated pack's attributes, declared once with their types and units.

PackModel (model.py) sets them; its mixins (contactors.py, thermal.py, charger.py, faults.py)
read and write the same attributes rather than copying them (core/ageing.py and the tests set
some directly), and inherit this class so each one is type-checked on its own. Annotations
only: no values, no behaviour.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from ..cell import CellSpec
    from ..load_profile import LoadProfile
    from ..profile import PackSpec
    from ..sim_faults import FaultSet
    from .config import ChargerConfig, SimulatorConfig
    from .contactors import Contactors

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.intp]


class PackModelState:
    """Attributes of PackModel; a per-cell array has one value per series cell."""

    pack: PackSpec
    config: SimulatorConfig
    cell: CellSpec                 # one series element (p cells in parallel)
    step_s: float                  # model step, simulated s
    cells: int                     # series cells
    sensors: int                   # temperature sensors
    sim_time_s: float              # simulated time, s
    _pending_s: float              # simulated s not yet stepped (advance)

    # cells: drawn once from the seed, and the electrical state
    capacity_ah: FloatArray
    r0_factor: FloatArray          # R0 / the cell file's R0 (spread, faded cells)
    r1_ohm: FloatArray
    tau1_s: float
    self_discharge_a: FloatArray   # magnitude
    soc: FloatArray                # 0..1
    rc_v: FloatArray               # RC pair voltage, V
    ocv_v: FloatArray
    r0_ohm: FloatArray
    cell_current_a: FloatArray     # + = charging
    bleed_current_a: FloatArray
    cell_voltages_v: FloatArray    # terminal voltage
    bleed: BoolArray               # bleed resistor on
    pack_voltage_v: float
    pack_current_a: float          # + = charging
    demand_current_a: float        # demanded current of the last step, + = charging
    _rc_decay: float               # exp(-step_s / tau1_s)
    _ah_per_as: FloatArray         # SoC per A of one step
    _r1_gain: FloatArray           # ohm: r1_ohm (1 - _rc_decay), the RC pair's step gain
    _r1_gain_of: FloatArray        # the r1_ohm array _r1_gain was computed from
    _docv_dt: FloatArray | None    # V/degC on the cell's OCV SoC grid; None: isothermal table

    # thermal
    temperatures_degc: FloatArray
    ambient_degc: float
    cooling_w_per_k: float         # one series element to ambient
    heat_capacity_j_per_k: float   # one series element
    _g_total: FloatArray           # W/K: cooling + neighbour conductances
    _thermal_decay: FloatArray     # exp(-step_s g_total / heat capacity)
    _g_nb: float                   # W/K to each neighbour
    _sensor_of_cell: IntArray
    _cells_per_sensor: IntArray
    _every_sensor_covered: bool    # every sensor covers at least one cell
    _sensor_fallback: IntArray     # the cell a sensor that covers none reads

    # contactors, DC link, faults
    _contactors: Contactors
    link_voltage_v: float
    faults: FaultSet

    # demand and charger
    load: LoadProfile
    charger: ChargerConfig         # every value set (from the cell's datasheet where unset)
    charger_enabled: bool          # plugged in (the node: while the pack is in CHARGE)
    charge_limit_a: float | None   # the BMS's allowed charge current, A (None: unknown)
    charger_phase: str             # off, CC, CV, done
    _override_a: float | None      # A, or W when _override_is_power
    _override_is_power: bool
    _override_at_s: float
