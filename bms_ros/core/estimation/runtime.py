"""The estimator runtime: everything the state_estimator node decides, without ROS.

The node (bms_ros.nodes.state_estimator), estimate_csv (bms_ros.tools.estimate_csv) and the
offline bag replay (bms_ros.tools.bag.offline) all feed measurements through
:class:`EstimatorRuntime`, so they run identical code:

* the time line: measurement stamps, except across a jump of the stamp clock (a simulator
  reset, a looped bag, a clock set by hand), where the steady clock's interval is counted
  (:meth:`EstimatorRuntime.timeline_s`);
* rejection and counting of unusable measurements (interface.measurement_reject_reason);
* the estimator update (interface.step_from_measurement: plausibility, bleed current,
  zero-current calibration with the contactors open);
* current limits forced to 0 while protection reports a latched trip (:meth:`estimate`);
* the set_soc decisions (:meth:`set_soc`), restoring and saving the persisted state.

Messages for the operator go to a ``log`` callable (the node passes its ROS logger); nothing
here imports rclpy.
"""
from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import PersistenceError
from . import interface, stored_state
from .estimator import Estimate, PackEstimator

if TYPE_CHECKING:
    from ..cell import CellSpec
    from ..profile import Profile
    from .config import EstimatorConfig

log = logging.getLogger(__name__)

CLOCK_JUMP_S = 1.0   # s: a stamp step this far off the steady clock's step is a clock jump
LIMIT_FIELDS = ('charge_current_limit_a', 'discharge_current_limit_a',
                'charge_current_limit_long_a', 'discharge_current_limit_long_a')


class _Logger:
    """info / warning / error to a ROS logger or to ``logging`` (same method names)."""

    def __init__(self, logger: Any = None) -> None:
        self.logger = logger or log

    def info(self, text: str) -> None:
        """Log ``text`` at info level."""
        self.logger.info(text)

    def warning(self, text: str) -> None:
        """Log ``text`` at warning level."""
        self.logger.warning(text)

    def error(self, text: str) -> None:
        """Log ``text`` at error level."""
        self.logger.error(text)


class EstimatorRuntime:
    """One pack's estimator with the node's handling of measurements, trips and set_soc."""

    def __init__(self, cell: CellSpec, n_cells: int, config: EstimatorConfig,
                 temperature_sensors: int, sensor_of_cell: ArrayLike, pack_name: str,
                 logger: Any = None) -> None:
        self.cell = cell
        self.n = int(n_cells)
        self.config = config
        self.temperature_sensors = int(temperature_sensors)
        self.sensor_of_cell = np.asarray(sensor_of_cell, dtype=int)
        self.pack_name = pack_name
        self.log = _Logger(logger)
        self.estimator = PackEstimator(cell, self.n, config)
        self.rejected = 0
        self.last_reject_reason: str | None = None
        # (arrival s, message, valid mask, temperature per cell)
        self.last_measurement: tuple[float, Any, NDArray[np.bool_],
                                     NDArray[np.float64]] | None = None
        self.last_t_s: float | None = None   # estimator time of the last accepted measurement
        self.trip_latched = False        # protection: limits are 0 while a trip is latched
        self.clock_jumps = 0
        self._last_stamp: tuple[float, float] | None = None   # (stamp s, steady s) of the last
        self._timeline_offset_s = 0.0    # estimator time = stamp + this (clock jumps)

    @classmethod
    def from_profile(cls, profile: Profile, config: EstimatorConfig,
                     logger: Any = None) -> EstimatorRuntime:
        """A runtime for a loaded bms_ros.core.profile.Profile and its EstimatorConfig."""
        pack = profile.pack
        return cls(pack.cell, pack.cells_series, config, pack.temperature_sensors,
                   pack.sensor_of_cell(), pack.name, logger)

    # ------------------------------------------------------------------ persistence
    def restore(self, path: str) -> bool:
        """Start from the state file at ``path``: True if restored, False if there is none or
        it was refused (then one warning names the file and the reason, and the estimator
        starts clean: SoC from OCV, capacity and R0 from the datasheet).
        """
        try:
            if stored_state.load(path, self.estimator, self.pack_name):
                est = self.estimator.estimate()
                soc = est.cell_soc[np.isfinite(est.cell_soc)]
                self.log.info(
                    (f'restored SoC {soc.min():.3f}..{soc.max():.3f}, ' if soc.size else
                     'restored (no SoC), ')
                    + f'capacity {np.min(est.cell_capacity_ah):.2f} Ah from {path}')
                return True
            self.log.info(f'no saved state at {path}: SoC from OCV')
        except (PersistenceError, OSError) as error:
            self.estimator = PackEstimator(self.cell, self.n, self.config)
            self.log.warning(f'ignoring saved state ({error}); SoC from OCV, '
                             'capacity and R0 from the datasheet')
        return False

    def save(self, path: str) -> bool:
        """Write the state atomically; a failure is logged (False), not raised."""
        try:
            stored_state.save(path, self.estimator, self.pack_name)
            return True
        except (OSError, ValueError) as error:
            self.log.error(f'cannot save state to {path}: {error}')
            return False

    # ------------------------------------------------------------------ inputs
    def timeline_s(self, stamp_s: float, steady_s: float | None = None) -> float:
        """Estimator time (s) of a measurement stamped ``stamp_s`` and received at ``steady_s``
        (a monotonic clock, s; None: time.monotonic()).

        Stamp differences, except across a jump of the stamp clock: a stamp that goes back,
        or runs ahead of the steady clock by more than CLOCK_JUMP_S, advances the estimator by
        the steady-clock interval, so a jump neither counts as hours of current nor stalls the
        estimator until the clock catches up. Offline, the steady clock is the recording's own
        receive time (bag log time; for a CSV the time column itself).
        """
        steady = time.monotonic() if steady_s is None else float(steady_s)
        if self._last_stamp is not None:
            d_stamp = stamp_s - self._last_stamp[0]
            d_steady = steady - self._last_stamp[1]
            if d_stamp < -CLOCK_JUMP_S or d_stamp > d_steady + CLOCK_JUMP_S:
                self._timeline_offset_s += d_steady - d_stamp
                self.clock_jumps += 1
                self.log.warning(
                    f'clock jumped by {d_stamp - d_steady:+.1f} s between measurements: '
                    f'counting the {d_steady:.2f} s that passed')
        self._last_stamp = (stamp_s, steady)
        return stamp_s + self._timeline_offset_s

    def on_measurement(self, msg: Any, stamp_s: float | None, arrival_s: float,
                       steady_s: float | None = None, age_s: float | None = None) -> float | None:
        """One PackMeasurement-shaped ``msg`` stamped ``stamp_s`` (s; None: use ``arrival_s``),
        received at ``arrival_s`` (s, the caller's clock) and ``steady_s`` (monotonic s).

        ``age_s``: how old it is on arrival (None: unknown, not checked). Returns the estimator
        time (s) if it was used, else None (rejected and counted, one message per new reason).
        """
        t_s = self.timeline_s(arrival_s if stamp_s is None else stamp_s, steady_s)
        reason = interface.measurement_reject_reason(
            msg, self.n, self.temperature_sensors, t_s, self.last_t_s, age_s,
            self.config.measurement_timeout_s)
        if reason is not None:
            self._reject(reason)
            return None
        self.last_reject_reason = None
        valid, temperature = interface.step_from_measurement(
            self.estimator, msg, t_s, self.last_t_s, self.sensor_of_cell,
            self.config.bleed_resistance_ohm)
        self.last_t_s = t_s
        self.last_measurement = (arrival_s, msg, valid, temperature)
        return t_s

    def _reject(self, reason: str) -> None:
        """Count a rejected measurement; one message per new reason."""
        self.rejected += 1
        if reason != self.last_reject_reason:
            self.last_reject_reason = reason
            if self.last_measurement is None:
                # at start-up the driver publishes before every frame group has arrived once:
                # waiting, not a fault
                self.log.info(f'waiting for the first usable measurement: {reason}')
            else:
                self.log.warning(f'measurement rejected: {reason} '
                                 f'({self.rejected} rejected so far)')

    def on_protection(self, trip_latched: bool) -> None:
        """Protection's latched-trip flag (ProtectionStatus.trip_latched)."""
        self.trip_latched = bool(trip_latched)

    # ------------------------------------------------------------------ service
    def set_soc(self, cell_soc: ArrayLike, from_ocv: bool = False,
                force: bool = False) -> tuple[bool, str]:
        """The set_soc service: (success, message). ``cell_soc``: one value or one per cell,
        0..1; ``from_ocv``: re-anchor from the last voltages, refused unless at rest or
        ``force``.
        """
        soc = np.asarray(cell_soc, dtype=float).ravel()
        if from_ocv:
            if self.last_measurement is None:
                return False, 'no measurement yet'
            if not (self.estimator.at_rest or force):
                return False, (f'pack not at rest ({self.estimator.rest_s:.0f} of '
                               f'{self.config.rest_time_s:g} s): use force to re-anchor')
            _, msg, valid, temperature = self.last_measurement
            used = self.estimator.reanchor_from_ocv(
                np.asarray(msg.cell_voltages_v, dtype=float),
                np.where(np.isfinite(temperature), temperature, 25.0), valid)
            if not used.any():
                return False, 'no valid cell voltage'
            return True, f're-anchored {int(used.sum())} of {self.n} cells from OCV'
        if soc.size not in (1, self.n):
            return False, f'cell_soc has {soc.size} values: give 1 or {self.n}'
        if not np.all(np.isfinite(soc)) or np.any((soc < 0.0) | (soc > 1.0)):
            return False, 'cell_soc must be within 0..1'
        self.estimator.set_soc(soc)
        return True, f'SoC set on {self.n} cells'

    # ------------------------------------------------------------------ outputs
    def estimate(self) -> Estimate:
        """The present estimate; current limits 0 while protection reports a latched trip."""
        est = self.estimator.estimate()
        if self.trip_latched:
            for name in LIMIT_FIELDS:
                setattr(est, name, 0.0)
        return est


class CsvMeasurement:
    """A PackMeasurement-shaped record of one cell from a CSV row (estimate_csv): contactors
    unknown (stale), so no zero-current calibration; nothing stale otherwise.
    """

    __slots__ = ('cell_voltages_v', 'cell_voltage_valid', 'temperatures_degc',
                 'temperature_valid', 'pack_current_a', 'current_stale', 'cell_voltages_stale',
                 'temperatures_stale', 'cell_balancing', 'pack_voltage_v', 'contactors_stale',
                 'negative_contactor_closed', 'positive_contactor_closed')

    def __init__(self, current_a: float, voltage_v: float, temperature_degc: float) -> None:
        self.cell_voltages_v = (float(voltage_v),)
        self.cell_voltage_valid = (True,)
        self.temperatures_degc = (float(temperature_degc),)
        self.temperature_valid = (True,)
        self.pack_current_a = float(current_a)
        self.current_stale = False
        self.cell_voltages_stale = False
        self.temperatures_stale = False
        self.cell_balancing = ()
        self.pack_voltage_v = math.nan
        self.contactors_stale = True
        self.negative_contactor_closed = False
        self.positive_contactor_closed = False
