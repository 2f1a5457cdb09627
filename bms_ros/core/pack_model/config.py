"""The ``simulator:`` section of a profile: SimulatorConfig and its parts (noise, charger,
faded cells, faults at start), validated with ConfigError naming file and field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..load_profile import ConstantLoad, LoadProfile, load_from_section
from ..sim_faults import FAULTS, FaultError, FaultSet

if TYPE_CHECKING:
    from ..config import Section
    from ..profile import PackSpec

SIMULATOR_FIELDS = (
    'seed', 'time_scale', 'step_s', 'initial_soc', 'soc_spread', 'capacity_spread_rel',
    'r0_spread_rel', 'self_discharge_a', 'self_discharge_spread_rel', 'ambient_degc',
    'initial_temperature_degc', 'neighbour_conductance_w_per_k', 'bleed_resistance_ohm',
    'link_capacitance_f', 'precharge_resistance_ohm', 'link_discharge_resistance_ohm',
    'contactors', 'noise', 'demand_timeout_s', 'faded_cells', 'load', 'faults',
    'balancing_command_timeout_s', 'cooling_w_per_k', 'charger')


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

    current_a: float | None = None        # A, pack; None: half the cell's charge_current_max_a x p
    cell_voltage_v: float | None = None   # V; None: the cell's voltage_max_v
    end_current_a: float | None = None    # A, pack; None: C/20 of the nominal capacity


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
    initial_temperature_degc: float | None = None     # None: ambient
    neighbour_conductance_w_per_k: float = 0.0
    bleed_resistance_ohm: float = 33.0
    link_capacitance_f: float = 1e-3
    precharge_resistance_ohm: float = 50.0
    link_discharge_resistance_ohm: float = 1e4
    contactor_closing_delay_s: float = 0.03
    contactor_opening_delay_s: float = 0.02
    # no contactor / balancing command frame for this long (wall s in the node, bus s in core
    # without a clock): the pack opens every contactor / stops bleeding (CommandWatchdog)
    contactor_command_timeout_s: float = 0.5
    balancing_command_timeout_s: float = 5.0
    noise: NoiseConfig = NoiseConfig()
    demand_timeout_s: float = 0.0              # external demand expires after this; 0 = never
    faded_cells: tuple[FadedCell, ...] = ()
    faults: tuple[tuple[str, int, float], ...] = ()   # (fault, index, value) active at start
    load: LoadProfile = field(default_factory=lambda: ConstantLoad(0.0))
    # W/K from one cell to ambient (the pack's cooling); None: the cell file's thermal value
    cooling_w_per_k: float | None = None
    charger: ChargerConfig = ChargerConfig()

    @classmethod
    def from_section(cls, section: Section, pack: PackSpec) -> SimulatorConfig:
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


def check_command_timeout(config: SimulatorConfig, contactor_period_s: float | None,
                          path: str) -> None:
    """ConfigError unless the contactor command timeout spans two command periods (s)."""
    if contactor_period_s and config.contactor_command_timeout_s < 2.0 * contactor_period_s:
        # one lost or late frame must not open the contactors
        raise ConfigError(path, 'simulator.contactors.command_timeout_s',
                          f'must be >= 2 x the contactor command period of the CAN mapping '
                          f'({2.0 * contactor_period_s:g} s), got '
                          f'{config.contactor_command_timeout_s:g}')
