"""A plain 1-RC cell simulation from a CellSpec: the truth for unit tests, the ROS test probe
and the benchmark (numpy, vectorised over cells). Not used by the estimator itself.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from ..cell import CellSpec
    from .estimator import PackEstimator


class EcmCells:
    """``n`` cells of ``cell`` in series with their own SoC, capacity and R0 (truth)."""

    def __init__(self, cell: CellSpec, soc: ArrayLike, capacity_ah: ArrayLike | None = None,
                 r0_ohm: ArrayLike | None = None, temperature_degc: ArrayLike = 25.0) -> None:
        self.cell = cell
        self.soc = np.array(soc, dtype=float, ndmin=1)
        n = self.soc.size
        self.capacity_ah = np.broadcast_to(
            np.asarray(cell.capacity_ah if capacity_ah is None else capacity_ah, dtype=float),
            (n,)).copy()
        self.r0_ohm = np.broadcast_to(
            np.asarray(cell.r0_ohm if r0_ohm is None else r0_ohm, dtype=float), (n,)).copy()
        self.temperature_degc = np.broadcast_to(np.asarray(temperature_degc, dtype=float),
                                                (n,)).copy()
        self.v_rc_v = np.zeros(n)
        self.current_a: ArrayLike = 0.0

    def step(self, dt_s: float, current_a: ArrayLike) -> None:
        """Advance by ``dt_s`` (s) at ``current_a`` (A, + = charging; scalar or per cell)."""
        a = np.exp(-dt_s / self.cell.tau1_s)
        factor = self.cell.r0_at(self.temperature_degc) / self.cell.r0_ohm
        self.soc = self.soc + dt_s * np.asarray(current_a) / (3600.0 * self.capacity_ah)
        self.v_rc_v = a * self.v_rc_v + self.cell.r1_ohm * factor * (1 - a) * np.asarray(current_a)
        self.current_a = current_a

    def voltage_v(self) -> NDArray[np.float64]:
        """Terminal voltage per cell (V) at the present current."""
        factor = self.cell.r0_at(self.temperature_degc) / self.cell.r0_ohm
        return (self.cell.ocv.ocv(self.soc, self.temperature_degc) + self.v_rc_v
                + self.r0_ohm * factor * np.asarray(self.current_a))


def drive_together(estimator: PackEstimator, truth: EcmCells, current_a: float, seconds: int,
          bias_v: float = 0.0, t0_s: float = 0.0, temperature_degc: float = 25.0) -> float:
    """Step ``truth`` and ``estimator`` together at 1 s for ``seconds`` at ``current_a`` (A, + =
    charging), the voltage read ``bias_v`` (V) off the truth's; returns the last time (s).
    """
    valid = np.ones(truth.soc.size, dtype=bool)
    temperature = np.full(truth.soc.size, float(temperature_degc))
    t = t0_s
    for _ in range(seconds):
        t += 1.0
        truth.step(1.0, current_a)
        estimator.step(t, current_a, truth.voltage_v() + bias_v, valid, temperature)
    return t
