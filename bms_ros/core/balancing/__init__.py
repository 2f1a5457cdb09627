"""Passive (bleed-resistor) cell balancing, one concept per module.

* ``config``: the ``balancing:`` section (BalancingConfig) and the mode numbers;
* ``voltage``: voltage-based top balancing on clean (bleed-off) voltages;
* ``soc``: SoC-based balancing, a plan of charge to remove per cell;
* ``thermal``: the bleed resistors' first-order thermal model and the thermal lock-outs;
* ``controller``: BalancingController, which takes the inputs, holds balancing off when they
  are missing, stale or unsafe, asks the mode's strategy and chooses the cells to bleed.
"""
from .config import (
                     MAX_SOC_THRESHOLD,
                     MAX_THRESHOLD_V,
                     MODE_NAMES,
                     MODE_OFF,
                     MODE_SOC,
                     MODE_VOLTAGE,
                     MODES,
                     BalancingConfig,
)
from .controller import BalancingController, BalancingResult

__all__ = ['BalancingConfig', 'BalancingController', 'BalancingResult', 'MODES', 'MODE_NAMES',
           'MODE_OFF', 'MODE_VOLTAGE', 'MODE_SOC', 'MAX_THRESHOLD_V', 'MAX_SOC_THRESHOLD']
