import sys

from bms_ros.tools.bag import main

sys.exit(main())
