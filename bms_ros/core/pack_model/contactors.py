"""Contactors, pre-charge and the DC link of the simulated pack.

:class:`Contactors`: three contactors (negative, positive, precharge) whose auxiliary contacts
follow the command after a delay, or stay welded / stuck open under a fault. A mixin of
PackModel (:class:`ContactorsMixin`) commands them, reads their feedback and steps the DC link:
a capacitor charged through the pre-charge resistor while negative + pre-charge are closed,
tied to the pack while negative + positive are closed, else discharging through its
discharge resistor (and through a shorted load when that fault is injected).
"""
from __future__ import annotations

import math

import numpy as np

from .state import FloatArray, PackModelState


class Contactors:
    """Three contactors whose auxiliary contacts follow the command after a delay."""

    def __init__(self, closing_delay_s: float, opening_delay_s: float) -> None:
        self.closing_delay_s = closing_delay_s
        self.opening_delay_s = opening_delay_s
        self.commanded = [False, False, False]
        self.actual = [False, False, False]
        self.changed_at_s = [0.0, 0.0, 0.0]

    def command(self, k: int, closed: bool, now_s: float) -> None:
        """Command contactor ``k`` (0 negative, 1 positive, 2 precharge) at ``now_s`` (s)."""
        if bool(closed) != self.commanded[k]:
            self.commanded[k] = bool(closed)
            self.changed_at_s[k] = now_s

    def update(self, now_s: float, welded: list[bool], stuck_open: list[bool]) -> None:
        """Feedback at ``now_s`` (s): the command once its delay has passed, unless welded
        (closed) or stuck open.
        """
        for k in range(3):
            want = self.commanded[k]
            if want != self.actual[k]:
                delay = self.closing_delay_s if want else self.opening_delay_s
                if now_s - self.changed_at_s[k] >= delay - 1e-9:
                    self.actual[k] = want
            if welded[k]:
                self.actual[k] = True
            elif stuck_open[k]:
                self.actual[k] = False


class ContactorsMixin(PackModelState):
    """PackModel's contactor commands and feedback, and the DC link step."""

    def set_contactors(self, negative_closed: bool, precharge_closed: bool,
                       positive_closed: bool) -> None:
        """Command the three contactors (true = close); feedback follows after the delays."""
        now = self.sim_time_s
        self._contactors.command(0, negative_closed, now)
        self._contactors.command(1, positive_closed, now)
        self._contactors.command(2, precharge_closed, now)

    @property
    def negative_contactor_closed(self) -> bool:
        """True while the negative contactor is (physically) closed."""
        return self._contactors.actual[0]

    @property
    def positive_contactor_closed(self) -> bool:
        """True while the positive contactor is (physically) closed."""
        return self._contactors.actual[1]

    @property
    def precharge_relay_closed(self) -> bool:
        """True while the precharge relay is (physically) closed."""
        return self._contactors.actual[2]

    @property
    def contactors_commanded(self) -> tuple[bool, ...]:
        """Commanded state (negative, positive, precharge), true = closed."""
        return tuple(self._contactors.commanded)

    def _link_step(self, demand: float, r0: FloatArray, dt: float) -> float:
        """The pack current of one step (A, + = charging) for the demand (A) from the pack EMF
        at the step's start (OCV + RC voltages); steps the DC link voltage when the pack is not
        tied to it.
        """
        cfg = self.config
        negative, positive, precharge = self._contactors.actual
        r_short = self.faults.short_resistance_ohm
        c_link = cfg.link_capacitance_f
        if negative and positive:
            if math.isfinite(r_short):
                source_v = self._source_v()
                # the shorted load in parallel with the demand: V = E + I R, I = I_d - V / R_s
                r_pack = float(np.sum(r0))
                v_pack = (source_v + demand * r_pack) / (1.0 + r_pack / r_short)
                return demand - v_pack / r_short
            return demand
        # link RC circuit, exact: dV/dt = (a - b V), settling to a / b
        b = 1.0 / (cfg.link_discharge_resistance_ohm * c_link)
        if math.isfinite(r_short):
            b += 1.0 / (r_short * c_link)
        a = 0.0
        source_v = 0.0
        if negative and precharge:
            source_v = self._source_v()
            g_pre = 1.0 / (cfg.precharge_resistance_ohm * c_link)
            a = source_v * g_pre
            b += g_pre
        v_old = self.link_voltage_v
        v_inf = a / b
        self.link_voltage_v = v_inf + (v_old - v_inf) * math.exp(-b * dt)
        i_pack = 0.0
        if negative and precharge:
            # mean pre-charge current over the step, discharging the pack
            v_mid = 0.5 * (v_old + self.link_voltage_v)
            i_pack = -(source_v - v_mid) / cfg.precharge_resistance_ohm
        return i_pack

    def _source_v(self) -> float:
        """The pack EMF (V): the sum of the OCV and RC voltages (only where it is needed)."""
        return float(np.add.reduce(self.ocv_v + self.rc_v))
