"""The effective configuration as flat read-only parameter names (bms_ros.core.effective_config)."""
import enum
from dataclasses import dataclass, field

import numpy as np

from bms_ros.core.effective_config import flatten, format_value
from bms_ros.core.profile import Profile, default_profile_path
from bms_ros.core.protection import load_protection_config


class Mode(enum.Enum):
    VOLTAGE = 'voltage'


@dataclass
class Limit:
    limit_id: str
    levels: tuple
    thresholds: np.ndarray


@dataclass
class Config:
    name: str = 'x'
    period_s: float = 0.5
    count: int = 3
    enabled: bool = True
    mode: Mode = Mode.VOLTAGE
    missing: float = None
    empty: tuple = ()
    mixed: tuple = (1, 'a')
    ints: tuple = (1, 2)
    numbers: tuple = (1, 2.5)
    table: tuple = ((0.0, 3.0), (1.0, 3.6))
    limits: tuple = field(default_factory=lambda: (
        Limit('cell_overvoltage', (1, 2, 3), np.array([3.62, 3.65, 3.75])),))
    nested: dict = field(default_factory=lambda: {'a': {'b': 1.0}})


def test_flatten_gives_only_parameter_types():
    flat = flatten(Config(), 'sec')
    assert flat == {
        'sec.name': 'x', 'sec.period_s': 0.5, 'sec.count': 3, 'sec.enabled': True,
        'sec.mode': 'voltage', 'sec.empty': [], 'sec.mixed': ['1', 'a'], 'sec.ints': [1, 2],
        'sec.numbers': [1.0, 2.5], 'sec.table.0': [0.0, 3.0], 'sec.table.1': [1.0, 3.6],
        'sec.limits.cell_overvoltage.limit_id': 'cell_overvoltage',
        'sec.limits.cell_overvoltage.levels': [1, 2, 3],
        'sec.limits.cell_overvoltage.thresholds': [3.62, 3.65, 3.75],
        'sec.nested.a.b': 1.0}
    assert all(type(v) in (bool, int, float, str, list) for v in flat.values())
    assert format_value(3.75) == '3.75' and format_value([1.0, 2.5]) == '[1, 2.5]'
    assert format_value(float('nan')) == 'nan'


def test_the_protection_limits_of_the_shipped_profile():
    profile = Profile(default_profile_path())
    config = load_protection_config(profile.section('protection'), profile.pack)
    flat = flatten(config, 'protection')
    assert flat['protection.limits.cell_overvoltage.trip'] == 3.75
    assert flat['protection.limits.discharge_overtemperature.warning'] == 45.0
    pack = flatten(profile.pack, 'pack')
    assert pack['pack.serial_number'] == 'SIM-LFP-0001' and pack['pack.cells_series'] == 16
    assert pack['pack.frame_id'] == 'battery'
