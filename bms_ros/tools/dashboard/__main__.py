"""python -m bms_ros.tools.dashboard: the dashboard node (bms_ros.nodes.dashboard)."""
from bms_ros.nodes.dashboard import main

if __name__ == '__main__':
    main()
