"""Load profiles of the simulated pack: constant, CSV drive cycle, steps, external demand."""
import os

import numpy as np
import pytest

from bms_ros.core.config import Section
from bms_ros.core.errors import ConfigError
from bms_ros.core.load_profile import ExternalLoad, TabulatedLoad, load_from_section, read_cycle_csv
from bms_ros.core.profile import config_dir

CYCLE = os.path.join(config_dir(), 'load_profiles', 'ece15_urban_c_rate.csv')


def section(data, tmp_path):
    """A `simulator.load` Section of a file in ``tmp_path`` (relative paths resolve there)."""
    return Section(data, str(tmp_path / 'profile.yaml'), 'simulator.load')


def write_csv(tmp_path, text, name='cycle.csv'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_constant_in_amperes_or_c_rate(tmp_path):
    assert load_from_section(section({'current_a': -12.5}, tmp_path), 23.0).current_a(99) == -12.5
    load = load_from_section(section({'kind': 'constant', 'c_rate': -0.5}, tmp_path), 23.0)
    assert load.current_a(0.0) == pytest.approx(-11.5)
    assert load_from_section(section({}, tmp_path), 23.0).current_a(5.0) == 0.0


def test_csv_interpolates_loops_and_stops(tmp_path):
    path = write_csv(tmp_path, '# made by hand\nt_s,current_a\n0,0\n10,-20\n20,10\n')
    loop = load_from_section(section({'kind': 'csv', 'file': 'cycle.csv'}, tmp_path), 1.0)
    assert loop.current_a(5.0) == pytest.approx(-10.0)
    assert loop.current_a(15.0) == pytest.approx(-5.0)
    assert loop.current_a(25.0) == pytest.approx(-10.0)        # second lap
    assert loop.current_a(20.0 * 1000 + 5.0) == pytest.approx(-10.0)
    stop = load_from_section(section({'kind': 'csv', 'file': path, 'end': 'stop',
                                      'interpolation': 'previous', 'scale': 2.0}, tmp_path), 1.0)
    assert stop.current_a(9.99) == 0.0
    assert stop.current_a(10.0) == -40.0
    assert stop.current_a(25.0) == 0.0
    flipped = load_from_section(section({'kind': 'csv', 'file': path,
                                         'discharge_positive': True}, tmp_path), 1.0)
    assert flipped.current_a(10.0) == pytest.approx(20.0)


def test_csv_in_c_rate_scales_with_capacity(tmp_path):
    write_csv(tmp_path, 't_s,c_rate\n0,-1\n1,0.5\n')
    load = load_from_section(section({'kind': 'csv', 'file': 'cycle.csv',
                                      'interpolation': 'previous'}, tmp_path), 60.0)
    assert load.current_a(0.5) == pytest.approx(-60.0)


def test_steps_are_held_in_turn(tmp_path):
    load = load_from_section(section({'kind': 'steps', 'end': 'loop', 'steps': [
        {'duration_s': 10, 'current_a': -5}, {'duration_s': 5, 'c_rate': 1.0},
        {'duration_s': 5, 'current_a': 0}]}, tmp_path), 20.0)
    values = [load.current_a(t) for t in (0, 9.9, 10, 14.9, 15, 19.9, 20, 31)]
    assert values == [-5, -5, 20, 20, 0, 0, -5, 20]
    assert load.mean_current_a() == pytest.approx((-50 + 100) / 20)


def test_external_demand_is_settable(tmp_path):
    load = load_from_section(section({'kind': 'external', 'current_a': -1.0}, tmp_path), 1.0)
    assert isinstance(load, ExternalLoad) and load.current_a(0) == -1.0
    load.set_current(4.0)
    assert load.current_a(100) == 4.0


def test_shipped_urban_cycle_peaks_at_one_c_discharge():
    t, current = read_cycle_csv(CYCLE, capacity_ah=23.0)
    assert t[0] == 0 and t[-1] == 195.0 and len(t) == 196
    assert current.min() == pytest.approx(-23.0)
    assert 0.0 < current.max() < 0.5 * 23.0                  # regen, smaller than the peak
    mean_c = TabulatedLoad(t, current).mean_current_a() / 23.0
    assert -0.15 < mean_c < -0.07                            # net discharge
    with open(CYCLE, encoding='utf-8') as stream:
        assert 'ECE-15' in stream.readline()                 # the file names its source


@pytest.mark.parametrize('text, field, problem', [
    ('t_s,volts\n0,1\n1,2\n', 'current_a', 'missing column'),
    ('time,current_a\n0,1\n1,2\n', 't_s', 'missing column'),
    ('t_s,current_a\n0,1\n1,abc\n', 'row 3.current_a', "expected a number, got 'abc'"),
    ('t_s,current_a\n0,1\n0,2\n', 't_s', 'strictly increasing'),
    ('t_s,current_a\n0,1\n', 't_s', 'at least 2 rows'),
    ('t_s,current_a\n0,nan\n1,2\n', 'row 2.current_a', 'not finite'),
    ('', '', 'no rows'),
])
def test_bad_csv_names_file_and_row(tmp_path, text, field, problem):
    path = write_csv(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        read_cycle_csv(path, 1.0)
    assert info.value.path == path and info.value.field == field
    assert problem in info.value.problem


@pytest.mark.parametrize('data, field, problem', [
    ({'kind': 'csv'}, 'simulator.load.file', 'missing required field'),
    ({'kind': 'constant', 'current_a': 1, 'c_rate': 1}, 'simulator.load.c_rate', 'not both'),
    ({'kind': 'constant', 'file': 'x.csv'}, 'simulator.load.file', 'unknown field'),
    ({'kind': 'steps', 'steps': []}, 'simulator.load.steps', 'at least one step'),
    ({'kind': 'steps', 'steps': [{'duration_s': 0, 'current_a': 1}]},
     'simulator.load.steps[0].duration_s', 'expected a number > 0.0'),
    ({'kind': 'csv', 'file': 'c.csv', 'end': 'bounce'}, 'simulator.load.end', 'expected one of'),
])
def test_bad_load_section_names_the_field(tmp_path, data, field, problem):
    write_csv(tmp_path, 't_s,current_a\n0,1\n1,2\n', 'c.csv')
    with pytest.raises(ConfigError) as info:
        load_from_section(section(data, tmp_path), 10.0)
    assert info.value.field == field and problem in info.value.problem


def test_tabulated_load_rejects_bad_arrays():
    with pytest.raises(ValueError):
        TabulatedLoad([0, 1], [1.0])
    with pytest.raises(ValueError):
        TabulatedLoad([1, 0], [1.0, 2.0])
    assert np.isclose(TabulatedLoad([0, 2], [0.0, 2.0]).current_a(1.0), 1.0)
