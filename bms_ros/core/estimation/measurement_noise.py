"""The SoC filter's correlated voltage doubt: the polarisation the model does not hold, per cell.

The DFN's diffusion leaves tens to hundreds of mV after minutes of load that the RC pairs do not
explain; the error is correlated over minutes, so treated as white noise every sample would
re-count it and a flat OCV turns it into a large SoC drift. :class:`CorrelatedDoubt` owns what
that doubt needs: the low-passes of the load, the SoC variance the count alone has gathered
since its last confident point (``count_var``), the relaxation still to come at rest (set by
the pack estimator) and whether a cell was just started. :class:`~.soc_filter.SocFilter` asks
it for the extra measurement variance and tells it of starts, predictions and anchors.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from ..ocv import FloatOrArray
from .resistance import SPHERE_DIFFUSION_RATIO

if TYPE_CHECKING:
    from ..cell import CellSpec
    from .config import EstimatorConfig

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
Index = NDArray[np.intp]


class CorrelatedDoubt:
    """Per-cell state of the correlated (polarisation, model error, relaxation) voltage doubt."""

    def __init__(self, cell: CellSpec, n_cells: int, config: EstimatorConfig,
                 ocv_slope: Callable[[FloatArray], FloatArray]) -> None:
        self.config = config
        self.n = int(n_cells)
        self.capacity_nominal_ah = cell.capacity_ah
        self._ocv_slope = ocv_slope
        # low-pass of |I| / 1 C over polarisation_time_s: the diffusion the model misses
        # builds up over minutes of load, so its doubt follows this, not only the present |I|
        self.recent_load_c = np.zeros(self.n)
        # low-pass of |I| / 1 C over polarisation_load_time_s (0: the one above): on LFP the
        # load's polarisation relaxes within a stop of tens of seconds, the floor stays
        self.fast_load_c = np.zeros(self.n)
        # relaxation still to come at rest (V, set by the pack estimator from the voltage's
        # drift): part of the correlated doubt, so a cell still relaxing is no OCV reading
        self.relaxation_doubt_v = np.zeros(self.n)
        # SoC variance the count alone has gathered since its last confident point (a start,
        # an OCV or end-of-charge anchor): voltage updates do not shrink it
        self.count_var = np.zeros(self.n)
        self.last_dt_s = 1.0
        self.fresh = np.zeros(self.n, dtype=bool)   # started, no voltage update yet

    def start(self, idx: Index, soc: FloatArray, soc_var: FloatArray, from_ocv: bool,
              ranged: BoolArray | None = None) -> None:
        """Cells ``idx`` (re)started at ``soc`` of variance ``soc_var``; ``from_ocv``: read from
        a voltage (no surer than ``polarisation_anchor_doubt_v`` allows), else a given SoC.
        ``ranged`` (per cell of ``idx``): the start under load covered the whole SoC range the
        unknown polarisation allows (:mod:`.voltage_soc`), so its doubt is honest and the count
        from there is a confident point: the correlated doubt holds from the start (a point
        read at one assumed polarisation is biased, so there the voltage keeps its weight).
        """
        self.count_var[idx] = np.maximum(soc_var, self.ocv_doubt2(soc)) if from_ocv else soc_var
        self.fresh[idx] = from_ocv        # a given SoC is a confident point under load too
        if ranged is not None and from_ocv:
            self.count_var[idx] = np.where(ranged, 0.0, self.count_var[idx])
            self.fresh[idx] &= ~ranged

    def predict(self, dt_s: float, true_current_a: FloatArray) -> None:
        """Low-pass the load (|I| / 1 C) over one prediction step of ``dt_s`` (s)."""
        self.last_dt_s = dt_s
        self.fresh[:] = False
        w: float | FloatArray = math.exp(-dt_s / self.config.polarisation_time_s)
        self.recent_load_c *= w
        self.recent_load_c += ((1.0 - w) / self.capacity_nominal_ah) * np.abs(true_current_a)
        if self.config.polarisation_load_time_s > 0.0:
            w = np.exp(-dt_s / self.config.polarisation_load_time_s)
            self.fast_load_c *= w
            self.fast_load_c += ((1.0 - w) / self.capacity_nominal_ah) * np.abs(true_current_a)

    def counted(self, soc_var_increase: FloatArray) -> None:
        """The count's own SoC variance grew by this (per cell) in a prediction step."""
        self.count_var += soc_var_increase

    def anchored(self, cells: BoolArray, soc_var_after: FloatArray, soc: FloatArray) -> None:
        """A direct SoC measurement (OCV or end-of-charge anchor) of the cells in mask."""
        self.count_var = np.where(cells, np.minimum(self.count_var, np.maximum(
            soc_var_after, self.ocv_doubt2(soc))), self.count_var)
        self.fresh &= ~cells

    def confident(self, cells: BoolArray) -> None:
        """The cells' SoC doubt was just made honest (a given SoC truncated to the range a
        voltage under load allows): a confident point of the count, the doubt holds from here.
        """
        self.count_var = np.where(cells, 0.0, self.count_var)
        self.fresh &= ~cells

    def noise2(self, current_a: FloatOrArray, offset_a: FloatArray, valid: BoolArray,
               soc: FloatArray | None = None) -> FloatArray:
        """Measurement variance (V^2) of the polarisation the model does not hold.

        Its size sigma = ``polarisation_noise_per_c_v`` x (low-pass of |I| / 1 C over
        ``polarisation_time_s``); over that time it carries the information of one sample, so
        each sample's variance is sigma^2 x time / dt. That doubt is only given where the count
        is sure (its own SoC variance since the last confident point, ``count_var``, below
        ``polarisation_count_std``^2, fading linearly to none there): where the count is
        unsure (a wrong or no initial SoC, a start under load) the voltage keeps its weight --
        except in a knee (OCV slope at ``soc`` >= ``polarisation_knee_slope_v``), where the
        polarisation under load is largest (LFP: 200-300 mV at 0.3-0.5 C below 20 %) and
        read as SoC it drags an unsure count 5-10 points further the wrong way.
        """
        cfg = self.config
        # a start under load (unknown polarisation) is no confident point of the count
        loaded = self.fresh & valid & (np.abs(np.asarray(current_a) - offset_a)
                                       > cfg.rest_current_c * self.capacity_nominal_ah)
        self.count_var = np.where(loaded, np.maximum(self.count_var, 0.25), self.count_var)
        self.fresh &= ~valid
        load_c = self.fast_load_c if cfg.polarisation_load_time_s > 0.0 else self.recent_load_c
        pol_v = cfg.model_error_v + cfg.polarisation_noise_per_c_v * load_c \
            + self.relaxation_doubt_v
        share = self.count_sure_share()
        if cfg.polarisation_knee_slope_v > 0.0 and soc is not None:
            share = np.where(self._ocv_slope(soc) >= cfg.polarisation_knee_slope_v, 1.0, share)
        n_corr = max(cfg.polarisation_time_s / self.last_dt_s, 1.0)
        out: FloatArray = pol_v ** 2 * n_corr * share
        return out

    def count_sure_share(self) -> FloatArray:
        """Per cell, how sure the count is for a correlated doubt (0..1): 1 - ``count_var`` /
        ``polarisation_count_std``^2, none beyond (a wrong or unknown start keeps the voltage).
        """
        out: FloatArray = np.maximum(
            1.0 - self.count_var / self.config.polarisation_count_std ** 2, 0.0)
        return out

    def ocv_doubt2(self, soc: FloatArray) -> FloatArray:
        """SoC variance of a start or anchor from OCV for the count's confidence: an OCV read is
        off by hysteresis and relaxation left (``polarisation_anchor_doubt_v``), which on a
        plateau spans tens of % (the filter's own anchor doubt may be smaller).
        """
        doubt_v = self.config.polarisation_anchor_doubt_v
        out: FloatArray = (doubt_v / np.maximum(self._ocv_slope(soc), 1e-3)) ** 2
        return out


# a sphere under constant flux: bulk minus surface SoC = (R^2 / 15 D) dSoC/dt, and its slowest
# diffusion mode relaxes with R^2 / (beta1^2 D) (beta1^2: resistance.SPHERE_DIFFUSION_RATIO)
SPHERE_SURFACE_RATIO = SPHERE_DIFFUSION_RATIO / 15.0


def surface_doubt_v(cell: CellSpec, config: EstimatorConfig, soc: FloatArray, ocv_v: FloatArray,
                    slope_v: FloatArray, current_a: FloatArray,
                    temperature_degc: FloatOrArray) -> FloatArray:
    """Voltage doubt (V, >= 0) of the OCV's bend between the bulk and the surface SoC under load.

    The voltage under load reads the particles' surface SoC, which a current holds away from
    the bulk by dz = ``surface_soc_doubt`` x (beta1^2 / 15) x ``diffusion_time_s`` x |I| /
    (3600 Q_nominal) (a sphere whose slowest mode relaxes with the slow pair's time constant;
    0.11 per 1 C with 300 s), below the bulk discharging, above it charging. The slow pair
    holds that difference times the OCV's local slope ``slope_v``; what it cannot hold is the
    OCV's bend over dz, |OCV(soc +- dz) - OCV(soc) - slope dz| (beyond the table's ends the
    OCV extrapolated with the end's 2 % secant: a surface emptied under load is the cut-off's
    drop, which the table's last value would not show): none where the OCV is straight,
    hundreds of mV where the surface reaches a knee first (Mohtat2020 at 10 degC below 9 %:
    90-380 mV beyond the model at 0.5-0.9 C). ``ocv_v``: OCV at ``soc`` and the temperature.
    """
    dz = (config.surface_soc_doubt * SPHERE_SURFACE_RATIO * config.diffusion_time_s / 3600.0
          / cell.capacity_ah) * np.asarray(current_a, dtype=float)
    surface = soc + dz
    inside = np.minimum(np.maximum(surface, 0.0), 1.0)
    # beyond the table's ends the surface's OCV goes on with the end's slope (the table's
    # inverse does the same for anchors, anchors.soc_of_ocv): an emptied surface under load
    # is the cut-off's steep drop, not the table's last value
    beyond = surface - inside
    end_slope = np.where(beyond < 0.0, cell.ocv.secant_slope(0.0, 0.01),
                         cell.ocv.secant_slope(1.0, 0.01))
    surface_ocv = cell.ocv.ocv(inside, temperature_degc) + end_slope * beyond
    out: FloatArray = np.abs(surface_ocv - ocv_v - slope_v * dz)
    return out
