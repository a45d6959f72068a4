"""A route: one ROS topic bridged to one uplink destination, as a frozen value."""

from __future__ import annotations

from dataclasses import dataclass

from swarm_bridge.config.robot import RobotBridgeConfig, RouteConfig
from swarm_bridge.routing.naming import kafka_topic, mqtt_topic

__all__ = ["Route", "routes_for"]


@dataclass(frozen=True)
class Route:
    """ROS side (topic, type, QoS preset) and uplink side (scheme, destination) of one stream, one direction.

    For an MQTT uplink the destination carries the robot id; on Kafka, where robots share a topic per
    stream kind, a down route takes only the records keyed with its robot id."""

    ros_topic: str
    ros_type: str
    qos: str
    stream: str
    channel: str
    scheme: str  # "mqtt" or "kafka"
    destination: str  # MQTT topic or Kafka topic
    format: str
    mqtt_qos: int = 1
    priority: int = 1
    max_rate_hz: float | None = None
    direction: str = "up"
    qos_depth: int | None = None

    def __str__(self) -> str:
        if self.direction == "down":
            return f"route {self.scheme}:{self.destination} -> ros:{self.ros_topic}"
        return f"route ros:{self.ros_topic} -> {self.scheme}:{self.destination}"


def routes_for(config: RobotBridgeConfig) -> list[Route]:
    """The robot's routes, with destinations named for its uplink kind."""
    return [_route(config, rc) for rc in config.routes]


def _route(config: RobotBridgeConfig, rc: RouteConfig) -> Route:
    uplink = config.uplink
    if uplink.kind == "mqtt":
        destination = mqtt_topic(uplink.topic_prefix, config.fleet, config.robot_id, rc.channel, rc.stream)
    else:
        destination = kafka_topic(rc.channel, rc.stream)
    return Route(
        ros_topic=rc.topic,
        ros_type=rc.type,
        qos=rc.qos,
        stream=rc.stream,
        channel=rc.channel,
        scheme=uplink.kind,
        destination=destination,
        format=rc.format,
        mqtt_qos=rc.mqtt_qos,
        priority=rc.priority,
        max_rate_hz=rc.max_rate_hz,
        direction=rc.direction,
        qos_depth=rc.qos_depth,
    )
