"""The second opinion: the pack's report against our own estimator and protection (own/...).

:func:`disagreements` (SoC and current limits beyond the bounds of can.pack_bms),
:func:`trip_disagreement` (our latched trips while the pack reports no fault) and
:class:`SecondOpinion`, which holds our latest own values and gives the diagnostic status.
"""
from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from ..pack_state_machine import STATE_ERROR
from ..protection.limits import LEVEL_TRIP
from .control import ControlConfig
from .decoder import UNKNOWN_NAME, PackReport
from .fields import report_limits


def disagreements(report: PackReport, own_estimate: float, own_limits: Sequence[float],
                  control: ControlConfig) -> list[tuple[str, float, float, float, float]]:
    """(what, pack value, our value, |difference|, bound) where the pack and our own
    estimate / protection differ beyond the bounds of ``control``. ``own_estimate``:
    our pack SoC (0..1, NaN if none); ``own_limits``: our (charge, discharge) limits, A.
    """
    out: list[tuple[str, float, float, float, float]] = []
    if report.state_name == UNKNOWN_NAME:
        return out
    rows = [('pack_soc', report.pack_soc, own_estimate, control.soc_bound)]
    charge, discharge = report_limits(report)
    if math.isfinite(report.charge_current_limit_a):
        rows.append(('charge_current_limit_a', charge, own_limits[0],
                     control.current_limit_bound_a))
    if math.isfinite(report.discharge_current_limit_a):
        rows.append(('discharge_current_limit_a', discharge, own_limits[1],
                     control.current_limit_bound_a))
    for what, theirs, ours, bound in rows:
        if math.isfinite(theirs) and math.isfinite(ours) and abs(theirs - ours) > bound:
            out.append((what, theirs, ours, abs(theirs - ours), bound))
    return out


def trip_disagreement(report: PackReport, own_trips: Collection[str]) -> str | None:
    """A text when our own protection holds latched trips (``own_trips``: their limit ids)
    while the pack reports no fault, else None (a known report only).
    """
    if report.state_name == UNKNOWN_NAME or not own_trips:
        return None
    if any(level >= LEVEL_TRIP for _, level, _ in report.flags) or report.state == STATE_ERROR:
        return None
    return f'bms_ros trips {", ".join(sorted(own_trips))}, the pack reports no fault'


@dataclass(frozen=True)
class OpinionStatus:
    """The second opinion's diagnostic status; ``warn_log``: the disagreeing set changed to a
    non-empty one (log ``message`` once).
    """

    level: str                          # OK or WARN (DiagnosticStatus by name)
    message: str
    values: list[tuple[str, str]]
    warn_log: bool


class SecondOpinion:
    """Our own estimate and protection status (own/...) beside the pack's report."""

    def __init__(self, control: ControlConfig) -> None:
        self.control = control
        self.own_soc = math.nan                     # our pack SoC, 0..1 (NaN: none)
        self.own_limits = (math.nan, math.nan)      # our (charge, discharge) limits, A
        self.own_trips: tuple[str, ...] = ()        # limit ids of our latched trips
        self.seen = False                           # an own estimate has arrived
        self._last_disagreement: tuple[str, ...] = ()

    def on_estimate(self, pack_soc: float) -> None:
        """Our own estimate arrived: its pack SoC (0..1)."""
        self.own_soc = float(pack_soc)
        self.seen = True

    def on_status(self, charge_limit_a: float, discharge_limit_a: float,
                  latched: Iterable[str]) -> None:
        """Our own protection status arrived: its limits (A) and latched trips' limit ids."""
        self.own_limits = (float(charge_limit_a), float(discharge_limit_a))
        self.own_trips = tuple(latched)

    def status(self, report: PackReport) -> OpinionStatus:
        """The diagnostic status now: WARN where pack and ours disagree (after a first own
        estimate), else OK.
        """
        rows = disagreements(report, self.own_soc, self.own_limits, self.control)
        trips = trip_disagreement(report, self.own_trips)
        if not self.seen:
            level, message = 'OK', 'no own estimate yet (own/estimate)'
        elif rows or trips:
            level = 'WARN'
            message = 'pack and bms_ros disagree: ' + '; '.join(
                [f'{what} pack {theirs:.3g} vs ours {ours:.3g} (|diff| {diff:.3g} > {bound:g})'
                 for what, theirs, ours, diff, bound in rows] + ([trips] if trips else []))
        else:
            level, message = 'OK', 'pack and bms_ros agree within the bounds'
        warn_log = False
        if [r[0] for r in rows] != list(self._last_disagreement):
            self._last_disagreement = tuple(r[0] for r in rows)
            warn_log = bool(rows)
        values = [
            ('pack_soc', f'{report.pack_soc:.4f}'), ('own_soc', f'{self.own_soc:.4f}'),
            ('pack_charge_current_limit_a', f'{report.charge_current_limit_a:.2f}'),
            ('own_charge_current_limit_a', f'{self.own_limits[0]:.2f}'),
            ('pack_discharge_current_limit_a', f'{report.discharge_current_limit_a:.2f}'),
            ('own_discharge_current_limit_a', f'{self.own_limits[1]:.2f}'),
            ('own_trips', ' '.join(self.own_trips)),
            ('disagreeing', ' '.join([r[0] for r in rows] + (['trips'] if trips else [])))]
        return OpinionStatus(level, message, values, warn_log)
