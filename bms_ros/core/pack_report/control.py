"""Control style of a profile: ``can.control`` (``bms_ros`` | ``pack``) and ``can.pack_bms``.

:func:`load_control` validates them (timeouts, second opinion, disagreement bounds);
:func:`control_of_file` reads them unvalidated for graph.py; :func:`check_style` checks the
CAN mapping fits the style, :func:`require_pack_control` that the pack_report node may run.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import yaml

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..can_mapping import CanMapping
    from ..config import Section

CONTROL_STYLES = ('bms_ros', 'pack')
PACK_BMS_FIELDS = ('report_timeout_s', 'publish_rate_hz', 'second_opinion', 'soc_bound',
                   'current_limit_bound_a', 'request_hold_s')


@dataclass(frozen=True)
class ControlConfig:
    """``can.control`` and ``can.pack_bms`` of a profile (times in s, SoC 0..1, A)."""

    style: str = 'bms_ros'          # 'bms_ros': we own the contactors; 'pack': its BMS does
    report_timeout_s: float = 0.5   # a report field older than this is stale (unknown)
    publish_rate_hz: float = 10.0   # pack_state / estimate / protection_status / battery_state
    second_opinion: bool = True     # our estimator and protection run beside it (own/...)
    soc_bound: float = 0.05         # |pack SoC - ours| above this is reported
    current_limit_bound_a: float = 10.0   # |pack limit - ours| above this is reported
    request_hold_s: float = 0.0     # a request older than this falls back to STANDBY (0: holds)

    @property
    def pack_controls(self) -> bool:
        """True if the pack's own BMS controls (report style 'pack')."""
        return self.style == 'pack'


def load_control(can_section: Section) -> ControlConfig:
    """ControlConfig from a profile's ``can:`` Section; ConfigError naming file and field."""
    style = can_section.string('control', 'bms_ros', choices=CONTROL_STYLES)
    if not can_section.has('pack_bms'):
        return ControlConfig(style=style)
    sec = can_section.section('pack_bms')
    if style != 'pack':
        raise can_section.error('pack_bms', "only with control: pack (the pack's own BMS "
                                            'owns the contactors)')
    sec.reject_unknown(PACK_BMS_FIELDS)
    return ControlConfig(
        style=style,
        report_timeout_s=sec.number('report_timeout_s', 0.5, exclusive_minimum=0.0,
                                    maximum=60.0),
        publish_rate_hz=sec.number('publish_rate_hz', 10.0, exclusive_minimum=0.0,
                                   maximum=1000.0),
        second_opinion=sec.boolean('second_opinion', True),
        soc_bound=sec.number('soc_bound', 0.05, exclusive_minimum=0.0, maximum=1.0),
        current_limit_bound_a=sec.number('current_limit_bound_a', 10.0, exclusive_minimum=0.0,
                                         maximum=1e5),
        request_hold_s=sec.number('request_hold_s', 0.0, minimum=0.0, maximum=86400.0))


def control_of_file(profile_path: str | os.PathLike[str]) -> tuple[str, bool]:
    """(``can.control``, ``can.pack_bms.second_opinion``) of a profile file without
    validating it (('bms_ros', True) where unreadable: the nodes then report the file's error
    themselves, exit code 2); for graph.py.
    """
    try:
        with open(os.fspath(profile_path), encoding='utf-8') as stream:
            can_section = yaml.safe_load(stream).get('can') or {}
        style = can_section.get('control', 'bms_ros')
        second = (can_section.get('pack_bms') or {}).get('second_opinion', True)
    except Exception:  # noqa: BLE001  any unreadable profile: the nodes say why
        return 'bms_ros', True
    return (style if style in CONTROL_STYLES else 'bms_ros'), second is not False


def control_style_of_file(profile_path: str | os.PathLike[str]) -> str:
    """``can.control`` of a profile file ('bms_ros' if unreadable)."""
    return control_of_file(profile_path)[0]


def check_style(control: ControlConfig, mapping: CanMapping, where: str) -> None:
    """The mapping fits the control style: style (a) needs the contactor command, style (b)
    the pack report and the state request. ConfigError naming ``where`` (the profile).
    """
    if control.pack_controls:
        missing = [s for s in ('pack_report', 'state_request') if getattr(mapping, s) is None]
        if missing:
            raise ConfigError(where, 'can.control', f"'pack' needs {' and '.join(missing)} in "
                                                    f'the mapping {mapping.path}')
    elif mapping.command('contactor') is None:
        raise ConfigError(where, 'can.control',
                          f"'bms_ros' (the default) needs a contactor command in the mapping "
                          f'{mapping.path}; a pack with its own BMS takes control: pack')


def require_pack_control(control: ControlConfig, where: str) -> None:
    """ConfigError naming ``where`` (the profile) unless ``control`` is 'pack': the
    pack_report node stands in for the supervisor only when the pack's BMS owns the contactors.
    """
    if not control.pack_controls:
        raise ConfigError(where, 'can.control',
                          "the pack_report node needs control: pack (with 'bms_ros' the "
                          'pack supervisor owns the contactors)')
