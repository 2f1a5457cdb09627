"""The simulated pack's command timeouts (CommandWatchdog), as a real contactor controller's."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
from numpy.typing import ArrayLike

from ..sim_faults import CONTACTORS

if TYPE_CHECKING:
    from .model import PackModel


class CommandWatchdog:
    """The pack's command timeouts, as a real contactor controller has them.

    No contactor command frame for ``contactor_command_timeout_s``: every contactor is commanded
    open and stays so until the next command frame, which is obeyed at once. No balancing
    command for ``balancing_command_timeout_s``: bleeding stops until the next one. The clocks
    start at the first command (before it, the contactors are open and nothing bleeds anyway).

    The timeouts run on ``clock`` (s): the node passes the wall clock, because a controller's
    timer does not wait for a simulation that slipped behind (a held tick thread). Without one
    they run on bus time, simulated seconds / ``time_scale``, the clock the node's frame timing
    runs on (equal to the wall clock while nothing slips).
    """

    def __init__(self, model: PackModel, time_scale: float | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        config = model.config
        self.model = model
        self.time_scale = float(time_scale or config.time_scale)
        self.clock = clock
        self.contactor_timeout_s = config.contactor_command_timeout_s
        self.balancing_timeout_s = config.balancing_command_timeout_s
        # clock s of the last command; None: none since a timeout
        self._contactor_at_s: float | None = None
        self._balancing_at_s: float | None = None
        self.contactor_timeouts = 0      # expiries that found a contactor commanded closed
        self.contactor_silences = 0      # every expiry
        self.balancing_timeouts = 0      # expiries that found a cell bleeding

    @property
    def bus_time_s(self) -> float:
        """Bus time now: the model's simulated time / time_scale (s)."""
        return self.model.sim_time_s / self.time_scale

    def now_s(self) -> float:
        """The timeouts' clock now (s): ``clock``, else bus time."""
        return self.clock() if self.clock is not None else self.bus_time_s

    def contactor_command(self, negative_closed: bool, precharge_closed: bool,
                          positive_closed: bool) -> None:
        """A contactor command frame arrived: obey it and restart the timeout."""
        self.model.set_contactors(negative_closed, precharge_closed, positive_closed)
        self._contactor_at_s = self.now_s()

    def balancing_command(self, cell_bleed: ArrayLike) -> None:
        """A balancing command arrived: obey it and restart the timeout (ValueError if bad)."""
        self.model.set_bleed(cell_bleed)
        self._balancing_at_s = self.now_s()

    def check(self) -> list[tuple[str, str]]:
        """Apply the timeouts at the clock's present time; one (level, text) per expiry."""
        now = self.now_s()
        events: list[tuple[str, str]] = []
        model = self.model
        if self._contactor_at_s is not None \
                and now - self._contactor_at_s > self.contactor_timeout_s:
            silent_s = now - self._contactor_at_s
            self._contactor_at_s = None
            self.contactor_silences += 1
            closed = [name for name, on in zip(CONTACTORS, model.contactors_commanded) if on]
            model.set_contactors(False, False, False)
            if closed:
                self.contactor_timeouts += 1
                events.append(('warning', f'no contactor command for {silent_s:.3f} s (timeout '
                               f'{self.contactor_timeout_s:g} s): opening {", ".join(closed)} '
                               f'(command timeout {self.contactor_timeouts})'))
            else:
                events.append(('info', f'no contactor command for {silent_s:.3f} s: every '
                               'contactor already commanded open'))
        if self._balancing_at_s is not None \
                and now - self._balancing_at_s > self.balancing_timeout_s:
            silent_s = now - self._balancing_at_s
            self._balancing_at_s = None
            bleeding = int(np.count_nonzero(model.bleed))
            model.set_bleed(np.zeros(model.cells, dtype=bool))
            if bleeding:
                self.balancing_timeouts += 1
                events.append(('warning', f'no balancing command for {silent_s:.3f} s (timeout '
                               f'{self.balancing_timeout_s:g} s): bleeding of {bleeding} cells '
                               f'stopped (balancing timeout {self.balancing_timeouts})'))
        return events
