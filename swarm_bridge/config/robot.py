"""The robot bridge's config: which robot, which uplink, which ROS topics become which streams."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["QOS_PRESETS", "RobotBridgeConfig", "RouteConfig", "UplinkConfig"]

# Named ROS QoS presets; a route must name one (QoS is never implicit).
QOS_PRESETS = ("reliable", "sensor_data", "transient_local")

NAME = r"^[A-Za-z0-9_-]+$"
STREAM = r"^[a-z0-9_]+$"
ROS_TYPE = r"^[A-Za-z0-9_]+/msg/[A-Za-z0-9_]+$"
ROS_TOPIC = r"^/[A-Za-z0-9_/~{}]*$"


class Strict(BaseModel):
    """Frozen, and unknown keys are errors (with a did-you-mean)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class UplinkConfig(Strict):
    """Where this robot's records go: an MQTT broker or a Kafka cluster."""

    kind: Literal["mqtt", "kafka"]
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(ge=1, le=65535)
    topic_prefix: str = Field(default="swarm", pattern=r"^[A-Za-z0-9_-]+$")
    connect_timeout_s: float = Field(default=10.0, gt=0)


class RouteConfig(Strict):
    """One bridged ROS topic: what it is on ROS and what stream it becomes upstream."""

    topic: str = Field(pattern=ROS_TOPIC)
    type: str = Field(pattern=ROS_TYPE, description="ROS type, e.g. nav_msgs/msg/Odometry")
    stream: str = Field(pattern=STREAM, description="stream name upstream, e.g. odometry")
    channel: Literal["telemetry", "event", "state"]
    qos: Literal["reliable", "sensor_data", "transient_local"]
    format: Literal["json"] = Field(description="payload format; avro/protobuf arrive with the codec")
    mqtt_qos: Literal[0, 1, 2] = 1


class RobotBridgeConfig(Strict):
    """Everything the robot bridge node needs, validated before any socket opens."""

    robot_id: str = Field(pattern=NAME)
    fleet: str = Field(pattern=NAME)
    uplink: UplinkConfig
    routes: list[RouteConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _streams_unique(self) -> RobotBridgeConfig:
        seen: dict[str, int] = {}
        for index, route in enumerate(self.routes):
            if route.stream in seen:
                raise ValueError(
                    f"routes[{index}].stream '{route.stream}' is already used by routes[{seen[route.stream]}];"
                    " each route needs its own stream"
                )
            seen[route.stream] = index
        return self
