"""The ``balancing:`` section of a profile (BalancingConfig) and the mode numbers."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from ..config import Section

if TYPE_CHECKING:   # profile imports the cell and config modules only; no cycle at run time
    from ..profile import PackSpec

# Same numbering as bms_interfaces/BalancingStatus MODE_* and SetBalancingMode MODE_*.
MODE_OFF = 0
MODE_VOLTAGE = 1
MODE_SOC = 2
MODES = {'off': MODE_OFF, 'voltage': MODE_VOLTAGE, 'soc': MODE_SOC}
MODE_NAMES = {number: name for name, number in MODES.items()}

# Bounds that also apply to the set_balancing_mode service.
MAX_THRESHOLD_V = 0.5
MAX_SOC_THRESHOLD = 0.5


@dataclass(frozen=True)
class BalancingConfig:
    """The validated ``balancing:`` section of a profile."""

    mode: str = 'voltage'                   # off | voltage | soc
    period_s: float = 1.0                   # controller period of the node
    bleed_resistance_ohm: float = 33.0      # per cell; must equal the simulator's / the board's
    threshold_v: float = 0.005              # voltage mode: start above min + threshold
    hysteresis_v: float = 0.002             # voltage mode: stop below min + threshold - hysteresis
    soc_threshold: float = 0.005            # soc mode: plan cells above min SoC + threshold (0..1)
    soc_hysteresis: float = 0.004           # soc mode: bleed down to min + threshold - hysteresis
    soc_filter_time_s: float = 60.0         # first-order low-pass of the estimated cell SoC
    soc_replan_delay_s: float = 600.0       # wait after a finished plan before the next one
    estimate_includes_bleed: bool = True    # false: subtract our own removed charge from the SoC
    min_cell_voltage_v: float = 3.0         # never bleed a cell below this
    rest_current_a: float = 0.5             # |I| below this is rest; above +this is charging
    rest_time_s: float = 1800.0             # rest needed before balancing without charging
    max_bleeding_cells: int = 8             # simultaneous bleeding cells (heat, AFE limit)
    duty_on_s: float = 50.0                 # bleed period of a duty cycle
    duty_off_s: float = 10.0                # measurement period (all bleed off); 0 = no duty cycle
    settle_s: float = 2.0                   # after bleed off, before a voltage counts as clean
    max_cell_temperature_degc: float = 45.0
    temperature_hysteresis_degc: float = 5.0
    resistor_thermal_resistance_k_per_w: float = 60.0   # bleed resistor to the cell/board
    resistor_time_constant_s: float = 30.0
    resistor_max_temperature_degc: float = 100.0
    measurement_timeout_s: float = 2.0      # measurement older than this: stale
    estimate_timeout_s: float = 5.0         # soc mode: estimate older than this: stale
    protection_timeout_s: float = 5.0       # protection status older than this: stale
    require_protection_status: bool = True  # no protection status yet: do not bleed

    @property
    def mode_number(self) -> int:
        """The mode as its number in messages (MODE_OFF, MODE_VOLTAGE, MODE_SOC)."""
        return MODES[self.mode]

    @property
    def duty_cycle(self) -> float:
        """Fraction of time the bleed resistors may be on, 0..1."""
        return self.duty_on_s / (self.duty_on_s + self.duty_off_s)

    @classmethod
    def from_section(cls, section: Section, pack: PackSpec | None = None) -> BalancingConfig:
        """Read and validate ``balancing:``; ConfigError names the file and the field.

        :param section: bms_ros.core.config.Section of the ``balancing`` mapping.
        :param pack: optional PackSpec, to check fields against the cell's limits.
        """
        section.reject_unknown([f.name for f in fields(cls)])
        d = cls()
        number = section.number
        cfg = cls(
            mode=section.string('mode', d.mode, choices=tuple(MODES)),
            period_s=number('period_s', d.period_s, exclusive_minimum=0.0, maximum=60.0),
            bleed_resistance_ohm=number('bleed_resistance_ohm', d.bleed_resistance_ohm,
                                        exclusive_minimum=0.0),
            threshold_v=number('threshold_v', d.threshold_v, exclusive_minimum=0.0,
                               maximum=MAX_THRESHOLD_V),
            hysteresis_v=number('hysteresis_v', d.hysteresis_v, minimum=0.0),
            soc_threshold=number('soc_threshold', d.soc_threshold, exclusive_minimum=0.0,
                                 maximum=MAX_SOC_THRESHOLD),
            soc_hysteresis=number('soc_hysteresis', d.soc_hysteresis, minimum=0.0),
            soc_filter_time_s=number('soc_filter_time_s', d.soc_filter_time_s, minimum=0.0),
            soc_replan_delay_s=number('soc_replan_delay_s', d.soc_replan_delay_s, minimum=0.0),
            estimate_includes_bleed=section.boolean('estimate_includes_bleed',
                                                    d.estimate_includes_bleed),
            min_cell_voltage_v=number('min_cell_voltage_v', d.min_cell_voltage_v,
                                      exclusive_minimum=0.0),
            rest_current_a=number('rest_current_a', d.rest_current_a, exclusive_minimum=0.0),
            rest_time_s=number('rest_time_s', d.rest_time_s, minimum=0.0),
            max_bleeding_cells=section.integer('max_bleeding_cells', d.max_bleeding_cells,
                                               minimum=1),
            duty_on_s=number('duty_on_s', d.duty_on_s, exclusive_minimum=0.0),
            duty_off_s=number('duty_off_s', d.duty_off_s, minimum=0.0),
            settle_s=number('settle_s', d.settle_s, minimum=0.0),
            max_cell_temperature_degc=number('max_cell_temperature_degc',
                                             d.max_cell_temperature_degc),
            temperature_hysteresis_degc=number('temperature_hysteresis_degc',
                                               d.temperature_hysteresis_degc, minimum=0.0),
            resistor_thermal_resistance_k_per_w=number(
                'resistor_thermal_resistance_k_per_w', d.resistor_thermal_resistance_k_per_w,
                minimum=0.0),
            resistor_time_constant_s=number('resistor_time_constant_s',
                                            d.resistor_time_constant_s, exclusive_minimum=0.0),
            resistor_max_temperature_degc=number('resistor_max_temperature_degc',
                                                 d.resistor_max_temperature_degc),
            measurement_timeout_s=number('measurement_timeout_s', d.measurement_timeout_s,
                                         exclusive_minimum=0.0),
            estimate_timeout_s=number('estimate_timeout_s', d.estimate_timeout_s,
                                      exclusive_minimum=0.0),
            protection_timeout_s=number('protection_timeout_s', d.protection_timeout_s,
                                        exclusive_minimum=0.0),
            require_protection_status=section.boolean('require_protection_status',
                                                      d.require_protection_status),
        )
        if cfg.hysteresis_v >= cfg.threshold_v:
            raise section.error('hysteresis_v', f'must be below threshold_v ({cfg.threshold_v}), '
                                f'got {cfg.hysteresis_v}')
        if cfg.soc_hysteresis >= cfg.soc_threshold:
            raise section.error('soc_hysteresis', f'must be below soc_threshold '
                                f'({cfg.soc_threshold}), got {cfg.soc_hysteresis}')
        if cfg.duty_off_s > 0.0 and cfg.settle_s >= cfg.duty_off_s:
            raise section.error('settle_s', f'must be below duty_off_s ({cfg.duty_off_s}) so a '
                                f'clean voltage can be measured, got {cfg.settle_s}')
        if cfg.duty_off_s > 0.0 and cfg.settle_s < cfg.period_s:
            raise section.error('settle_s', f'must be at least period_s ({cfg.period_s}): a '
                                f'command holds for one period, got {cfg.settle_s}')
        if cfg.resistor_max_temperature_degc <= cfg.max_cell_temperature_degc:
            raise section.error('resistor_max_temperature_degc',
                                f'must be above max_cell_temperature_degc '
                                f'({cfg.max_cell_temperature_degc}), got '
                                f'{cfg.resistor_max_temperature_degc}')
        if pack is not None:
            limits = pack.cell.limits
            if not limits.voltage_min_v <= cfg.min_cell_voltage_v <= limits.voltage_max_v:
                raise section.error('min_cell_voltage_v', f'expected a value within the cell '
                                    f'limits {limits.voltage_min_v}..{limits.voltage_max_v} V, '
                                    f'got {cfg.min_cell_voltage_v}')
            if cfg.max_bleeding_cells > pack.cells_series:
                raise section.error('max_bleeding_cells', f'expected at most cells_series '
                                    f'({pack.cells_series}), got {cfg.max_bleeding_cells}')
        return cfg
