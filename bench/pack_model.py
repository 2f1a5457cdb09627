"""Speed of the simulated pack (bms_ros.core.pack_model) in x real time.

Each row runs the model with its profile's step (10 ms) on the looped ECE-15 drive cycle with
the main contactors closed and two cells bleeding, for a fixed wall budget, and reports
simulated seconds per wall second. Goal: >= 100 x real time for 96 cells (the node must keep
up at time_scale 100 in tests).

    .venv/bin/python -m bench.run pack_model
"""
import dataclasses
import os
import time

import numpy as np

from bms_ros.core.pack_model import PackModel, SimulatorConfig
from bms_ros.core.profile import Profile, config_dir

PROFILES = os.path.join(config_dir(), 'profiles')
WALL_BUDGET_S = 3.0


def _speed(pack, config):
    model = PackModel(pack, config)
    model.set_contactors(True, False, True)
    bleed = np.zeros(pack.cells_series, dtype=bool)
    bleed[[0, pack.cells_series // 2]] = True
    model.set_bleed(bleed)
    model.advance(1.0)                           # warm-up, contactors closed
    sim_start = model.sim_time_s
    start = time.perf_counter()
    while time.perf_counter() - start < WALL_BUDGET_S:
        model.advance(10.0)
        model.measured()                         # a measurement per 10 s, as a slow node would
    wall = time.perf_counter() - start
    return (model.sim_time_s - sim_start) / wall, wall / ((model.sim_time_s - sim_start)
                                                          / config.step_s)


def run():
    rows = []
    nmc = Profile(os.path.join(PROFILES, 'nmc_96s.yaml'))
    lfp = Profile(os.path.join(PROFILES, 'lfp_16s.yaml'))
    cases = [('16 cells (lfp_16s)', lfp, lfp.pack), ('96 cells (nmc_96s)', nmc, nmc.pack),
             ('1,000 cells (nmc cell)', nmc,
              dataclasses.replace(nmc.pack, cells_series=1000, temperature_sensors=500))]
    for label, profile, pack in cases:
        config = SimulatorConfig.from_section(profile.section('simulator'), pack)
        speed, step_wall_s = _speed(pack, config)
        rows.append({'benchmark': f'pack model speed, {label}', 'value': speed,
                     'unit': 'x real time',
                     'goal': '>= 100' if pack.cells_series <= 96 else 'report',
                     'note': f'step {config.step_s * 1e3:g} ms, {step_wall_s * 1e6:.1f} us/step'})
    return rows


if __name__ == '__main__':
    for row in run():
        print(row)
