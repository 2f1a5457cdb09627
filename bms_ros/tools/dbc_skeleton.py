"""Print a starter mapping YAML guessed from a DBC (bms_ros.core.dbc_skeleton, docs/can.md).

    python -m bms_ros.tools.dbc_skeleton DBC [--cells N] [--sensors M] > my_bms_mapping.yaml

Exit code 2 with the error naming the file if the DBC cannot be read.
"""
import argparse
import os
import sys

from bms_ros.core.can_mapping import load_dbc
from bms_ros.core.dbc_skeleton import skeleton
from bms_ros.core.errors import ConfigError


def main(argv=None):
    """The dbc_skeleton command line: a mapping skeleton of a DBC; the exit code."""
    parser = argparse.ArgumentParser(prog='python -m bms_ros.tools.dbc_skeleton',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('dbc', help='the DBC of the BMS')
    parser.add_argument('--cells', type=int, default=None,
                        help='series cells of the pack (default: all the DBC names)')
    parser.add_argument('--sensors', type=int, default=None,
                        help='temperature sensors of the pack (default: all the DBC names)')
    args = parser.parse_args(argv)
    for name in ('cells', 'sensors'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name}: expected a number >= 1, got {value}')
    try:
        database = load_dbc(args.dbc)
    except ConfigError as error:
        print(f'dbc_skeleton: {error}', file=sys.stderr)
        return 2
    sys.stdout.write(skeleton(database, os.path.basename(args.dbc), args.cells, args.sensors))
    return 0


if __name__ == '__main__':
    sys.exit(main())
