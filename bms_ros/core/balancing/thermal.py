"""First-order thermal model of the bleed resistors and the per-cell thermal lock-outs."""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from .config import BalancingConfig


class BleedThermalModel:
    """Resistor temperatures (first order towards cell temperature + P x R_th) and lock-outs.

    A cell is locked out while its temperature is at or above ``max_cell_temperature_degc`` or
    its resistor at or above ``resistor_max_temperature_degc`` (both released below the limit
    minus ``temperature_hysteresis_degc``); an invalid or stale sensor locks its cells out.
    """

    def __init__(self, config: BalancingConfig, cells_series: int) -> None:
        self.config = config
        self.n = int(cells_series)
        # per resistor, initialised from the cell temperature
        self.temperature_degc: NDArray[np.float64] | None = None
        self.hot_cell = np.zeros(self.n, dtype=bool)
        self.hot_resistor = np.zeros(self.n, dtype=bool)

    def advance(self, ambient_degc: NDArray[np.float64], power_w: NDArray[np.float64],
                dt_s: float) -> None:
        """Step the resistor temperatures over ``dt_s`` s with ``power_w`` W per resistor.

        :param ambient_degc: cell temperature of each resistor, degC (NaN = unknown sensor).
        """
        ambient = ambient_degc
        if not np.all(np.isfinite(ambient)):
            # unknown sensor: assume the hottest known one (its cells are locked out anyway)
            fallback = float(np.nanmax(ambient)) if np.any(np.isfinite(ambient)) else 25.0
            ambient = np.where(np.isfinite(ambient), ambient, fallback)
        if self.temperature_degc is None:
            self.temperature_degc = ambient.copy()
        decay = math.exp(-dt_s / self.config.resistor_time_constant_s)
        steady = ambient + power_w * self.config.resistor_thermal_resistance_k_per_w
        self.temperature_degc = steady + (self.temperature_degc - steady) * decay

    def lockouts(self, cell_temperatures_degc: NDArray[np.float64], temperatures_stale: bool
                 ) -> NDArray[np.bool_]:
        """Update the lock-outs with hysteresis; True per cell that must not bleed now."""
        cfg = self.config
        cell_t = cell_temperatures_degc
        unknown = ~np.isfinite(cell_t)
        if temperatures_stale:
            unknown[:] = True
        hot_on = cell_t >= cfg.max_cell_temperature_degc
        hot_off = cell_t < cfg.max_cell_temperature_degc - cfg.temperature_hysteresis_degc
        self.hot_cell = ((self.hot_cell | hot_on) & ~hot_off) | unknown
        # before the first advance() the resistors are at their cells' temperature
        r_t = cell_t if self.temperature_degc is None else self.temperature_degc
        r_on = r_t >= cfg.resistor_max_temperature_degc
        r_off = r_t < cfg.resistor_max_temperature_degc - cfg.temperature_hysteresis_degc
        self.hot_resistor = (self.hot_resistor | r_on) & ~r_off
        return np.asarray(self.hot_cell | self.hot_resistor, dtype=bool)
