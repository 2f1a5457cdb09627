"""The ``supervisor:`` section of a profile (SupervisorConfig), validated at load."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import Section


@dataclass(frozen=True)
class SupervisorConfig:
    """The ``supervisor:`` section of a profile."""

    contactor_feedback_timeout_s: float
    precharge_target_fraction: float
    precharge_timeout_s: float
    precharge_phase_timeout_s: float
    precharge_min_time_s: float
    precharge_retry_delay_s: float
    break_current_max_a: float
    open_delay_max_s: float
    drive_soc_min: float
    charge_soc_max: float
    drive_temperature_min_degc: float
    drive_temperature_max_degc: float
    charge_temperature_min_degc: float
    charge_temperature_max_degc: float
    require_estimate: bool
    measurement_timeout_s: float
    protection_timeout_s: float
    estimate_timeout_s: float
    state_period_s: float
    command_period_s: float


def load_supervisor_config(section: Section) -> SupervisorConfig:
    """Validate a profile's ``supervisor:`` section; ConfigError names the file and field."""
    names = SupervisorConfig.__dataclass_fields__
    section.reject_unknown(names)
    positive = {name: section.number(name, exclusive_minimum=0.0) for name in (
        'contactor_feedback_timeout_s', 'precharge_timeout_s', 'precharge_phase_timeout_s',
        'precharge_retry_delay_s', 'break_current_max_a', 'measurement_timeout_s',
        'protection_timeout_s', 'estimate_timeout_s', 'state_period_s', 'command_period_s')}
    values: dict[str, Any] = dict(
        positive,
        precharge_target_fraction=section.number('precharge_target_fraction',
                                                 exclusive_minimum=0.0, maximum=1.0),
        precharge_min_time_s=section.number('precharge_min_time_s', minimum=0.0),
        open_delay_max_s=section.number('open_delay_max_s', minimum=0.0),
        drive_soc_min=section.number('drive_soc_min', minimum=0.0, maximum=1.0),
        charge_soc_max=section.number('charge_soc_max', minimum=0.0, maximum=1.0),
        require_estimate=section.boolean('require_estimate'))
    for mode in ('drive', 'charge'):
        low = section.number(f'{mode}_temperature_min_degc')
        high = section.number(f'{mode}_temperature_max_degc')
        if low >= high:
            raise section.error(f'{mode}_temperature_min_degc',
                                f'must be below {mode}_temperature_max_degc ({high}), got {low}')
        values[f'{mode}_temperature_min_degc'] = low
        values[f'{mode}_temperature_max_degc'] = high
    if values['precharge_min_time_s'] >= values['precharge_timeout_s']:
        raise section.error('precharge_min_time_s',
                            f'must be below precharge_timeout_s ({values["precharge_timeout_s"]}),'
                            f' got {values["precharge_min_time_s"]}')
    if values['precharge_phase_timeout_s'] <= values['contactor_feedback_timeout_s']:
        # a stuck or unknown contactor must be reported as such (ERROR, a latched fault), not
        # as a pre-charge phase timeout (STANDBY, retry)
        raise section.error('precharge_phase_timeout_s',
                            f'must exceed contactor_feedback_timeout_s '
                            f'({values["contactor_feedback_timeout_s"]}), '
                            f'got {values["precharge_phase_timeout_s"]}')
    return SupervisorConfig(**values)
