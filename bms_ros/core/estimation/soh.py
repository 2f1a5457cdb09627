"""State of health per cell, vectorised over cells: R0 and capacity.

:class:`ResistanceEstimator`: the part of the terminal voltage the model leaves to the ohmic
drop, ``y = v - OCV(soc) - v_rc - v_diff``, is differenced between consecutive samples (the
previous one from the corrected state), so slowly varying errors (SoC, OCV, current offset)
cancel: ``dy = R0(T) di``. R0 normalised to 25 degC (divided by the cell's Arrhenius factor) is
fitted by a scalar recursive least squares per cell with forgetting, on steps where ``|di|`` is
large enough to carry information.

:class:`CapacityEstimator`: charge counted between two OCV anchors (see its docstring). The
filter (:mod:`.soc_filter`) takes both as given values.
"""
import numpy as np


class ResistanceEstimator:
    """Per-cell R0 (ohm, at 25 degC) from current steps; RLS with forgetting."""

    def __init__(self, cell, n_cells, config):
        self.cell = cell
        self.config = config
        self.n = int(n_cells)
        self.r0_ohm = np.full(self.n, cell.r0_ohm)
        # RLS "covariance": the prior counts like ten 1 C steps
        self.p0 = 0.1 / cell.capacity_ah ** 2
        self.p = np.full(self.n, self.p0)
        self.min_step_a = config.r0_min_step_c * cell.capacity_ah
        self._last_y = np.full(self.n, np.nan)
        self._last_i = np.full(self.n, np.nan)
        self.samples = np.zeros(self.n, dtype=np.int64)

    def set(self, r0_ohm):
        """Restore values (persisted state); keeps them within bounds."""
        r0 = np.broadcast_to(np.asarray(r0_ohm, dtype=float), (self.n,))
        self.r0_ohm = np.clip(np.where(np.isfinite(r0), r0, self.cell.r0_ohm),
                              self.config.r0_min_ratio * self.cell.r0_ohm,
                              self.config.r0_max_ratio * self.cell.r0_ohm)
        self.p = np.full(self.n, self.p0)

    def at(self, temperature_degc):
        """R0 at the cell temperatures (ohm)."""
        return self.r0_ohm * self.cell.r0_at(temperature_degc) / self.cell.r0_ohm

    def break_sequence(self):
        """Forget the previous sample (after a gap, a reset or a rejected measurement)."""
        self._last_y[:] = np.nan
        self._last_i[:] = np.nan

    def update(self, ohmic_v, current_a, factor, valid):
        """One sample: ``ohmic_v`` = v - OCV - v_rc - v_diff per cell from the filter's
        prediction (V), cell current (A, + = charging), ``factor`` = R0(T) / R0(25 degC) per
        cell. Call :meth:`remember` after the filter's update so the next difference is taken
        against the corrected state."""
        current_a = np.broadcast_to(np.asarray(current_a, dtype=float), (self.n,))
        y = np.where(valid, np.asarray(ohmic_v, dtype=float) / factor, np.nan)
        di = current_a - self._last_i
        dy = y - self._last_y
        use = np.isfinite(dy) & np.isfinite(di) & (np.abs(di) >= self.min_step_a)
        if not use.any():
            return
        lam = self.config.r0_forgetting
        residual = dy - self.r0_ohm * di
        # an outlier (e.g. a step not seen by the voltage sampler) must not pull R0 away
        use &= np.abs(residual) < 3.0 * self.cell.r0_ohm * np.abs(di) + 0.02
        k = self.p * di / (lam + di * di * self.p)
        r0 = self.r0_ohm + np.where(use, k * residual, 0.0)
        self.p = np.where(use, np.minimum((self.p - k * di * self.p) / lam, self.p0), self.p)
        self.r0_ohm = np.clip(r0, self.config.r0_min_ratio * self.cell.r0_ohm,
                              self.config.r0_max_ratio * self.cell.r0_ohm)
        self.samples += use

    def remember(self, ohmic_v, current_a, factor, valid):
        """The sample's ohmic part from the corrected state, the reference of the next step
        (``factor`` = R0(T) / R0(25 degC) per cell)."""
        self._last_y = np.where(valid, np.asarray(ohmic_v, dtype=float) / factor, np.nan)
        self._last_i = np.broadcast_to(np.asarray(current_a, dtype=float), (self.n,)).copy()


class CapacityEstimator:
    """Per-cell capacity (Ah) from the charge counted between two OCV anchors.

    An anchor is a SoC read from the relaxed OCV (after ``rest_time_s`` at rest, or at start-up
    after the pack was off) with its standard deviation (OCV noise / OCV slope). Between two
    anchors the counted charge dQ (Ah, offset-corrected) and the SoC change dz give one
    measurement Q = dQ / dz whose variance follows from both anchors' doubts and the current
    sensor's; it is fused with the present estimate by inverse-variance weighting (a scalar
    Kalman update with a slow random walk for ageing). Pairs with |dz| < ``capacity_min_delta_soc``
    carry too little information and are skipped. This uses only OCV and counted charge, so the
    ECM's error under load never leaks into the capacity; on LFP's flat plateau the anchors'
    doubts are large and the pairs are weighted down or skipped by themselves.
    """

    def __init__(self, cell, n_cells, config):
        self.cell = cell
        self.config = config
        self.n = int(n_cells)
        self.capacity_ah = np.full(self.n, cell.capacity_ah)
        self.variance = np.full(self.n, (config.initial_capacity_std * cell.capacity_ah) ** 2)
        self.anchor_soc = np.full(self.n, np.nan)
        self.anchor_var = np.full(self.n, np.nan)
        self.counted_ah = np.zeros(self.n)
        self.counted_var = np.zeros(self.n)       # Ah^2: current noise (random walk)
        self.offset_doubt_ah = np.zeros(self.n)   # Ah: an offset doubt adds up linearly
        self.counted_time_s = np.zeros(self.n)
        # d capacity / d current offset (Ah per A): a capacity learnt from charge counted with
        # an offset error carries that error, so the two doubts are correlated
        self.offset_sensitivity_h = np.zeros(self.n)
        self.updates = np.zeros(self.n, dtype=np.int64)

    def set(self, capacity_ah, capacity_std_ah=None):
        """Restore values (persisted state), clamped to the configured ratio window."""
        cap = np.broadcast_to(np.asarray(capacity_ah, dtype=float), (self.n,))
        nominal = self.cell.capacity_ah
        self.capacity_ah = np.clip(np.where(np.isfinite(cap), cap, nominal),
                                   self.config.capacity_min_ratio * nominal,
                                   self.config.capacity_max_ratio * nominal)
        self.offset_sensitivity_h = np.zeros(self.n)
        if capacity_std_ah is not None:
            std = np.broadcast_to(np.asarray(capacity_std_ah, dtype=float), (self.n,))
            default = self.config.initial_capacity_std * nominal
            self.variance = np.where(np.isfinite(std) & (std > 0), std, default) ** 2

    @property
    def std_ah(self):
        return np.sqrt(self.variance)

    def count(self, dt_s, current_a, current_std_a, offset_std_a):
        """Add the charge of one step (A, + = charging) and its doubt; ages the estimate."""
        self.counted_ah += current_a * dt_s / 3600.0
        # sensor noise averages out (random walk); an offset doubt adds up linearly
        self.counted_var += (current_std_a * dt_s / 3600.0) ** 2
        self.offset_doubt_ah += offset_std_a * dt_s / 3600.0
        self.counted_time_s += dt_s
        self.variance += (self.config.capacity_noise_per_sqrt_s * self.cell.capacity_ah) ** 2 * dt_s

    def anchor(self, soc, soc_std, cells):
        """An OCV anchor of the cells in mask; returns the mask of cells whose capacity changed."""
        cells = np.asarray(cells, dtype=bool) & np.isfinite(soc)
        soc = np.where(cells, soc, np.nan)
        var = np.asarray(soc_std, dtype=float) ** 2
        dz = soc - self.anchor_soc
        offset_ah = self.offset_doubt_ah
        use = cells & np.isfinite(dz) & (np.abs(dz) >= self.config.capacity_min_delta_soc) \
            & self.config.estimate_capacity
        changed = np.zeros(self.n, dtype=bool)
        if use.any():
            dz_u = np.where(use, dz, 1.0)
            measured = self.counted_ah / dz_u
            rel_var = (self.anchor_var + var) / dz_u ** 2 + \
                (self.counted_var + offset_ah ** 2) / np.maximum(self.counted_ah ** 2, 1e-12)
            meas_var = measured ** 2 * rel_var
            # a measurement outside the plausible window is an anchor gone wrong: skip it
            nominal = self.cell.capacity_ah
            use &= (measured > self.config.capacity_min_ratio * nominal) & \
                (measured < self.config.capacity_max_ratio * nominal)
            gain = np.where(use, self.variance / (self.variance + meas_var), 0.0)
            self.capacity_ah = self.capacity_ah + gain * (np.where(use, measured, 0.0)
                                                          - np.where(use, self.capacity_ah, 0.0))
            self.variance = (1.0 - gain) * self.variance
            # counted = sum (i - offset) dt: d measured / d offset = -time / dz
            self.offset_sensitivity_h = (1.0 - gain) * self.offset_sensitivity_h \
                + gain * (-self.counted_time_s / 3600.0 / dz_u)
            self.updates += use
            changed = use
        # the new anchor replaces the old one unless the old one, carried forward by counting,
        # is still the better reference (e.g. a rest on LFP's plateau after a rest when full)
        carried_var = self.anchor_var + (self.counted_var + offset_ah ** 2) / self.capacity_ah ** 2
        replace = cells & (changed | ~np.isfinite(self.anchor_soc) | (var <= carried_var))
        self.anchor_soc = np.where(replace, soc, self.anchor_soc)
        self.anchor_var = np.where(replace, var, self.anchor_var)
        self.counted_ah = np.where(replace, 0.0, self.counted_ah)
        self.counted_var = np.where(replace, 0.0, self.counted_var)
        self.offset_doubt_ah = np.where(replace, 0.0, offset_ah)
        self.counted_time_s = np.where(replace, 0.0, self.counted_time_s)
        return changed

    def forget_anchor(self, cells=None):
        """Drop the last anchor (SoC set by hand, a gap in the data)."""
        mask = np.ones(self.n, dtype=bool) if cells is None else np.asarray(cells, dtype=bool)
        self.anchor_soc[mask] = np.nan
