"""Print the fail-safe table (bms_ros.core.failsafe) of a profile as the FMEA of docs/safety.md.

    python -m bms_ros.tools.safety_table [--profile P]

Exit code 2 with the error naming the file and field if the profile's bounds do not hold.
"""
import argparse
import sys

from bms_ros.core.errors import ConfigError
from bms_ros.core.failsafe import markdown_table
from bms_ros.core.profile import Profile, default_profile_path


def main(argv=None):
    """Print the safety table of ``--profile``; the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--profile', default=default_profile_path(), help='pack profile YAML')
    args = parser.parse_args(argv)
    try:
        rows = Profile(args.profile).failsafe   # resolved (and checked) as it loads
    except ConfigError as error:
        print(f'safety_table: {error}', file=sys.stderr)
        return 2
    sys.stdout.write(markdown_table(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
