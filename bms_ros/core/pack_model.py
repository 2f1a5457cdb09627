"""Simulated battery pack: per-cell equivalent circuit, lumped thermal model, contactors, DC link.

Everything is vectorised over the series cells (each a group of parallel cells, see PackSpec).
Current sign: + = charging, - = discharging, for the pack and for every cell.

Per cell i (one RC pair, zero-order hold of the current over a step dt, exact discretisation):
    v_rc[k+1] = v_rc[k] * exp(-dt/tau1) + r1 * (1 - exp(-dt/tau1)) * i_cell
    soc[k+1]  = soc[k] + i_cell * dt / (3600 * capacity_ah)
    v_cell    = OCV(soc, T) + i_cell * R0(T) + v_rc
    i_cell    = i_pack - v_cell / R_bleed (if bleeding) - i_self_discharge
i_pack: an external demand, else the charger while plugged in (CC-CV, ChargerConfig), else the
load profile.
Thermal, per cell, exact for the cooling term (neighbour temperatures held over a step):
    m cp dT/dt = i_cell^2 R0 + v_rc^2 / r1 + bleed heat + thermal-event heat
                 - cooling (T - ambient) - g_nb * sum(T - T_neighbour)
DC link: capacitor C charged through the pre-charge resistor when negative + pre-charge are
closed, tied to the pack when negative + positive are closed, else it discharges through its
discharge resistor (and through a shorted load when that fault is injected).
"""
import logging
import math
import os
from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError
from .load_profile import ConstantLoad, ExternalLoad, LoadProfile, load_from_section
from .sim_faults import CONTACTORS, FAULTS, FaultError, FaultSet

log = logging.getLogger(__name__)

SIMULATOR_FIELDS = (
    'seed', 'time_scale', 'step_s', 'initial_soc', 'soc_spread', 'capacity_spread_rel',
    'r0_spread_rel', 'self_discharge_a', 'self_discharge_spread_rel', 'ambient_degc',
    'initial_temperature_degc', 'neighbour_conductance_w_per_k', 'bleed_resistance_ohm',
    'link_capacitance_f', 'precharge_resistance_ohm', 'link_discharge_resistance_ohm',
    'contactors', 'noise', 'demand_timeout_s', 'faded_cells', 'load', 'faults',
    'balancing_command_timeout_s', 'cooling_w_per_k', 'charger')

# spreads are Gaussian, truncated at this many standard deviations so no draw is unphysical
SPREAD_TRUNCATION = 3.0


@dataclass(frozen=True)
class NoiseConfig:
    """Standard deviations of the Gaussian measurement noise."""

    cell_voltage_v: float = 0.0
    pack_voltage_v: float = 0.0
    link_voltage_v: float = 0.0
    current_a: float = 0.0
    temperature_degc: float = 0.0


@dataclass(frozen=True)
class ChargerConfig:
    """The simulated charger (CC-CV), plugged in while the pack is in CHARGE (the node).

    CC at the smaller of current_a and the BMS's allowed charge current, CV with the highest
    cell at cell_voltage_v, done once the CV current falls below end_current_a.
    """

    current_a: float = None          # A, pack; None: half the cell's charge_current_max_a x p
    cell_voltage_v: float = None     # V; None: the cell's voltage_max_v
    end_current_a: float = None      # A, pack; None: C/20 of the nominal capacity


@dataclass(frozen=True)
class FadedCell:
    """One cell made weaker than the spread would: capacity and R0 multiplied."""

    index: int
    capacity_factor: float = 1.0
    r0_factor: float = 1.0


@dataclass(frozen=True)
class SimulatorConfig:
    """The `simulator:` section of a profile (see config/profiles/*.yaml for each field)."""

    seed: int = 1
    time_scale: float = 1.0                    # simulated seconds per wall second (node)
    step_s: float = 0.01                       # model step, simulated seconds
    initial_soc: float = 0.5
    soc_spread: float = 0.0                    # std of the initial SoC, absolute (0..1)
    capacity_spread_rel: float = 0.0           # std of capacity / nominal
    r0_spread_rel: float = 0.0                 # std of R0 / nominal (R1 follows)
    self_discharge_a: float = 0.0              # mean self-discharge current, magnitude
    self_discharge_spread_rel: float = 0.0
    ambient_degc: float = 25.0
    initial_temperature_degc: float = None     # None: ambient
    neighbour_conductance_w_per_k: float = 0.0
    bleed_resistance_ohm: float = 33.0
    link_capacitance_f: float = 1e-3
    precharge_resistance_ohm: float = 50.0
    link_discharge_resistance_ohm: float = 1e4
    contactor_closing_delay_s: float = 0.03
    contactor_opening_delay_s: float = 0.02
    # no contactor / balancing command frame for this long (bus s = simulated s / time_scale):
    # the pack opens every contactor / stops bleeding (CommandWatchdog, the node only)
    contactor_command_timeout_s: float = 0.5
    balancing_command_timeout_s: float = 5.0
    noise: NoiseConfig = NoiseConfig()
    demand_timeout_s: float = 0.0              # external demand expires after this; 0 = never
    faded_cells: tuple = ()
    faults: tuple = ()                         # (fault, index, value) active at start
    load: LoadProfile = field(default_factory=lambda: ConstantLoad(0.0))
    # W/K from one cell to ambient (the pack's cooling); None: the cell file's thermal value
    cooling_w_per_k: float = None
    charger: ChargerConfig = ChargerConfig()

    @classmethod
    def from_section(cls, section, pack):
        """Validate a `simulator:` Section for ``pack``; ConfigError names file and field."""
        section.reject_unknown(SIMULATOR_FIELDS)
        n = pack.cells_series
        num = section.number
        contactors = section.section('contactors', {})
        contactors.reject_unknown(('closing_delay_s', 'opening_delay_s', 'command_timeout_s'))
        noise = section.section('noise', {})
        noise.reject_unknown(NoiseConfig.__dataclass_fields__)
        faded = []
        for item in section.sections('faded_cells', []):
            item.reject_unknown(('index', 'capacity_factor', 'r0_factor'))
            faded.append(FadedCell(item.integer('index', minimum=0, maximum=n - 1),
                                   item.number('capacity_factor', 1.0, exclusive_minimum=0.0),
                                   item.number('r0_factor', 1.0, exclusive_minimum=0.0)))
        faults = []
        probe = FaultSet(n, pack.temperature_sensors)
        for item in section.sections('faults', []):
            item.reject_unknown(('fault', 'index', 'value'))
            fault = item.string('fault', choices=tuple(FAULTS))
            index = item.integer('index', 0, minimum=0)
            value = item.number('value', 0.0)
            try:
                probe.inject(fault, index, value, present_cell_voltage_v=0.0)
            except FaultError as error:
                raise item.error('index' if 'index' in str(error) else 'value',
                                 str(error)) from None
            faults.append((fault, index, value))
        initial_t = section.data.get('initial_temperature_degc')
        charger = section.section('charger', {})
        charger.reject_unknown(ChargerConfig.__dataclass_fields__)
        limits = pack.cell.limits
        charger_config = ChargerConfig(
            current_a=charger.number('current_a', 0.5 * limits.charge_current_max_a,
                                     exclusive_minimum=0.0, maximum=1e5),
            cell_voltage_v=charger.number('cell_voltage_v', limits.voltage_max_v,
                                          exclusive_minimum=0.0, maximum=10.0),
            end_current_a=charger.number('end_current_a', pack.capacity_ah / 20.0,
                                         exclusive_minimum=0.0, maximum=1e5))
        cooling = section.data.get('cooling_w_per_k')
        config = cls(
            seed=section.integer('seed', 1, minimum=0),
            time_scale=num('time_scale', 1.0, exclusive_minimum=0.0, maximum=10000.0),
            step_s=num('step_s', 0.01, exclusive_minimum=0.0, maximum=1.0),
            initial_soc=num('initial_soc', 0.5, minimum=0.0, maximum=1.0),
            soc_spread=num('soc_spread', 0.0, minimum=0.0, maximum=0.2),
            capacity_spread_rel=num('capacity_spread_rel', 0.0, minimum=0.0, maximum=0.2),
            r0_spread_rel=num('r0_spread_rel', 0.0, minimum=0.0, maximum=0.2),
            self_discharge_a=num('self_discharge_a', 0.0, minimum=0.0),
            self_discharge_spread_rel=num('self_discharge_spread_rel', 0.0, minimum=0.0,
                                          maximum=0.3),
            ambient_degc=num('ambient_degc', 25.0, minimum=-60.0, maximum=100.0),
            initial_temperature_degc=None if initial_t is None else num(
                'initial_temperature_degc', minimum=-60.0, maximum=150.0),
            neighbour_conductance_w_per_k=num('neighbour_conductance_w_per_k', 0.0, minimum=0.0),
            bleed_resistance_ohm=num('bleed_resistance_ohm', 33.0, exclusive_minimum=0.0),
            link_capacitance_f=num('link_capacitance_f', 1e-3, exclusive_minimum=0.0),
            precharge_resistance_ohm=num('precharge_resistance_ohm', 50.0,
                                         exclusive_minimum=0.0),
            link_discharge_resistance_ohm=num('link_discharge_resistance_ohm', 1e4,
                                              exclusive_minimum=0.0),
            contactor_closing_delay_s=contactors.number('closing_delay_s', 0.03, minimum=0.0),
            contactor_opening_delay_s=contactors.number('opening_delay_s', 0.02, minimum=0.0),
            contactor_command_timeout_s=contactors.number('command_timeout_s', 0.5,
                                                          exclusive_minimum=0.0, maximum=10.0),
            balancing_command_timeout_s=num('balancing_command_timeout_s', 5.0,
                                            exclusive_minimum=0.0, maximum=600.0),
            noise=NoiseConfig(**{name: noise.number(name, 0.0, minimum=0.0)
                                 for name in NoiseConfig.__dataclass_fields__}),
            demand_timeout_s=num('demand_timeout_s', 0.0, minimum=0.0),
            faded_cells=tuple(faded), faults=tuple(faults),
            load=load_from_section(section.section('load', {}), pack.capacity_ah),
            cooling_w_per_k=None if cooling is None else num('cooling_w_per_k',
                                                              exclusive_minimum=0.0,
                                                              maximum=100.0),
            charger=charger_config)
        if config.link_discharge_resistance_ohm < 20.0 * config.precharge_resistance_ohm:
            # else the link settles below ~95 % of the pack voltage and pre-charge never ends
            raise section.error('link_discharge_resistance_ohm',
                                f'must be >= 20 x precharge_resistance_ohm '
                                f'({20.0 * config.precharge_resistance_ohm:g}), got '
                                f'{config.link_discharge_resistance_ohm:g}')
        return config


class _Contactors:
    """Three contactors whose auxiliary contacts follow the command after a delay."""

    def __init__(self, closing_delay_s, opening_delay_s):
        self.closing_delay_s = closing_delay_s
        self.opening_delay_s = opening_delay_s
        self.commanded = [False, False, False]
        self.actual = [False, False, False]
        self.changed_at_s = [0.0, 0.0, 0.0]

    def command(self, k, closed, now_s):
        if bool(closed) != self.commanded[k]:
            self.commanded[k] = bool(closed)
            self.changed_at_s[k] = now_s

    def update(self, now_s, welded, stuck_open):
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


class PackModel:
    """A simulated pack of ``pack.cells_series`` cells; advance it with step() or advance()."""

    def __init__(self, pack, config=None):
        config = config or SimulatorConfig()
        self.pack = pack
        self.config = config
        self.cell = pack.cell
        self.step_s = config.step_s
        n = self.cells = pack.cells_series
        self.sensors = pack.temperature_sensors
        rng = np.random.default_rng(config.seed)
        # fixed draw order so that one seed always gives the same pack
        capacity_factor = _spread(rng, n, config.capacity_spread_rel)
        r0_factor = _spread(rng, n, config.r0_spread_rel)
        sd_factor = _spread(rng, n, config.self_discharge_spread_rel)
        soc_offset = config.soc_spread * np.clip(rng.standard_normal(n), -SPREAD_TRUNCATION,
                                                 SPREAD_TRUNCATION)
        for faded in config.faded_cells:
            capacity_factor[faded.index] *= faded.capacity_factor
            r0_factor[faded.index] *= faded.r0_factor
        self._noise_rng = np.random.default_rng([config.seed, 1])

        self.capacity_ah = self.cell.capacity_ah * capacity_factor
        self.r0_factor = r0_factor
        self.r1_ohm = self.cell.r1_ohm * r0_factor
        self.tau1_s = self.cell.tau1_s
        self.self_discharge_a = config.self_discharge_a * sd_factor
        self.soc = np.clip(config.initial_soc + soc_offset, 0.0, 1.0)
        self.rc_v = np.zeros(n)
        t0 = config.ambient_degc if config.initial_temperature_degc is None \
            else config.initial_temperature_degc
        self.temperatures_degc = np.full(n, float(t0))
        self.ambient_degc = config.ambient_degc
        self.bleed = np.zeros(n, dtype=bool)
        self.faults = FaultSet(n, self.sensors)
        self.load = config.load
        self.sim_time_s = 0.0
        self.pack_current_a = 0.0
        self.demand_current_a = 0.0
        self.link_voltage_v = 0.0
        charger = config.charger     # unset values from the cell's datasheet limits
        self.charger = ChargerConfig(
            current_a=charger.current_a or 0.5 * self.cell.limits.charge_current_max_a,
            cell_voltage_v=charger.cell_voltage_v or self.cell.limits.voltage_max_v,
            end_current_a=charger.end_current_a or self.cell.capacity_ah / 20.0)
        self.charger_enabled = False     # plugged in (the node: while the pack is in CHARGE)
        self.charge_limit_a = None       # the BMS's allowed charge current, A (None: unknown)
        self.charger_phase = 'off'       # off, CC, CV, done
        self._override_a = None          # A, or W when _override_is_power
        self._override_is_power = False
        self._override_at_s = 0.0
        self._pending_s = 0.0
        self._contactors = _Contactors(config.contactor_closing_delay_s,
                                       config.contactor_opening_delay_s)

        # constants of the exact discretisation
        self._rc_decay = math.exp(-self.step_s / self.tau1_s)
        self._ah_per_as = self.step_s / (3600.0 * self.capacity_ah)
        heat_capacity_j_per_k = self.cell.mass_kg * self.cell.heat_capacity_j_per_kg_k
        neighbours = np.full(n, 2.0)
        neighbours[[0, -1]] = 1.0
        if n == 1:
            neighbours[:] = 0.0
        g_nb = config.neighbour_conductance_w_per_k
        # cooling of one series element (a group of parallel cells) to ambient, W/K
        self.cooling_w_per_k = self.cell.cooling_w_per_k if config.cooling_w_per_k is None \
            else config.cooling_w_per_k * pack.cells_parallel
        self.heat_capacity_j_per_k = heat_capacity_j_per_k
        self._g_total = self.cooling_w_per_k + g_nb * neighbours
        self._thermal_decay = np.exp(-self.step_s * self._g_total / heat_capacity_j_per_k)
        self._g_nb = g_nb
        # temperature sensors: mean of the cells each covers; a sensor with no cell reads the
        # nearest one (more sensors than cells)
        self._sensor_of_cell = pack.sensor_of_cell()
        self._cells_per_sensor = np.bincount(self._sensor_of_cell, minlength=self.sensors)
        self._sensor_fallback = np.minimum(
            n - 1, (np.arange(self.sensors) * n) // self.sensors)

        self.ocv_v = self.cell.ocv.ocv(self.soc, self.temperatures_degc)
        self.r0_ohm = self.cell.r0_at(self.temperatures_degc) * self.r0_factor
        self.cell_current_a = np.zeros(n)
        self.bleed_current_a = np.zeros(n)
        self.cell_voltages_v = self.ocv_v + self.rc_v
        self.pack_voltage_v = float(self.cell_voltages_v.sum())
        for fault, index, value in config.faults:
            self.inject_fault(fault, index, value)

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_profile(cls, profile):
        """A model from a Profile (or a profile path) and its validated `simulator:` section."""
        if isinstance(profile, (str, os.PathLike)):
            from .profile import Profile
            profile = Profile(profile)
        config = SimulatorConfig.from_section(profile.section('simulator'), profile.pack)
        return cls(profile.pack, config)

    # ----------------------------------------------------------------- commands

    def set_contactors(self, negative_closed, precharge_closed, positive_closed):
        """Command the three contactors (true = close); feedback follows after the delays."""
        now = self.sim_time_s
        self._contactors.command(0, negative_closed, now)
        self._contactors.command(1, positive_closed, now)
        self._contactors.command(2, precharge_closed, now)

    def set_bleed(self, cell_bleed):
        """Command the bleed resistors, one bool per cell (true = bleed)."""
        mask = np.asarray(cell_bleed, dtype=bool)
        if mask.shape != (self.cells,):
            raise ValueError(f'cell_bleed: expected {self.cells} values, got {mask.size}')
        self.bleed = mask.copy()

    def set_demand(self, current_a):
        """External demand (A, + = charging) that overrides the load profile."""
        current_a = self._override(current_a, is_power=False)
        if isinstance(self.load, ExternalLoad):
            self.load.set_current(current_a)   # an external load holds the last current demand

    def set_demand_power(self, power_w):
        """External power demand (W, + = charging) that overrides the load profile.

        Converted to a current each step with the pack terminal voltage of the step before.
        An external load is left alone: it holds amps, and this is watts.
        """
        self._override(power_w, is_power=True)

    def _override(self, value, is_power):
        """Set the override (A, or W if ``is_power``); ValueError unless finite."""
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f'demand must be finite, got {value}')
        self._override_a = value
        self._override_is_power = is_power
        self._override_at_s = self.sim_time_s
        return value

    def clear_demand(self):
        """Go back to the load profile."""
        self._override_a = None

    @property
    def thermal_time_constant_s(self):
        """s: heat capacity / cooling of one series element (the whole pack cools with it)."""
        return self.heat_capacity_j_per_k / self.cooling_w_per_k

    def set_ambient(self, degc):
        """Set the ambient temperature (degC); ValueError outside -60..100 degC."""
        degc = float(degc)
        if not (math.isfinite(degc) and -60.0 <= degc <= 100.0):
            raise ValueError(f'ambient must be in -60..100 degC, got {degc}')
        self.ambient_degc = degc

    def set_charger(self, enabled, charge_limit_a=None):
        """Plug the charger in (``enabled``) or out; ``charge_limit_a``: the BMS's allowed
        charge current (A, magnitude; None keeps the last). Unplugging ends a finished charge.
        """
        if charge_limit_a is not None:
            limit = float(charge_limit_a)
            self.charge_limit_a = limit if math.isfinite(limit) else None
        enabled = bool(enabled)
        if enabled != self.charger_enabled:
            self.charger_enabled = enabled
            self.charger_phase = 'CC' if enabled else 'off'
            log.info('charger %s', 'plugged in (CC-CV)' if enabled else 'unplugged')

    def charger_current_a(self):
        """The charger's current now (A, >= 0): CC at the smaller of its rating and the BMS's
        limit, CV with the highest cell at the charger's cell voltage, 0 once done.
        """
        if not self.charger_enabled or self.charger_phase == 'done':
            return 0.0
        cc = self.charger.current_a
        if self.charge_limit_a is not None:
            cc = min(cc, max(0.0, self.charge_limit_a))
        # terminal voltage after one step at current i: OCV + RC decayed + i (R0 + R1 (1 - e))
        decay = self._rc_decay
        slope = self.r0_ohm + self.r1_ohm * (1.0 - decay)
        headroom = self.charger.cell_voltage_v - (self.ocv_v + self.rc_v * decay)
        cv = float(np.min(headroom / slope))
        if cv < cc:
            if self.charger_phase == 'CC':
                log.info('charger: CV at %.3f V per cell', self.charger.cell_voltage_v)
            self.charger_phase = 'CV'
            if cv < self.charger.end_current_a:
                self.charger_phase = 'done'
                log.info('charger: done (CV current below %.2f A)', self.charger.end_current_a)
                return 0.0
            return max(0.0, cv)
        return cc

    def inject_fault(self, fault, index=0, value=0.0):
        """Inject a fault (see bms_ros.core.sim_faults); returns a description. FaultError."""
        present = None
        if fault == 'stuck_cell_voltage' and isinstance(index, (int, np.integer)) \
                and 0 <= index < self.cells:
            present = float(self.cell_voltages_v[index])
        text = self.faults.inject(fault, index, value, present_cell_voltage_v=present)
        log.info('fault injected: %s', text)
        return text

    def clear_fault(self, fault, index=-1):
        """Clear a fault (index -1: all instances; fault 'all': everything)."""
        text = self.faults.clear(fault, index)
        log.info('fault cleared: %s', text)
        return text

    # ----------------------------------------------------------------- simulation

    def advance(self, duration_s):
        """Advance by ``duration_s`` of simulated time in whole steps; returns steps taken."""
        self._pending_s += duration_s
        steps = int(self._pending_s / self.step_s + 1e-9)
        self._pending_s -= steps * self.step_s
        for _ in range(steps):
            self.step()
        return steps

    def demand_a(self, t_s):
        """Demanded current at ``t_s`` (A, + = charging): external override, else the profile."""
        if self._override_a is not None:
            timeout = self.config.demand_timeout_s
            if timeout <= 0.0 or t_s - self._override_at_s <= timeout:
                if self._override_is_power:
                    return self._override_a / max(self.pack_voltage_v, 1.0)
                return self._override_a
            self._override_a = None
            log.info('external demand expired after %.1f s: back to the load profile', timeout)
        if self.charger_enabled:
            return self.charger_current_a()     # plugged in: the charger, not the drive cycle
        return self.load.current_a(t_s)

    def step(self):
        """Advance one step of ``step_s`` simulated seconds."""
        dt = self.step_s
        cfg = self.config
        faults = self.faults
        contactors = self._contactors
        contactors.update(self.sim_time_s, faults.contactor_welded, faults.contactor_stuck_open)
        negative, positive, precharge = contactors.actual
        demand = self.demand_a(self.sim_time_s)
        self.demand_current_a = demand
        temperatures = self.temperatures_degc
        r0 = self.cell.r0_at(temperatures) * self.r0_factor
        # bleed from the last terminal voltage: it changes little within a step
        bleed_a = np.where(self.bleed, self.cell_voltages_v / cfg.bleed_resistance_ohm, 0.0)
        source_v = float(np.sum(self.ocv_v + self.rc_v))     # pack EMF at the start of the step
        r_short = faults.short_resistance_ohm
        c_link = cfg.link_capacitance_f
        if negative and positive:
            if math.isfinite(r_short):
                # the shorted load in parallel with the demand: V = E + I R, I = I_d - V / R_s
                r_pack = float(np.sum(r0))
                v_pack = (source_v + demand * r_pack) / (1.0 + r_pack / r_short)
                i_pack = demand - v_pack / r_short
            else:
                i_pack = demand
        else:
            # link RC circuit, exact: dV/dt = (a - b V), settling to a / b
            b = 1.0 / (cfg.link_discharge_resistance_ohm * c_link)
            if math.isfinite(r_short):
                b += 1.0 / (r_short * c_link)
            a = 0.0
            if negative and precharge:
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
        i_cell = i_pack - bleed_a - self.self_discharge_a
        rc = self.rc_v * self._rc_decay + self.r1_ohm * (1.0 - self._rc_decay) * i_cell
        self.rc_v = rc
        self.soc = np.clip(self.soc + i_cell * self._ah_per_as, 0.0, 1.0)
        # thermal: Joule heat in R0 and R1, bleed resistor heat, injected heat
        heat_w = i_cell * i_cell * r0 + rc * rc / self.r1_ohm + bleed_a * bleed_a \
            * cfg.bleed_resistance_ohm + faults.thermal_event_w
        drive_w = heat_w + self.cooling_w_per_k * self.ambient_degc
        if self._g_nb > 0.0:
            around = np.zeros(self.cells)
            around[1:] += temperatures[:-1]
            around[:-1] += temperatures[1:]
            drive_w += self._g_nb * around
        t_inf = drive_w / self._g_total
        self.temperatures_degc = t_inf + (temperatures - t_inf) * self._thermal_decay
        self.ocv_v = self.cell.ocv.ocv(self.soc, self.temperatures_degc)
        self.r0_ohm = r0
        self.cell_current_a = i_cell
        self.bleed_current_a = bleed_a
        self.cell_voltages_v = self.ocv_v + i_cell * r0 + rc
        self.pack_voltage_v = float(np.sum(self.cell_voltages_v))
        self.pack_current_a = i_pack
        if negative and positive:
            self.link_voltage_v = self.pack_voltage_v
        self.sim_time_s += dt

    # ----------------------------------------------------------------- outputs

    @property
    def negative_contactor_closed(self):
        """True while the negative contactor is (physically) closed."""
        return self._contactors.actual[0]

    @property
    def positive_contactor_closed(self):
        """True while the positive contactor is (physically) closed."""
        return self._contactors.actual[1]

    @property
    def precharge_relay_closed(self):
        """True while the precharge relay is (physically) closed."""
        return self._contactors.actual[2]

    @property
    def contactors_commanded(self):
        """Commanded state (negative, positive, precharge), true = closed."""
        return tuple(self._contactors.commanded)

    def sensor_temperatures_degc(self):
        """True temperature at each sensor: the mean of the cells it covers (degC)."""
        sums = np.bincount(self._sensor_of_cell, weights=self.temperatures_degc,
                           minlength=self.sensors)
        counts = self._cells_per_sensor
        return np.where(counts > 0, sums / np.maximum(counts, 1),
                        self.temperatures_degc[self._sensor_fallback])

    def measured(self):
        """The measurement as the BMS slave reports it, named as PackMeasurement fields.

        Seeded Gaussian noise on every analogue value; NaN for a failed reading; the current
        is + = charging and includes the current-sensor offset fault.
        """
        noise = self.config.noise
        rng = self._noise_rng
        faults = self.faults
        cells = self.cell_voltages_v + noise.cell_voltage_v * rng.standard_normal(self.cells)
        stuck = faults.stuck_cell_voltage_v
        cells = np.where(np.isfinite(stuck), stuck, cells)
        cells[faults.open_wire] = np.nan
        temps = self.sensor_temperatures_degc() + noise.temperature_degc * rng.standard_normal(
            self.sensors)
        temps[faults.temperature_dropout] = np.nan
        return {
            'cell_voltages_v': cells,
            'temperatures_degc': temps,
            'pack_current_a': self.pack_current_a + faults.current_offset_a
            + noise.current_a * float(rng.standard_normal()),
            'pack_voltage_v': max(0.0, self.pack_voltage_v
                                  + noise.pack_voltage_v * float(rng.standard_normal())),
            'link_voltage_v': max(0.0, self.link_voltage_v
                                  + noise.link_voltage_v * float(rng.standard_normal())),
            'negative_contactor_closed': self.negative_contactor_closed,
            'positive_contactor_closed': self.positive_contactor_closed,
            'precharge_relay_closed': self.precharge_relay_closed,
            'cell_balancing': self.bleed.copy(),
        }

    def truth(self):
        """Ground truth named as the bms_interfaces/SimTruth fields."""
        return {
            'cell_soc': self.soc.copy(),
            'cell_voltages_v': self.cell_voltages_v.copy(),
            'cell_ocv_v': self.ocv_v.copy(),
            'cell_temperatures_degc': self.temperatures_degc.copy(),
            'cell_capacity_ah': self.capacity_ah.copy(),
            'cell_r0_ohm': self.r0_ohm.copy(),
            'pack_current_a': self.pack_current_a,
            'pack_voltage_v': self.pack_voltage_v,
            'link_voltage_v': self.link_voltage_v,
            'negative_contactor_closed': self.negative_contactor_closed,
            'positive_contactor_closed': self.positive_contactor_closed,
            'precharge_relay_closed': self.precharge_relay_closed,
            'cell_bleed': self.bleed.copy(),
            'sim_time_s': self.sim_time_s,
        }


class CommandWatchdog:
    """The pack's command timeouts, as a real contactor controller has them, on bus time.

    Bus time is simulated seconds / ``time_scale`` (the clock the node's frame timing runs on).
    No contactor command frame for ``contactor_command_timeout_s``: every contactor is commanded
    open and stays so until the next command frame, which is obeyed at once. No balancing
    command for ``balancing_command_timeout_s``: bleeding stops until the next one. The clocks
    start at the first command (before it, the contactors are open and nothing bleeds anyway).
    """

    def __init__(self, model, time_scale=None):
        config = model.config
        self.model = model
        self.time_scale = float(time_scale or config.time_scale)
        self.contactor_timeout_s = config.contactor_command_timeout_s
        self.balancing_timeout_s = config.balancing_command_timeout_s
        self._contactor_at_s = None      # bus s of the last command; None: none since a timeout
        self._balancing_at_s = None
        self.contactor_timeouts = 0      # expiries that found a contactor commanded closed
        self.contactor_silences = 0      # every expiry
        self.balancing_timeouts = 0      # expiries that found a cell bleeding

    @property
    def bus_time_s(self):
        """Bus time now: the model's simulated time / time_scale (s)."""
        return self.model.sim_time_s / self.time_scale

    def contactor_command(self, negative_closed, precharge_closed, positive_closed):
        """A contactor command frame arrived: obey it and restart the timeout."""
        self.model.set_contactors(negative_closed, precharge_closed, positive_closed)
        self._contactor_at_s = self.bus_time_s

    def balancing_command(self, cell_bleed):
        """A balancing command arrived: obey it and restart the timeout (ValueError if bad)."""
        self.model.set_bleed(cell_bleed)
        self._balancing_at_s = self.bus_time_s

    def check(self):
        """Apply the timeouts at the present bus time; one (level, text) per expiry."""
        now = self.bus_time_s
        events = []
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


def check_command_timeout(config, contactor_period_s, path):
    """ConfigError unless the contactor command timeout spans two command periods (s)."""
    if contactor_period_s and config.contactor_command_timeout_s < 2.0 * contactor_period_s:
        # one lost or late frame must not open the contactors
        raise ConfigError(path, 'simulator.contactors.command_timeout_s',
                          f'must be >= 2 x the contactor command period of the CAN mapping '
                          f'({2.0 * contactor_period_s:g} s), got '
                          f'{config.contactor_command_timeout_s:g}')


def _spread(rng, n, relative_std):
    """Factors 1 + N(0, relative_std), truncated at SPREAD_TRUNCATION standard deviations."""
    draw = np.clip(rng.standard_normal(n), -SPREAD_TRUNCATION, SPREAD_TRUNCATION)
    return 1.0 + relative_std * draw


__all__ = ['PackModel', 'SimulatorConfig', 'CommandWatchdog', 'check_command_timeout',
           'NoiseConfig', 'FadedCell', 'ChargerConfig', 'CONTACTORS', 'FaultError']
