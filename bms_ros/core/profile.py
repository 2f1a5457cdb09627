"""A pack profile (config/profiles/*.yaml): the shared `pack` section and access to the others.

Each node reads ``pack`` plus its own section (``simulator``, ``can``, ``estimator``,
``protection``, ``supervisor``, ``balancing``) and validates that section itself.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import failsafe
from .cell import CellSpec
from .config import Section
from .config_paths import config_dir, default_profile_path  # noqa: F401  (re-exported)
from .state_paths import check_base, check_path_part

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

SECTIONS = ('pack', 'simulator', 'can', 'estimator', 'protection', 'supervisor', 'balancing',
            'gazebo', 'failsafe', 'energy', 'motion_limits', 'dashboard')


@dataclass(frozen=True)
class PackSpec:
    """The pack: cells in series (each a group of parallel cells), sensors, identity."""

    name: str
    serial_number: str
    location: str
    cells_series: int
    cells_parallel: int
    temperature_sensors: int
    cell: CellSpec            # one series element (already scaled by cells_parallel)
    cell_single: CellSpec     # one physical cell
    state_dir: str = ''       # base folder of persisted state (absolute; '' = the XDG default)
    frame_id: str = 'battery'   # TF frame of the pack: header.frame_id of battery_state, estimate

    @property
    def capacity_ah(self) -> float:
        """Capacity of the pack (Ah): one cell's, the cells being in series."""
        return self.cell.capacity_ah

    @property
    def nominal_voltage_v(self) -> float:
        """Pack voltage (V) at 50 % SoC: cells in series x the cell's OCV."""
        return self.cells_series * float(self.cell.ocv.ocv(0.5))

    def sensor_of_cell(self) -> NDArray[np.int_]:
        """Index of the temperature sensor nearest each cell (sensors spread evenly)."""
        import numpy as np
        return (np.arange(self.cells_series) * self.temperature_sensors) // self.cells_series


class Profile:
    """A loaded profile file: its validated pack section and raw sections for the nodes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.top = Section.from_file(self.path)
        self.top.reject_unknown(SECTIONS)
        self.pack = self._load_pack(self.top.section('pack'))
        # the fail-safe bounds span sections (driver, simulator, supervisor, protection):
        # every node checks them at start-up, before anything is created
        self.failsafe = failsafe.resolve(self.top)

    def section(self, name: str) -> Section:
        """The raw Section of a node (empty if absent: every field then takes its default)."""
        return self.top.section(name, {})

    @staticmethod
    def _load_pack(section: Section) -> PackSpec:
        section.reject_unknown(('name', 'serial_number', 'location', 'cells_series',
                                'cells_parallel', 'temperature_sensors', 'cell', 'state_dir',
                                'frame_id'))
        single = CellSpec.from_file(section.path_field('cell'))
        parallel = section.integer('cells_parallel', 1, minimum=1, maximum=1000)
        series = section.integer('cells_series', minimum=1, maximum=1000)
        sensors = section.integer('temperature_sensors', minimum=1, maximum=1000)
        serial_number = section.string('serial_number', 'unknown')
        # the serial names the state folder (bms_ros.core.state_paths): one folder name only
        check_path_part(serial_number, section.path, section.field_name('serial_number'))
        state_dir = ''
        if section.has('state_dir'):  # relative: to this profile's folder
            folder = os.path.expanduser(section.string('state_dir'))
            state_dir = check_base(folder if os.path.isabs(folder) else os.path.join(
                os.path.dirname(os.path.abspath(section.path)), folder),
                section.path, section.field_name('state_dir'))
        return PackSpec(
            name=section.string('name'),
            serial_number=serial_number,
            location=section.string('location', 'unknown'),
            cells_series=series, cells_parallel=parallel, temperature_sensors=sensors,
            cell=single.scaled(parallel), cell_single=single, state_dir=state_dir,
            frame_id=section.string('frame_id', 'battery'))
