"""OcvTable.soc_from_ocv: the inverse of OcvTable.ocv at each element's own temperature."""
import glob
import os

import numpy as np
import pytest

from bms_ros.core.ocv import OcvTable
from bms_ros.core.profile import config_dir

TABLES = sorted(glob.glob(os.path.join(config_dir(), 'ocv', '*.csv')))
TEMPERATURES_DEGC = (5.0, 10.0, 25.0, 45.0)
# the inverse of a piecewise-linear table is exact: what is left is floating-point rounding
SOC_TOL = 1e-9
OCV_TOL_V = 1e-9


def old_inverse(table, ocv_v, temperature_degc):
    """The inverse before the fix (entropic term at 50 % SoC only), for the identity checks."""
    corrected = np.asarray(ocv_v, dtype=float) - np.interp(
        0.5, table.soc_grid, table.docv_dt_v_per_degc) * (
            np.asarray(temperature_degc, dtype=float) - 25.0)
    volts = np.unique(table.ocv_grid_v)
    socs = np.array([table.soc_grid[table.ocv_grid_v == v].mean() for v in volts])
    return np.clip(np.interp(corrected, volts, socs), 0.0, 1.0)


def bisection(table, ocv_v, temperature_degc):
    """An independent reference: 60 halvings of SoC per element on OcvTable.ocv."""
    low, high = np.zeros(np.shape(ocv_v)), np.ones(np.shape(ocv_v))
    for _ in range(60):
        mid = 0.5 * (low + high)
        up = table.ocv(mid, temperature_degc) < ocv_v
        low, high = np.where(up, mid, low), np.where(up, high, mid)
    return 0.5 * (low + high)


def test_every_shipped_table_is_covered():
    names = {os.path.basename(path) for path in TABLES}
    assert {'lfp_a123_anr26650.csv', 'nmc_lg_m50.csv', 'nca_kim2011.csv',
            'nmc532_mohtat2020.csv'} <= names
    entropic = [name for name in names if OcvTable.from_csv(
        os.path.join(config_dir(), 'ocv', name)).docv_dt_v_per_degc.any()]
    assert entropic == ['nmc532_mohtat2020.csv']


@pytest.mark.parametrize('path', TABLES, ids=os.path.basename)
@pytest.mark.parametrize('temperature_degc', TEMPERATURES_DEGC)
def test_round_trip_at_each_temperature(path, temperature_degc):
    """ocv -> soc -> ocv and soc -> ocv -> soc within rounding, on the knots and between them."""
    table = OcvTable.from_csv(path)
    z = np.unique(np.concatenate([np.linspace(0.0, 1.0, 20001), table.soc_grid]))
    v = table.ocv(z, temperature_degc)
    got = table.soc_from_ocv(v, np.full(z.shape, temperature_degc))
    np.testing.assert_allclose(got, z, rtol=0, atol=SOC_TOL)
    np.testing.assert_allclose(table.ocv(got, temperature_degc), v, rtol=0, atol=OCV_TOL_V)
    # a scalar temperature broadcasts the same way
    np.testing.assert_array_equal(table.soc_from_ocv(v, temperature_degc), got)


def test_mohtat_at_its_own_temperature():
    """Where the entropic coefficient varies with SoC (-4.3 mV/K at 0 %, -0.5 at 50 %): the
    cases that read 14.2 % and 97.9 % with the correction at 50 % SoC only.
    """
    table = OcvTable.from_csv(os.path.join(config_dir(), 'ocv', 'nmc532_mohtat2020.csv'))
    for soc, temperature, old in ((0.10, 10.0, 0.1416), (0.99, 45.0, 0.9785)):
        v = table.ocv(soc, temperature)
        assert old_inverse(table, v, temperature) == pytest.approx(old, abs=5e-4)
        assert table.soc_from_ocv(v, temperature) == pytest.approx(soc, abs=SOC_TOL)
    # per element at its own temperature, against an independent bisection
    rng = np.random.default_rng(7)
    temps = rng.uniform(-10.0, 60.0, 500)
    v = table.ocv(rng.uniform(0.0, 1.0, 500), temps)
    np.testing.assert_allclose(table.soc_from_ocv(v, temps), bisection(table, v, temps),
                               rtol=0, atol=SOC_TOL)


@pytest.mark.parametrize('name', ['lfp_a123_anr26650', 'nmc_lg_m50', 'nca_kim2011'])
def test_tables_without_entropic_term_are_bit_identical(name):
    """An all-zero docv/dT column: the same floats as before the fix, NaN temperatures too."""
    table = OcvTable.from_csv(os.path.join(config_dir(), 'ocv', f'{name}.csv'))
    rng = np.random.default_rng(3)
    v = np.concatenate([rng.uniform(table.ocv_grid_v[0] - 0.2, table.ocv_grid_v[-1] + 0.2, 5000),
                        table.ocv_grid_v, [np.nan, 3.3]])
    temps = np.concatenate([rng.uniform(-20.0, 60.0, v.size - 1), [np.nan]])
    np.testing.assert_array_equal(table.soc_from_ocv(v, temps), old_inverse(table, v, temps))
    np.testing.assert_array_equal(table.soc_from_ocv(v), old_inverse(table, v, 25.0))
    assert table.soc_from_ocv(3.3, 10.0) == old_inverse(table, 3.3, 10.0)


@pytest.mark.parametrize('entropic', [None, [1e-3, 1e-3, 1e-3, 1e-3, -1e-3]])
def test_flat_run_reads_its_middle(entropic):
    """A flat run (the same OCV, and the same coefficient, at 0.25..0.75) reads 0.5 at any
    temperature, and beyond the table's ends the SoC is clipped to 0..1. Next to the run an
    entropic table inverts exactly; an isothermal one keeps its former inverse (it
    interpolates from the run's middle, not its end: 0.1 reads 0.2; no shipped table is flat).
    """
    table = OcvTable([0.0, 0.25, 0.5, 0.75, 1.0], [3.0, 3.3, 3.3, 3.3, 4.0], entropic)
    z = np.array([0.0, 0.1, 0.2, 0.8, 0.9, 1.0])
    for temperature in (5.0, 25.0, 45.0):
        flat_v = float(table.ocv(0.5, temperature))
        assert float(table.ocv(0.3, temperature)) == flat_v
        assert table.soc_from_ocv(flat_v, temperature) == pytest.approx(0.5, abs=SOC_TOL)
        ends = table.soc_from_ocv(np.array([2.0, 5.0]), temperature)
        np.testing.assert_array_equal(ends, [0.0, 1.0])
        got = table.soc_from_ocv(table.ocv(z, temperature), temperature)
        if entropic is None:
            np.testing.assert_array_equal(got, old_inverse(table, table.ocv(z), 25.0))
            assert got[1] == pytest.approx(0.2, abs=SOC_TOL)
        else:
            np.testing.assert_allclose(got, z, rtol=0, atol=SOC_TOL)


def test_table_falling_with_soc_far_from_25c_reads_its_rising_envelope():
    """At 60 degC this table falls between 0.5 and 0.75 (3.6 + 35 mV -> 3.62 - 35 mV): the
    inverse stays non-decreasing in OCV, exact where the OCV rises, the fall read as flat.
    """
    table = OcvTable([0.0, 0.5, 0.75, 1.0], [3.0, 3.6, 3.62, 4.2], [0.0, 1e-3, -1e-3, 0.0])
    v = np.linspace(2.9, 4.3, 2001)
    got = table.soc_from_ocv(v, 60.0)
    assert np.all(np.diff(got) >= 0.0)
    z = np.array([0.1, 0.3, 0.9, 0.99])
    np.testing.assert_allclose(table.soc_from_ocv(table.ocv(z, 60.0), 60.0), z,
                               rtol=0, atol=SOC_TOL)


def test_shapes_nan_and_large_arrays():
    """Scalars give a float, shapes broadcast, NaN in either argument reads NaN, and arrays
    longer than one pass of the inverse equal the element-wise answer.
    """
    table = OcvTable.from_csv(os.path.join(config_dir(), 'ocv', 'nmc532_mohtat2020.csv'))
    scalar = table.soc_from_ocv(3.7, 10.0)
    assert np.ndim(scalar) == 0 and 0.0 < float(scalar) < 1.0
    grid = table.soc_from_ocv(np.full((2, 3), 3.7), np.array([10.0, 25.0, 45.0]))
    assert grid.shape == (2, 3)
    assert grid[1, 0] == scalar
    assert np.all(np.diff(grid[0]) != 0.0)       # the temperature matters
    out = table.soc_from_ocv(np.array([np.nan, 3.7, 3.7]), np.array([25.0, np.nan, 25.0]))
    assert np.isnan(out[0]) and np.isnan(out[1]) and np.isfinite(out[2])
    rng = np.random.default_rng(5)
    temps = rng.uniform(0.0, 50.0, 10000)
    v = rng.uniform(2.7, 4.3, 10000)
    many = table.soc_from_ocv(v, temps)
    one_by_one = np.array([table.soc_from_ocv(a, b) for a, b in zip(v[::97], temps[::97])])
    np.testing.assert_array_equal(many[::97], one_by_one)
    assert many.min() >= 0.0 and many.max() <= 1.0 and many.min() == 0.0 and many.max() == 1.0
