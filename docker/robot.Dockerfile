# Robot image on the official ROS 2 base: the system's rclpy and message packages, swarm_bridge built with
# colcon (the root ament_cmake package and msg/), the non-ROS Python dependencies from the pinned requirements.
# Build from the repository root:  docker build -f docker/robot.Dockerfile -t swarm-bridge/robot .
# Run:  docker run --network host swarm-bridge/robot robot_bridge --config /config/robot_bridge.yaml
# Not built by this project's CI (no Docker engine there); the same commands run in the tests.
FROM ros:kilted-ros-base

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-pip python3-colcon-common-extensions \
      ros-kilted-nav-msgs ros-kilted-sensor-msgs ros-kilted-diagnostic-msgs ros-kilted-tf2-msgs \
      ros-kilted-visualization-msgs ros-kilted-ackermann-msgs ros-kilted-gazebo-msgs ros-kilted-nav2-msgs \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /ws/src/swarm_bridge
COPY requirements/ requirements/
# The ROS packages come from the base image (rosdep keys in package.xml); the rest, at the versions the tests use,
# from requirements/robot.txt: the same one command docs/install.md gives a colcon workspace.
RUN pip install --no-cache-dir --break-system-packages -r requirements/robot.txt
COPY . .
RUN . /opt/ros/kilted/setup.sh && cd /ws && colcon build --install-base /opt/swarm_bridge \
 && rm -rf /ws/build /ws/log

ENV ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET
COPY docker/robot_entrypoint.sh /robot_entrypoint.sh
ENTRYPOINT ["/robot_entrypoint.sh"]
CMD ["robot_bridge", "--config", "/opt/swarm_bridge/share/swarm_bridge/config/robot_bridge.yaml"]
