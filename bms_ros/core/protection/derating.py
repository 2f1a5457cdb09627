"""Derated current limits (foxBMS's SoF trapezoid): 1 at a limit's warning, 0 at its trip."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from .limits import ProtectionConfig, ThresholdLimit

# which limits derate which direction: charge is limited by the high-voltage and the charge
# temperature limits, discharge by the low-voltage and the discharge temperature limits
CHARGE_DERATING = (('cell_overvoltage', 'high_cell_v'), ('pack_overvoltage', 'pack_v'),
                   ('charge_overtemperature', 'high_degc'),
                   ('charge_undertemperature', 'low_degc'))
DISCHARGE_DERATING = (('cell_undervoltage', 'low_cell_v'), ('pack_undervoltage', 'pack_v'),
                      ('discharge_overtemperature', 'high_degc'),
                      ('discharge_undertemperature', 'low_degc'))


def derate(limit: ThresholdLimit, value: float) -> float:
    """1 inside the warning level, 0 at the trip level, linear between; 1 if unknown."""
    if not math.isfinite(value):
        return 1.0
    span = limit.trip - limit.warning
    return float(np.clip((limit.trip - value) / span, 0.0, 1.0))


def current_limits(config: ProtectionConfig, cells_v: NDArray[np.float64],
                   temperatures_degc: NDArray[np.float64], pack_v: float,
                   estimate: tuple[float, float, float] | None,
                   now_s: float) -> tuple[float, float]:
    """(charge, discharge) current limits in A (magnitudes) before any latched trip.

    Each is the configured maximum (or the state-of-power ``estimate`` (charge_a, discharge_a,
    stamp_s) if fresher than ``estimate_timeout_s`` and lower) times the smallest derating
    factor. ``cells_v`` and ``temperatures_degc`` are the last values, NaN where invalid.
    """
    charge = config.charge_current_max_a
    discharge = config.discharge_current_max_a
    if estimate is not None and now_s - estimate[2] <= config.estimate_timeout_s:
        charge = min(charge, estimate[0])
        discharge = min(discharge, estimate[1])
    cells = cells_v[np.isfinite(cells_v)]
    temps = temperatures_degc[np.isfinite(temperatures_degc)]
    values = {'high_cell_v': cells.max() if cells.size else math.nan,
              'low_cell_v': cells.min() if cells.size else math.nan,
              'high_degc': temps.max() if temps.size else math.nan,
              'low_degc': temps.min() if temps.size else math.nan,
              'pack_v': pack_v}
    # the derating limits are all threshold limits (CATALOG)
    charge *= min(derate(cast('ThresholdLimit', config.limit(lid)), values[key])
                  for lid, key in CHARGE_DERATING)
    discharge *= min(derate(cast('ThresholdLimit', config.limit(lid)), values[key])
                     for lid, key in DISCHARGE_DERATING)
    return float(charge), float(discharge)
