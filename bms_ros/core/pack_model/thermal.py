"""Lumped thermal model of the simulated pack, per series cell, and its temperature sensors.

Exact for the cooling term (neighbour temperatures held over a step):
    m cp dT/dt = i_cell^2 R0 + v_rc^2 / r1 + bleed heat + thermal-event heat
                 - cooling (T - ambient) - g_nb * sum(T - T_neighbour)
A sensor reads the mean of the cells it covers (PackSpec.sensor_of_cell). A mixin of PackModel.
"""
from __future__ import annotations

import math

import numpy as np

from .state import FloatArray, PackModelState


class ThermalMixin(PackModelState):
    """PackModel's temperatures: constants, one step, ambient, sensors."""

    def _init_thermal(self) -> None:
        """The constants of the exact discretisation and the sensors' cover of the cells."""
        n, config, pack = self.cells, self.config, self.pack
        heat_capacity_j_per_k = self.cell.mass_kg * self.cell.heat_capacity_j_per_kg_k
        neighbours = np.full(n, 2.0)
        neighbours[[0, -1]] = 1.0
        if n == 1:
            neighbours[:] = 0.0
        g_nb = config.neighbour_conductance_w_per_k
        # cooling of one series element (a group of parallel cells) to ambient, W/K
        self.cooling_w_per_k = self.cell.cooling_w_per_k if config.cooling_w_per_k is None \
            else config.cooling_w_per_k * pack.cells_parallel
        self.heat_capacity_j_per_k = heat_capacity_j_per_k
        self._g_total = self.cooling_w_per_k + g_nb * neighbours
        self._thermal_decay = np.exp(-self.step_s * self._g_total / heat_capacity_j_per_k)
        self._g_nb = g_nb
        # temperature sensors: mean of the cells each covers; a sensor with no cell reads the
        # nearest one (more sensors than cells)
        self._sensor_of_cell = pack.sensor_of_cell()
        self._cells_per_sensor = np.bincount(self._sensor_of_cell, minlength=self.sensors)
        self._every_sensor_covered = bool(np.all(self._cells_per_sensor > 0))
        self._sensor_fallback = np.minimum(
            n - 1, (np.arange(self.sensors) * n) // self.sensors)

    def _thermal_step(self, i_cell: FloatArray, rc: FloatArray, r0: FloatArray,
                      bleed_a: FloatArray | None, temperatures: FloatArray) -> None:
        """Advance the temperatures one step from ``temperatures`` (degC, the step's start):
        Joule heat in R0 and R1 (cell current A, RC voltage V), bleed heat (``bleed_a``, A;
        None: no cell bleeds), injected heat.
        """
        heat_w = i_cell * i_cell
        heat_w *= r0
        heat_w += rc * rc / self.r1_ohm
        if bleed_a is not None:    # else + 0.0: the Joule heat is never -0.0, so it is skipped
            heat_w += bleed_a * bleed_a * self.config.bleed_resistance_ohm
        heat_w += self.faults.thermal_event_w
        drive_w = heat_w
        drive_w += self.cooling_w_per_k * self.ambient_degc
        if self._g_nb > 0.0:
            around = np.zeros(self.cells)
            around[1:] += temperatures[:-1]
            around[:-1] += temperatures[1:]
            around *= self._g_nb
            drive_w += around
        drive_w /= self._g_total
        t_inf = drive_w
        change = temperatures - t_inf
        change *= self._thermal_decay
        change += t_inf
        self.temperatures_degc = change

    @property
    def thermal_time_constant_s(self) -> float:
        """s: heat capacity / cooling of one series element (the whole pack cools with it)."""
        return self.heat_capacity_j_per_k / self.cooling_w_per_k

    def set_ambient(self, degc: float) -> None:
        """Set the ambient temperature (degC); ValueError outside -60..100 degC."""
        degc = float(degc)
        if not (math.isfinite(degc) and -60.0 <= degc <= 100.0):
            raise ValueError(f'ambient must be in -60..100 degC, got {degc}')
        self.ambient_degc = degc

    def sensor_temperatures_degc(self) -> FloatArray:
        """True temperature at each sensor: the mean of the cells it covers (degC)."""
        sums = np.bincount(self._sensor_of_cell, weights=self.temperatures_degc,
                           minlength=self.sensors)
        counts = self._cells_per_sensor
        if self._every_sensor_covered:      # the usual case: no sensor reads a fallback cell
            return sums / counts
        return np.where(counts > 0, sums / np.maximum(counts, 1),
                        self.temperatures_degc[self._sensor_fallback])
