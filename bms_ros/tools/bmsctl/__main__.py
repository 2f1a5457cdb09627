import sys

from bms_ros.tools.bmsctl import main

sys.exit(main())
