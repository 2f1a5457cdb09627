"""Mission feasibility: can the pack fly a power profile within its state of power and reserve?

A mission is a list of segments (duration_s, drawn power W, + = discharging) and/or a path
(length at a speed on level ground, turned into drawn power with the vehicle model of
bms_ros.core.vehicle_load). The pack is stepped through it on the cell model (per-cell SoC,
steady resistance R0(T) + R1, temperature held): each step checks the discharge / charge
current against the estimator's state-of-power limits (bms_ros.core.estimation.state_of_power,
long horizon), a cell's terminal voltage against the cut-off and the SoC floor. Energy needed
is the mission's drawn energy; available is the remaining energy at the mission's mean load;
margin = available - reserve - needed. The safe-return time is the latest time from the start
at which, after following the mission (then its mean load past its end), the pack can still
drive back (return_duration_s at the return power) keeping the reserve (as PX4's).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ..cell import CellSpec
from ..estimation import state_of_power
from ..estimation.config import EstimatorConfig
from ..estimation.estimator import Estimate
from ..vehicle_load import VehicleConfig, pack_power_w, tractive_force_n
from .state_of_energy import CellEnergyModel, _current_at_power

MAX_STEP_S = 10.0
MAX_EXTENSION_S = 48 * 3600.0
EXTENSION_STEP_S = 60.0


@dataclass
class MissionResult:
    """The CheckMission response fields (Wh, %, s)."""

    feasible: bool
    reason: str
    first_failing_segment: int
    failing_time_s: float
    energy_needed_wh: float
    energy_available_wh: float
    reserve_wh: float
    margin_wh: float
    margin_percent: float
    duration_s: float
    safe_return_s: float


def path_segment(vehicle: VehicleConfig, length_m: float, speed_m_per_s: float
                 ) -> tuple[float, float]:
    """(duration_s, drawn power W) of driving ``length_m`` at a constant speed, level ground."""
    if not (length_m > 0.0 and speed_m_per_s > 0.0):
        raise ValueError(f'a path needs length > 0 and speed > 0, got {length_m}, {speed_m_per_s}')
    wheel_w = tractive_force_n(vehicle, speed_m_per_s, 0.0) * speed_m_per_s
    return length_m / speed_m_per_s, -pack_power_w(vehicle, wheel_w)


def validate_segments(durations_s: ArrayLike, powers_w: ArrayLike) -> list[tuple[float, float]]:
    """Segments as a list of (duration_s, drawn W); ValueError on bad lengths or values."""
    d = np.asarray(durations_s, dtype=float)
    p = np.asarray(powers_w, dtype=float)
    if d.shape != p.shape:
        raise ValueError(f'{d.size} durations but {p.size} powers')
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(p))):
        raise ValueError('durations and powers must be finite')
    if np.any(d <= 0.0):
        raise ValueError('every duration must be > 0 s')
    return list(zip(d.tolist(), p.tolist()))


class MissionChecker:
    """Steps a pack state through segments on the cell model (vectorised over cells)."""

    def __init__(self, energy_model: CellEnergyModel, estimator_config: EstimatorConfig,
                 cell: CellSpec) -> None:
        self.model = energy_model
        self.est_config = estimator_config
        self.cell = cell

    def check(self, est: Estimate, temperature_degc: ArrayLike,
              segments: Sequence[tuple[float, float]], return_duration_s: float = 0.0,
              return_drawn_power_w: float = 0.0) -> MissionResult:
        """MissionResult for Estimate ``est`` at cell temperatures ``temperature_degc``."""
        cfg = self.model.config
        nan = float('nan')
        soc = np.asarray(est.cell_soc, dtype=float)
        ok = np.isfinite(soc)
        if not ok.any():
            return MissionResult(False, 'no estimate yet', -1, 0.0, nan, nan, nan, nan, nan,
                                 nan, nan)
        temp = np.asarray(temperature_degc, dtype=float)
        temp = np.where(np.isfinite(temp), temp, 25.0)[ok]
        z = np.clip(soc[ok], 0.0, 1.0)
        q = np.asarray(est.cell_capacity_ah, dtype=float)[ok]
        r0_25 = np.asarray(est.cell_r0_ohm, dtype=float)[ok]
        law_k = getattr(est, 'r0_activation_k', None)        # the estimator's law (None: file's)
        r = self.model.resistance_ohm(r0_25, temp, law_k)
        r0_t = self.model.r0_ohm_at(r0_25, temp, law_k)
        # R1 of the limits by the same law, as the estimator's (None: the datasheet law)
        r1_t = None if law_k is None else self.model.r0_ohm_at(
            np.full(z.size, self.cell.r1_ohm), temp, law_k)
        duration = float(sum(d for d, _ in segments))
        needed_ws = float(sum(d * p for d, p in segments))
        mean_w = needed_ws / duration if duration > 0 else 0.0
        gain = float(np.min((cfg.soc_ceiling - z) * q))
        # at the mean load: the peaks are judged per step against the state of power
        full = self.model.discharge(np.clip(z + max(gain, 0.0) / q, 0.0, 1.0), q, r, temp,
                                    max(mean_w, 0.0))
        reserve_wh = cfg.reserve_fraction * full.energy_wh
        available = self.model.discharge(z, q, r, temp, max(mean_w, 0.0)).energy_wh
        ret_w = return_drawn_power_w if return_drawn_power_w > 0.0 else max(mean_w, 0.0)

        def can_return(zz: ArrayLike) -> bool:
            if return_duration_s <= 0.0:
                return True
            e = self.model.discharge(zz, q, r, temp, ret_w).energy_wh
            return e - reserve_wh >= ret_w * return_duration_s / 3600.0

        failing, why, t_fail = -1, 'ok', nan
        t = 0.0
        safe_return = nan if return_duration_s <= 0.0 else (0.0 if can_return(z) else nan)
        returning_ok = return_duration_s > 0.0 and can_return(z)
        plan: list[tuple[int, tuple[float, float]]] = list(enumerate(segments))
        if returning_ok and mean_w > 0.0:
            # past the end, at the mean load, for the safe-return time only
            plan.append((-1, (min(MAX_EXTENSION_S, 1.2 * 3600.0 * available / mean_w), mean_w)))
        stop = False
        for index, (seg_s, drawn_w) in plan:
            if stop:
                break
            step_s = MAX_STEP_S if index >= 0 else EXTENSION_STEP_S
            steps = max(1, int(math.ceil(seg_s / step_s)))
            dt = seg_s / steps
            for _ in range(steps):
                ocv = np.asarray(self.cell.ocv.ocv(z, temp))
                emf = float(ocv.sum())
                if drawn_w >= 0.0:
                    current, reach = _current_at_power(np.array([emf]), float(r.sum()), drawn_w)
                    i = -float(current[0])
                    reachable = bool(reach[0])
                else:
                    i = -drawn_w / emf          # regeneration: first order is enough
                    reachable = True
                problem: str | None = None
                if not reachable:
                    problem = f'{drawn_w:.0f} W is more than the pack can deliver'
                else:
                    charge_lim, discharge_lim = state_of_power.current_limits(
                        self.cell, self.est_config, self.est_config.horizon_long_s, z,
                        np.zeros_like(z), r0_t, q, temp, r1_t)
                    c_lim, d_lim = state_of_power.pack_limits(charge_lim, discharge_lim)
                    v_cell = ocv + i * r
                    if i < 0.0 and -i > d_lim + 1e-6:
                        problem = (f'{-i:.1f} A exceeds the discharge limit {d_lim:.1f} A '
                                   f'(state of power)')
                    elif i > 0.0 and i > c_lim + 1e-6:
                        problem = f'{i:.1f} A regeneration exceeds the charge limit {c_lim:.1f} A'
                    elif i < 0.0 and float(np.min(v_cell)) < self.model.cutoff_v:
                        problem = (f'a cell falls to {float(np.min(v_cell)):.3f} V, below the '
                                   f'cut-off {self.model.cutoff_v:.3f} V')
                z_next = np.clip(z + i * dt / (3600.0 * q), 0.0, 1.0)
                if problem is None and float(np.min(z_next)) <= cfg.soc_floor + 1e-9 and i < 0.0:
                    problem = 'the weakest cell reaches the SoC floor (empty)'
                if problem is not None:
                    if index >= 0:
                        failing, why, t_fail = index, f'segment {index}: {problem}', t
                    stop = True
                    break
                z = z_next
                t += dt
                if returning_ok:
                    if can_return(z):
                        safe_return = t
                    else:
                        returning_ok = False
                if index < 0 and not returning_ok:
                    stop = True
                    break
        margin = available - reserve_wh - needed_ws / 3600.0
        feasible = failing < 0 and margin >= 0.0
        if failing < 0 and margin < 0.0:
            why = (f'needs {needed_ws / 3600.0:.1f} Wh, {available:.1f} Wh available with '
                   f'{reserve_wh:.1f} Wh kept in reserve')
        return MissionResult(
            feasible=feasible, reason=why, first_failing_segment=failing, failing_time_s=t_fail,
            energy_needed_wh=needed_ws / 3600.0, energy_available_wh=available,
            reserve_wh=reserve_wh, margin_wh=margin,
            margin_percent=100.0 * margin / available if available > 0 else -100.0,
            duration_s=duration, safe_return_s=safe_return)
