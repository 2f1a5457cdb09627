"""``python -m bms_ros.tools.bag``: the bms-bag command line."""
import sys

from bms_ros.tools.bag import main

sys.exit(main())
