"""Accuracy metrics of an SoC/capacity estimate against a truth (validation and tests).

* convergence_s: time from the first sample until the SoC error first enters the +-2 % band
  and then stays in it for ``hold_s`` (60 s); NaN if it never does;
* first_in_band_s: time until the error first enters the band (however briefly);
* soc_rmse, soc_max_err: over the samples after convergence (SoC as 0..1, not %);
* capacity_err_discharge / capacity_err_cycle: relative capacity error at the end of the
  discharge and at the last sample.
"""
import numpy as np
from numpy.typing import ArrayLike

CONVERGED_BAND = 0.02


def convergence_time_s(t_s: ArrayLike, error: ArrayLike, band: float = CONVERGED_BAND,
                       hold_s: float = 60.0) -> float:
    """Seconds from t_s[0] until |error| <= band and stays so for hold_s; NaN if never."""
    t = np.asarray(t_s, dtype=float)
    inside = np.abs(np.asarray(error, dtype=float)) <= band
    outside = np.flatnonzero(~inside)
    entries = np.flatnonzero(inside & ~np.concatenate([[False], inside[:-1]]))
    for k in entries:
        later = outside[outside > k]
        if not later.size or t[later[0]] - t[k] >= hold_s:
            return float(t[k] - t[0])
    return float('nan')


def evaluate(t_s: ArrayLike, soc_true: ArrayLike, soc_est: ArrayLike,
             capacity_est_ah: ArrayLike, capacity_true_ah: float,
             discharge_end_s: float) -> dict[str, float]:
    """The metrics of the module docstring as a dict of floats."""
    t = np.asarray(t_s, dtype=float)
    error = np.asarray(soc_est, dtype=float) - np.asarray(soc_true, dtype=float)
    conv = convergence_time_s(t, error)
    after = t - t[0] >= (conv if np.isfinite(conv) else np.inf)
    cap = np.asarray(capacity_est_ah, dtype=float)
    end_discharge = min(int(np.searchsorted(t, discharge_end_s)), len(t) - 1)
    inside = np.flatnonzero(np.abs(error) <= CONVERGED_BAND)
    return {
        'convergence_s': conv,
        'first_in_band_s': float(t[inside[0]] - t[0]) if inside.size else float('nan'),
        'soc_rmse': float(np.sqrt(np.mean(error[after] ** 2))) if after.any() else float('nan'),
        'soc_max_err': float(np.max(np.abs(error[after]))) if after.any() else float('nan'),
        'capacity_err_discharge': float(cap[end_discharge] / capacity_true_ah - 1.0),
        'capacity_err_cycle': float(cap[-1] / capacity_true_ah - 1.0),
        'soc_err_final': float(error[-1]),
    }
