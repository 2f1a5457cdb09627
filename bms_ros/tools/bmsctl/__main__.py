"""``python -m bms_ros.tools.bmsctl``: the bmsctl command line."""
import sys

from bms_ros.tools.bmsctl import main

sys.exit(main())
