"""Simulated battery pack: per-cell equivalent circuit, lumped thermal model, contactors, DC link.

One concept per module:

* ``config``: the ``simulator:`` section (SimulatorConfig, NoiseConfig, ChargerConfig,
  FadedCell) and check_command_timeout;
* ``model``: PackModel, the cells (equivalent circuit, charge counting, spreads), its step
  and what the BMS slave measures (noise, faulty readings) and the ground truth;
* ``contactors``: contactors with delays, pre-charge and the DC link          (mixin);
* ``thermal``: per-cell lumped thermal model and the temperature sensors     (mixin);
* ``charger``: the demand (external, charger, load profile) and the CC-CV charger (mixin);
* ``faults``: fault injection (the faults: core/sim_faults)                 (mixin);
* ``state``: the model's attributes with types and units, shared by the mixins;
* ``watchdog``: CommandWatchdog, the pack's contactor and balancing command timeouts.

Current sign: + = charging, - = discharging, for the pack and for every cell.
"""
from ..sim_faults import CONTACTORS, FaultError
from .config import (
    SIMULATOR_FIELDS,
    ChargerConfig,
    FadedCell,
    NoiseConfig,
    SimulatorConfig,
    check_command_timeout,
)
from .model import SPREAD_TRUNCATION, PackModel
from .watchdog import CommandWatchdog

__all__ = ['PackModel', 'SimulatorConfig', 'CommandWatchdog', 'check_command_timeout',
           'NoiseConfig', 'FadedCell', 'ChargerConfig', 'CONTACTORS', 'FaultError',
           'SIMULATOR_FIELDS', 'SPREAD_TRUNCATION']
