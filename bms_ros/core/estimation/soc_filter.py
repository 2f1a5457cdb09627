"""Per-cell SoC by an extended Kalman filter on the 1-RC model, batched over cells with numpy.

Each cell has its own small filter (no Python loop over cells) with the state

    x = [soc, v_rc_v, current_offset_a, capacity_inverse, v_diff_v, r_diff_ohm]

* soc (0..1) and v_rc_v, the voltage of the cell's RC pair (CellSpec r1_ohm, tau1_s);
* v_diff_v, r_diff_ohm: a slow RC (time constant ``diffusion_time_s``) whose resistance is
  learnt. Validation against PyBaMM's DFN showed a 1-RC model with datasheet values leaves a
  persistent 30-60 mV error under load (solid-phase diffusion); without this pair the filter
  takes it for a SoC error. What the pair cannot explain is coloured noise: v_diff also gets a
  Markov process noise whose size follows the recent current (``diffusion_noise_per_c_v``);
* current_offset_a (measured = true + offset) and capacity_inverse = nominal / present
  capacity are *consider-states* (Schmidt-Kalman): their doubt grows the SoC covariance as
  charge is counted, but voltage updates never move them, since the ECM's error under load
  would be learnt as capacity or offset. Their values come from outside: the capacity from
  OCV anchors (:class:`~.soh.CapacityEstimator`), the offset from zero-current calibration.
  Exception: with ``capacity_joint`` the caller may give capacity_inverse a share of its joint
  gain where the model is trusted (``update(capacity_gain=...)``, a joint EKF there).

Model over a step dt with measured current i (A, + = charging), true current i - offset,
a = exp(-dt / tau1) (tau1 f(T) with ``tau1_follows_temperature``), b = exp(-dt / tau_diff), f(T)
the Arrhenius factor of R0:

    soc'    = soc + dt (i - offset) capacity_inverse / (3600 Q_nominal)
    v_rc'   = a v_rc + f(T) R1 (1 - a) (i - offset)
    v_diff' = b v_diff + f(T) r_diff (1 - b) (i - offset) + w
    v       = OCV(soc, T) + v_rc + v_diff + f(T) R0 (i - offset)

R0 comes from :class:`~.resistance.ResistanceEstimator` (normalised to 25 degC). The measurement
update is an iterated EKF (the OCV is relinearised at the corrected SoC) in Joseph form. Only
cells with a valid voltage are updated; the others only predict. The correlated voltage doubt
(unmodelled polarisation, model error, relaxation at rest) is its own model and state in
:mod:`.measurement_noise`; this module is the state, predict and update.

State owners: x[:, QINV] (capacity_inverse) is a mirror of the capacity that
:class:`~.soh.CapacityEstimator` owns (value and variance); the filter keeps it as a consider-
state only for its correlations with SoC and offset; besides :meth:`SocFilter.set_capacity`
/ :meth:`SocFilter.initialise` (called after the capacity estimator changed) only the joint
gain the pack estimator asks for in :meth:`SocFilter.update` moves it, and the owner then
takes that value (:meth:`.soh.CapacityEstimator.joint`).

Size (~400 lines, over the house ~350): the rest is one concept, the batched EKF: its state
and covariance layout (``Pt``, cells last), starts, predict and the two measurement updates
all write the same arrays in place; a split would spread one covariance over modules.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..ocv import FloatOrArray
from .measurement_noise import CorrelatedDoubt

if TYPE_CHECKING:
    from ..cell import CellSpec
    from .config import EstimatorConfig
    from .resistance import TemperatureLaw

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

N_STATES = 6
SOC, VRC, OFFSET, QINV, SLOW, RSLOW = range(N_STATES)
CONSIDER = (OFFSET, QINV)          # never moved by measurement updates
IEKF_STEP_SOC = 2e-4               # no relinearisation after a SoC correction below this


class SocFilter:
    """A batch of independent EKFs, one per cell."""

    def __init__(self, cell: CellSpec, n_cells: int, config: EstimatorConfig) -> None:
        self.cell = cell
        self.config = config
        self.n = int(n_cells)
        self.capacity_nominal_ah = cell.capacity_ah
        c_a = cell.capacity_ah                       # 1 C in A
        self.x = np.zeros((self.n, N_STATES))
        self.x[:, QINV] = 1.0
        # covariances stored cells last (6, 6, n) so every operation runs over contiguous
        # n-long rows (numpy's inner loops of length 6 cost 10x); P is the (n, 6, 6) view
        self.Pt = np.zeros((N_STATES, N_STATES, self.n))
        self.P = self.Pt.transpose(2, 0, 1)
        # process noise per second (variances), diagonal
        self.q_per_s = np.array([
            config.soc_noise_per_sqrt_s ** 2,
            config.rc_voltage_noise_v_per_sqrt_s ** 2,
            0.0,
            config.capacity_noise_per_sqrt_s ** 2,
            0.0,
            (config.diffusion_resistance_noise_per_sqrt_s * cell.r1_ohm) ** 2])
        self.current_noise_a = config.current_noise_c * c_a
        self.initialised = np.zeros(self.n, dtype=bool)
        # the correlated voltage doubt's own state (load low-passes, count_var, relaxation)
        self.doubt = CorrelatedDoubt(cell, self.n, config, self.ocv_slope)
        self.posterior_ocv_v: FloatArray = np.full(self.n, np.nan)
        self._eye = np.eye(N_STATES)
        rows, cols = np.triu_indices(N_STATES, 1)
        self._triangle = ((rows, cols), (cols, rows))
        self._update_mask = np.ones(N_STATES, dtype=bool)
        self._update_mask[list(CONSIDER)] = False
        # resistance.TemperatureLaw of R0, R1, r_diff (None: the cell's)
        self.temperature_law: TemperatureLaw | None = None
        # R1 / datasheet R1 at 25 degC (scalar or per cell)
        self.r1_scale: float | FloatArray = 1.0

    @property
    def relaxation_doubt_v(self) -> FloatArray:
        """Relaxation still to come at rest per cell (V, >= 0; set by the pack estimator)."""
        return self.doubt.relaxation_doubt_v

    @relaxation_doubt_v.setter
    def relaxation_doubt_v(self, value: FloatArray) -> None:
        self.doubt.relaxation_doubt_v = value

    @property
    def count_var(self) -> FloatArray:
        """SoC variance the count alone gathered since its last confident point, per cell."""
        return self.doubt.count_var

    # ------------------------------------------------------------------ initialisation
    def initialise(self, soc: FloatOrArray, soc_std: FloatOrArray,
                   cells: ArrayLike | None = None, capacity_ah: FloatOrArray | None = None,
                   capacity_std: FloatOrArray | None = None, current_offset_a: float = 0.0,
                   from_ocv: bool = True, ranged: BoolArray | None = None) -> None:
        """(Re)start the filters of ``cells`` (bool mask or indices; default all).

        ``from_ocv``: the SoC was read from a voltage (the count's confidence is then no better
        than ``polarisation_anchor_doubt_v`` over the OCV slope); False: a given SoC (set_soc, a
        persisted state, ``--initial-soc``) is as sure as ``soc_std`` says. ``ranged`` (bool per
        cell): read under load over the whole range of the unknown polarisation
        (:meth:`.measurement_noise.CorrelatedDoubt.start`).
        """
        idx = self._index(cells)
        cfg = self.config
        self.x[idx, SOC] = np.broadcast_to(soc, self.n)[idx] if np.ndim(soc) else soc
        self.x[idx, VRC] = 0.0
        self.x[idx, SLOW] = 0.0
        self.x[idx, RSLOW] = cfg.diffusion_resistance_ratio * self.cell.r1_ohm
        self.x[idx, OFFSET] = current_offset_a
        if capacity_ah is not None:
            cap = np.broadcast_to(np.asarray(capacity_ah, dtype=float), (self.n,))[idx]
            self.x[idx, QINV] = self.capacity_nominal_ah / cap
        cap_std = cfg.initial_capacity_std if capacity_std is None else capacity_std
        self.P[idx] = 0.0
        std = np.broadcast_to(np.asarray(soc_std, dtype=float), (self.n,))[idx]
        self.P[idx, SOC, SOC] = std ** 2
        self.doubt.start(idx, self.x[idx, SOC], std ** 2, from_ocv,
                         None if ranged is None else np.broadcast_to(ranged, (self.n,))[idx])
        # the load history is unknown: the RC voltages may hold what a typical load leaves
        load_a = cfg.initial_load_c * self.cell.capacity_ah
        self.P[idx, VRC, VRC] = (self.cell.r1_ohm * load_a) ** 2
        offset_std_a = cfg.initial_current_offset_std_c * self.cell.capacity_ah
        self.P[idx, OFFSET, OFFSET] = offset_std_a ** 2
        qinv = self.x[idx, QINV]
        cap_std = np.broadcast_to(np.asarray(cap_std, dtype=float), (self.n,))[idx]
        self.P[idx, QINV, QINV] = (cap_std * qinv) ** 2
        self.P[idx, RSLOW, RSLOW] = (cfg.initial_diffusion_resistance_std
                                     * cfg.diffusion_resistance_ratio * self.cell.r1_ohm) ** 2
        self.P[idx, SLOW, SLOW] = (cfg.diffusion_resistance_ratio * self.cell.r1_ohm
                                   * load_a) ** 2
        self.initialised[idx] = True

    def _index(self, cells: ArrayLike | None) -> NDArray[np.intp]:
        """Indices of ``cells`` (bool mask or indices; None: all)."""
        if cells is None:
            return np.arange(self.n)
        mask = np.asarray(cells)
        return np.flatnonzero(mask) if mask.dtype == bool else mask.astype(np.intp)

    # ------------------------------------------------------------------ properties
    @property
    def soc(self) -> FloatArray:
        """SoC per cell, 0..1."""
        return self.x[:, SOC]

    @property
    def soc_std(self) -> FloatArray:
        """Standard deviation of the SoC per cell, 0..1."""
        return np.sqrt(np.maximum(self.P[:, SOC, SOC], 0.0))

    @property
    def capacity_ah(self) -> FloatArray:
        """Estimated capacity per cell (Ah)."""
        return self.capacity_nominal_ah / self.x[:, QINV]

    @property
    def current_offset_a(self) -> FloatArray:
        """Estimated current-sensor offset per cell (A, subtracted from the measured current)."""
        return self.x[:, OFFSET]

    @property
    def offset_std_a(self) -> FloatArray:
        """Standard deviation of the current-sensor offset per cell (A)."""
        return np.sqrt(np.maximum(self.P[:, OFFSET, OFFSET], 0.0))

    def set_current_offset(self, offset_a: FloatOrArray, std_a: FloatOrArray) -> None:
        """Set the offset from outside (e.g. measured with the contactors open)."""
        self.x[:, OFFSET] = offset_a
        self.P[:, OFFSET, :] = 0.0
        self.P[:, :, OFFSET] = 0.0
        self.P[:, OFFSET, OFFSET] = std_a ** 2

    def set_capacity(self, capacity_ah: FloatOrArray, capacity_std_ah: FloatOrArray,
                     cells: ArrayLike, offset_sensitivity_h: FloatOrArray | None = None) -> None:
        """Set the capacity of the cells in mask (from the capacity estimator).

        ``offset_sensitivity_h``: d capacity / d current offset (Ah per A); the capacity doubt
        is then correlated with the offset doubt (learnt from charge counted with that offset).
        """
        cells = np.asarray(cells, dtype=bool)
        cap = np.asarray(capacity_ah, dtype=float)
        qinv = self.capacity_nominal_ah / cap
        std = qinv * np.asarray(capacity_std_ah, dtype=float) / cap
        self.x[cells, QINV] = qinv[cells]
        self.P[cells, QINV, :] = 0.0
        self.P[cells, :, QINV] = 0.0
        self.P[cells, QINV, QINV] = std[cells] ** 2
        if offset_sensitivity_h is not None:
            var_off = self.P[:, OFFSET, OFFSET]
            cov = -qinv / cap * np.asarray(offset_sensitivity_h, dtype=float) * var_off
            limit = 0.99 * std * np.sqrt(var_off)
            cov = np.clip(cov, -limit, limit)
            self.P[cells, QINV, OFFSET] = cov[cells]
            self.P[cells, OFFSET, QINV] = cov[cells]

    def relaxed(self, cells: ArrayLike) -> None:
        """The cells have rested: their RC and diffusion voltages are gone."""
        cells = np.asarray(cells, dtype=bool)
        for state in (VRC, SLOW):
            self.x[cells, state] = 0.0
            self.P[cells, state, :] = 0.0
            self.P[cells, :, state] = 0.0
            self.P[cells, state, state] = 0.002 ** 2

    # ------------------------------------------------------------------ model
    def arrhenius(self, temperature_degc: FloatOrArray) -> float | FloatArray:
        """R(T) / R(25 degC): the attached ``temperature_law`` (learnt), else the cell's."""
        if self.temperature_law is not None:
            return self.temperature_law.factor(temperature_degc)
        return self.cell.r0_at(temperature_degc) / self.cell.r0_ohm

    def tau1_s(self, factor: float | FloatArray) -> float | FloatArray:
        """Time constant of the fast RC pair (s) at the temperatures whose R(T) / R(25 degC) is
        ``factor``: with ``tau1_follows_temperature`` the pair's capacitance is held while R1
        follows the law (charge transfer is thermally activated, a double layer is not), so
        tau1 scales by the same factor; else the cell's ``tau1_s``.
        """
        if self.config.tau1_follows_temperature:
            return self.cell.tau1_s * factor
        return self.cell.tau1_s

    def predict(self, dt_s: float, current_a: FloatOrArray, temperature_degc: FloatOrArray,
                slow_std_v: FloatOrArray = 0.0) -> None:
        """Time update over ``dt_s`` (s) with the measured current (A, + = charging).

        ``current_a`` is a scalar or one value per cell; ``slow_std_v`` is the stationary
        standard deviation of the unexplained slow voltage now (V).
        """
        if dt_s <= 0.0:
            return
        x, Pt = self.x, self.Pt
        var_before = Pt[SOC, SOC].copy()
        q_nom_as = 3600.0 * self.capacity_nominal_ah
        i_true = current_a - x[:, OFFSET]
        # scalars with math (numpy's scalar calls cost more than the arithmetic)
        b = math.exp(-dt_s / self.config.diffusion_time_s)
        f_t = self.arrhenius(temperature_degc)
        a: float | FloatArray
        if self.config.tau1_follows_temperature:
            a = np.exp(-dt_s / self.tau1_s(f_t))       # per cell: each at its temperature
        else:
            a = math.exp(-dt_s / self.cell.tau1_s)
        g_soc = (dt_s / q_nom_as) * x[:, QINV]        # d soc / d i
        g_rc = (self.cell.r1_ohm * (1.0 - a)) * f_t * self.r1_scale   # d v_rc / d i
        if np.ndim(g_rc) == 0:
            g_rc = np.full(self.n, float(g_rc))
        x[:, SOC] += g_soc * i_true
        x[:, VRC] = a * x[:, VRC] + g_rc * i_true
        g_slow = (1.0 - b) * f_t * x[:, RSLOW]
        x[:, SLOW] = b * x[:, SLOW] + g_slow * i_true
        self.doubt.predict(dt_s, i_true)
        # P' = F P F^T with F = I + E, E sparse (rows SOC, VRC, SLOW): row then column
        # operations on (6, n) slices instead of batched 6x6 products (the OFFSET, QINV and
        # RSLOW rows / columns they read are not written, so no copies)
        g_q = (dt_s / q_nom_as) * i_true
        g_rs = (1.0 - b) * f_t * i_true
        for rows in (Pt, Pt.transpose(1, 0, 2)):
            p_off = rows[OFFSET]
            rows[SOC] += g_q * rows[QINV] - g_soc * p_off
            rows[VRC] *= a
            rows[VRC] -= g_rc * p_off
            rows[SLOW] *= b
            rows[SLOW] += g_rs * rows[RSLOW] - g_slow * p_off
        # process noise: diagonal random walks plus the current-sensor noise through g
        q = (self.q_per_s * dt_s).tolist()
        s_i2 = self.current_noise_a ** 2
        Pt[SOC, SOC] += q[SOC] + s_i2 * g_soc * g_soc
        Pt[VRC, VRC] += q[VRC] + s_i2 * g_rc * g_rc
        Pt[QINV, QINV] += q[QINV]
        Pt[RSLOW, RSLOW] += q[RSLOW]
        Pt[SLOW, SLOW] += (1.0 - b * b) * np.asarray(slow_std_v) ** 2
        cross = s_i2 * g_soc * g_rc
        Pt[SOC, VRC] += cross
        Pt[VRC, SOC] += cross
        self.doubt.counted(np.maximum(Pt[SOC, SOC] - var_before, 0.0))
        self._clamp(symmetrise=False)

    def predicted_voltage(self, current_a: FloatOrArray, temperature_degc: FloatOrArray,
                          r0_ohm: FloatOrArray, ocv_v: FloatOrArray | None = None) -> FloatArray:
        """Terminal voltage the model expects now (V); ``ocv_v``: OCV at the SoC, if known."""
        i_true = current_a - self.x[:, OFFSET]
        if ocv_v is None:
            ocv_v = self.cell.ocv.ocv(self.x[:, SOC], temperature_degc)
        return ocv_v + self.x[:, VRC] + r0_ohm * i_true + self.x[:, SLOW]

    def update(self, voltage_v: FloatOrArray, current_a: FloatOrArray,
               temperature_degc: FloatOrArray,
               r0_ohm: FloatOrArray, valid: ArrayLike, noise_v: FloatOrArray | None = None,
               prior_ocv_v: FloatOrArray | None = None,
               capacity_gain: FloatArray | None = None,
               capacity_noise2: FloatArray | None = None,
               capacity_var_floor: FloatArray | None = None) -> FloatArray:
        """Measurement update of the cells flagged ``valid`` with their voltages (V).

        ``noise_v`` is the measurement noise per cell (V); ``prior_ocv_v`` the OCV at the
        present SoC if the caller has it. ``capacity_gain`` (per cell, 0..1): the share of the
        joint Kalman gain capacity_inverse takes from this voltage (0: a consider-state, as
        without it); ``capacity_noise2`` (V^2 per cell): noise added to its gain only (the
        model error correlated over many samples says little of a slow state);
        ``capacity_var_floor``: its variance is not brought below this by the update.
        Returns the innovation (V); afterwards ``posterior_ocv_v`` is the OCV at the corrected
        SoC.
        """
        valid = np.asarray(valid, dtype=bool) & np.isfinite(voltage_v)
        if not valid.any():
            self.posterior_ocv_v = cast(FloatArray, self.cell.ocv.ocv(
                self.x[:, SOC], temperature_degc) if prior_ocv_v is None else prior_ocv_v)
            return np.zeros(self.n)
        x, Pt = self.x, self.Pt
        r0 = np.broadcast_to(np.asarray(r0_ohm, dtype=float), (self.n,))
        noise2 = np.broadcast_to(
            np.asarray(self.config.voltage_noise_v if noise_v is None else noise_v) ** 2,
            (self.n,))
        cfg = self.config
        if cfg.polarisation_noise_per_c_v > 0.0 or cfg.model_error_v > 0.0:
            noise2 = noise2 + self.doubt.noise2(current_a, x[:, OFFSET], valid, x[:, SOC])
        measured = np.nan_to_num(voltage_v)
        knee_rule = cfg.polarisation_knee_slope_v > 0.0
        prior = x.copy()
        # H = [slope, 1, -r0, 0, 1, 0]: P H from four columns of P (no batched products)
        p_fixed = Pt[:, VRC] - r0 * Pt[:, OFFSET] + Pt[:, SLOW]       # (6, n)
        p_soc = Pt[:, SOC]
        mask = valid & self._update_mask[:, None]
        # iterated EKF: relinearise the OCV at the updated SoC (a large first correction,
        # e.g. from a wrong initial SoC, would otherwise stop short on a curved OCV)
        last = None          # (settled cells, their h, ocv_v, z_lin, S, K, PH) of the last pass
        for iteration in range(self.config.update_iterations):
            h = self.ocv_slope(x[:, SOC])
            ocv_v = prior_ocv_v if iteration == 0 and prior_ocv_v is not None else \
                self.cell.ocv.ocv(x[:, SOC], temperature_degc)
            # innovation of the linearisation at x: y - h(x) - H (prior - x) (x = prior first)
            innovation = measured - self.predicted_voltage(current_a, temperature_degc, r0,
                                                           ocv_v)
            if iteration:
                d = prior - x
                innovation -= h * d[:, SOC] + d[:, VRC] - r0 * d[:, OFFSET] + d[:, SLOW]
            elif knee_rule:
                valid = valid & ~self._knee_same_sign(h, innovation, current_a)
                mask = valid & self._update_mask[:, None]
            PH = h * p_soc + p_fixed
            S = h * PH[SOC] + PH[VRC] - r0 * PH[OFFSET] + PH[SLOW] + noise2
            K = np.where(mask, PH / S, 0.0)                              # (6, n)
            if capacity_gain is not None:
                s_q = S if capacity_noise2 is None else S + capacity_noise2
                k_q = np.where(valid, capacity_gain * PH[QINV] / s_q, 0.0)
                if capacity_var_floor is not None:
                    # the doubt no lower than the floor: the gain scaled so the Joseph form's
                    # reduction 2 k PH - S k^2 (less than linear in the scale) stops there
                    reduction = k_q * (2.0 * PH[QINV] - S * k_q)
                    room = np.maximum(Pt[QINV, QINV] - capacity_var_floor, 0.0)
                    k_q = k_q * np.where(reduction > room, room / np.maximum(reduction, 1e-300),
                                         1.0)
                K[QINV] = k_q
            innovation = np.where(valid, innovation, 0.0)
            z_lin = x[:, SOC].copy()
            x_new = prior + (K * innovation).T
            np.minimum(np.maximum(x_new[:, SOC], -0.05), 1.05, out=x_new[:, SOC])
            if last is not None:
                # cells whose last SoC step was this small keep that step's linearisation
                # (per cell, so a batch equals independent filters)
                keep = last[0]
                x_new[keep] = x[keep]
                h, ocv_v, z_lin, S, K, PH = (np.where(keep, old, new) for old, new in zip(
                    last[1:], (h, ocv_v, z_lin, S, K, PH)))
            x[:] = x_new
            settled = np.abs(x[:, SOC] - z_lin) < IEKF_STEP_SOC
            if settled.all():
                break
            last = (settled, h, ocv_v, z_lin, S, K, PH)
        # OCV at the corrected SoC, linearised from the last iteration (its step is small)
        self.posterior_ocv_v = ocv_v + h * (x[:, SOC] - z_lin)
        # Joseph form (K is not the optimal gain: consider-states get none), rank one:
        # (I - K H) P (I - K H)^T + R K K^T = P - K (PH)^T - PH K^T + (H P H + R) K K^T
        # = P - K U^T - U K^T with U = PH - S K / 2: one (6, 6, n) product, exact for any K
        KU = K[:, None] * (PH - 0.5 * S * K)[None, :]
        Pt -= KU
        Pt -= KU.transpose(1, 0, 2)
        self._clamp()
        return innovation

    def _knee_same_sign(self, slope: FloatArray, innovation: FloatArray,
                        current_a: FloatOrArray) -> BoolArray:
        """Cells in the knee (OCV ``slope`` >= ``polarisation_knee_slope_v``) under load whose
        voltage is beyond the model's in the current's direction (``innovation`` below 0 on
        discharge): the knee's unmodelled polarisation (the particle surface depleted ahead of
        the bulk) has that sign and any size (0.2-0.9 V on LFP), so such a voltage says nothing
        of the SoC; one on the other side of the model still does.
        """
        cfg = self.config
        i_true = np.asarray(current_a, dtype=float) - self.x[:, OFFSET]
        loaded = np.abs(i_true) > cfg.rest_current_c * self.capacity_nominal_ah
        out: BoolArray = loaded & (slope >= cfg.polarisation_knee_slope_v) & (
            innovation * i_true > 0.0)
        return out

    def update_soc(self, soc_measured: FloatOrArray, soc_noise: FloatOrArray,
                   cells: ArrayLike) -> None:
        """Direct SoC measurement update (e.g. relaxed OCV at rest) of the cells in mask."""
        cells = np.asarray(cells, dtype=bool) & np.isfinite(soc_measured)
        if not cells.any():
            return
        x, P = self.x, self.P
        S = P[:, SOC, SOC] + np.asarray(soc_noise) ** 2
        K = P[:, :, SOC] / S[:, None]
        K = np.where(cells[:, None], K, 0.0)
        K[:, CONSIDER] = 0.0
        x += K * np.where(cells, np.nan_to_num(soc_measured) - x[:, SOC], 0.0)[:, None]
        self.doubt.anchored(cells, P[:, SOC, SOC] * (1.0 - K[:, SOC]), x[:, SOC])
        H = np.zeros((self.n, N_STATES))
        H[:, SOC] = 1.0
        A = np.broadcast_to(self._eye, P.shape) - K[:, :, None] * H[:, None, :]
        P[:] = np.matmul(np.matmul(A, P), A.transpose(0, 2, 1)) \
            + (np.broadcast_to(np.asarray(soc_noise, dtype=float) ** 2, (self.n,))[:, None, None]
               * K[:, :, None] * K[:, None, :])
        self._clamp()

    def ocv_slope(self, soc: FloatOrArray) -> FloatArray:
        """dOCV/dSoC for the Jacobian, from a 2 % secant so LFP's table kinks do not stall it."""
        return cast(FloatArray, self.cell.ocv.secant_slope(soc, 0.01))

    def _clamp(self, symmetrise: bool = True) -> None:
        """Keep states physical and P symmetric (np.minimum/maximum: np.clip's wrapper costs)."""
        x = self.x
        for state, low, high in ((SOC, -0.05, 1.05), (RSLOW, 0.0, 20.0 * self.cell.r1_ohm),
                                 (QINV, 1.0 / self.config.capacity_max_ratio,
                                  1.0 / self.config.capacity_min_ratio)):
            np.minimum(np.maximum(x[:, state], low), high, out=x[:, state])
        if symmetrise:
            # the two triangles differ by rounding only: copy the upper one onto the lower
            # (15 of 36 rows, one gather and one scatter, instead of averaging all 36)
            upper, lower = self._triangle
            self.Pt[lower] = self.Pt[upper]
