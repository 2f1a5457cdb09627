"""Live web dashboard of every pack in the ROS graph (issue 18 item 4), see docs/dashboard.md.

Split as the house rules want: ``config`` (the profile's `dashboard:` section, validated),
``state`` (what one pack looks like now: the JSON snapshot, history, events; pure Python),
``server`` (the HTTP/JSON API, Server-Sent Events and the static page; stdlib only) are free of
rclpy and tested without a browser or ROS; bms_ros.nodes.dashboard is the thin ROS side
(discovery, subscriptions, the two service clients).

    python -m bms_ros.tools.dashboard [--ros-args -p profile:=... -p port:=8642]
"""
