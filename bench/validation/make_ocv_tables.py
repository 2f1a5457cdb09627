"""Generate config/ocv/*.csv from PyBaMM's published parameter sets (validation venv only).

OCV(z) = U_p(y(z)) - U_n(x(z)), with the electrode stoichiometries at 0 % and 100 % SoC from
PyBaMM's electrode state-of-health solver; the entropic coefficient column comes from the
parameter set where it has one (else 0). The matrix's new cells (Mohtat2020, NCA_Kim2011) get
their tables through write_table from make_matrix.py cells.

    .venv-validation/bin/python bench/validation/make_ocv_tables.py
"""
import os

import numpy as np
import pybamm

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', '..', 'config', 'ocv')

SETS = {
    'nmc_lg_m50.csv': ('Chen2020', 'LG M50 21700 (NMC811 / graphite-SiOx), 5 Ah',
                       'Chen et al., J. Electrochem. Soc. 167 (2020) 080534'),
    'lfp_a123_anr26650.csv': ('Prada2013', 'A123 ANR26650M1 (LFP / graphite), 2.3 Ah',
                              'Prada et al., J. Electrochem. Soc. 160 (2013) A616'),
}


def ocv_table(name):
    params = pybamm.ParameterValues(name)
    param = pybamm.LithiumIonParameters()
    esoh = pybamm.lithium_ion.ElectrodeSOHSolver(params, param)
    inputs = {'Q_Li': params.evaluate(param.Q_Li_particles_init),
              'Q_n': params.evaluate(param.n.Q_init), 'Q_p': params.evaluate(param.p.Q_init)}
    sol = esoh.solve(inputs)
    x0, x100, y0, y100 = (float(sol[k]) for k in ('x_0', 'x_100', 'y_0', 'y_100'))
    soc = np.linspace(0.0, 1.0, 101)
    x = x0 + soc * (x100 - x0)
    y = y0 + soc * (y100 - y0)
    t_ref = 298.15
    u_p = params.process_symbol(param.p.prim.U(pybamm.Vector(y), t_ref)).evaluate().ravel()
    u_n = params.process_symbol(param.n.prim.U(pybamm.Vector(x), t_ref)).evaluate().ravel()
    ocv = u_p - u_n
    try:
        du_p = params.process_symbol(param.p.prim.dUdT(pybamm.Vector(y))).evaluate().ravel()
        du_n = params.process_symbol(param.n.prim.dUdT(pybamm.Vector(x))).evaluate().ravel()
        dt = du_p - du_n
    except Exception:
        dt = np.zeros_like(soc)
    ocv = np.maximum.accumulate(ocv)  # guard tiny non-monotonic wiggles of fitted OCPs
    return soc, ocv, dt * np.ones_like(soc), (x0, x100, y0, y100)


def write_table(path, name, cell, ref, soc, ocv, dt, stoich):
    """One config/ocv/*.csv with its provenance comment."""
    with open(path, 'w') as out:
        out.write(f'# {cell}: OCV at 25 degC from PyBaMM {pybamm.__version__} parameter set '
                  f'"{name}" ({ref}).\n')
        out.write('# OCV(z) = U_p(y) - U_n(x) with stoichiometries x0,x100,y0,y100 = '
                  + ', '.join(f'{s:.4f}' for s in stoich)
                  + ' from the electrode SOH solver; made by bench/validation/make_ocv_tables.py\n')
        out.write('soc,ocv_v,docv_dt_v_per_degc\n')
        for z, v, d in zip(soc, ocv, dt):
            out.write(f'{z:.2f},{v:.5f},{d:.3e}\n')


def main():
    os.makedirs(OUT, exist_ok=True)
    for filename, (name, cell, ref) in SETS.items():
        soc, ocv, dt, stoich = ocv_table(name)
        write_table(os.path.join(OUT, filename), name, cell, ref, soc, ocv, dt, stoich)
        print(filename, f'{ocv[0]:.3f}..{ocv[-1]:.3f} V')


if __name__ == '__main__':
    main()
