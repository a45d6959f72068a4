#!/bin/sh
# Runs a swarm_bridge node (robot_bridge, task_executor) or `swarm-bridge ...` with ROS and the install sourced.
set -e
. /opt/ros/kilted/setup.sh
. /opt/swarm_bridge/setup.sh
node="$1"
shift
exec ros2 run swarm_bridge "$node" "$@"   # swarm-bridge too: lib/swarm_bridge/swarm-bridge
