"""A route: one ROS topic bridged to one uplink destination, as a frozen value."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from swarm_bridge.config.robot import PRECOMPRESSED_TYPES, RobotBridgeConfig, RouteConfig
from swarm_bridge.config.uplinks import KafkaUplink, MqttUplink
from swarm_bridge.routing.errors import RouteError
from swarm_bridge.routing.naming import kafka_topic, mqtt_topic, robot_namespace, robot_topic
from swarm_bridge.routing.selection import TopicSelector

__all__ = ["DESTINATIONS", "Route", "discovered_routes", "route_for", "routes_for", "selector_for", "stream_for"]


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
    retain: bool = False
    compression: str = "none"  # "zstd", "lz4" (each record compressed) or "none"
    compression_level: int = 0
    schema_version: int | None = None  # pinned registered version of the route's subject (avro, up)

    @property
    def kafka_topic(self) -> str:
        """The Kafka topic the route's records end in: its destination on Kafka; on MQTT the one a gateway's default
        up rules write (`fleet.<channel>.<stream>`). Its registry subject is named after it."""
        return self.destination if self.scheme == "kafka" else kafka_topic(self.channel, self.stream)

    def __str__(self) -> str:
        if self.direction == "down":
            return f"route {self.scheme}:{self.destination} -> ros:{self.ros_topic}"
        return f"route ros:{self.ros_topic} -> {self.scheme}:{self.destination}"


def _mqtt_destination(uplink: MqttUplink, config: RobotBridgeConfig, channel: str, stream: str) -> str:
    """`{topic_prefix}/{fleet}/{robot_id}/{channel}/{stream}`: one topic per robot and stream."""
    return mqtt_topic(uplink.topic_prefix, config.fleet, config.robot_id, channel, stream)


def _kafka_destination(_uplink: KafkaUplink, _config: RobotBridgeConfig, channel: str, stream: str) -> str:
    """`fleet.{channel}.{stream}`: robots share the topic, each record keyed by its robot id."""
    return kafka_topic(channel, stream)


DESTINATIONS: dict[str, Callable[[Any, RobotBridgeConfig, str, str], str]] = {
    "mqtt": _mqtt_destination,
    "kafka": _kafka_destination,
}
"""uplink.kind -> the name of a route's destination (topic) on that uplink, from the uplink config, the robot's
config, the route's channel and stream."""


def routes_for(config: RobotBridgeConfig) -> list[Route]:
    """The robot's routes known from the config alone (exact topic and type), destinations named for its uplink;
    `{robot_id}` in a topic is the robot's ROS namespace (`robot_namespace`)."""
    return [route_for(config, rc, robot_topic(rc.topic, config.robot_id), rc.type) for rc in config.routes
            if rc.topic is not None and rc.type is not None]


def discovered_routes(config: RobotBridgeConfig) -> list[RouteConfig]:
    """The route configs that need the ROS graph: a `match`, or an exact topic without its type."""
    return [rc for rc in config.routes if rc.topic is None or rc.type is None]


def selector_for(rc: RouteConfig, robot_id: str) -> TopicSelector:
    """Which topics a route config takes on robot `robot_id` (`{robot_id}` expanded as in `routes_for`)."""
    if rc.match is not None:
        return TopicSelector(allow=tuple(robot_topic(p, robot_id) for p in rc.match.allow),
                             deny=tuple(robot_topic(p, robot_id) for p in rc.match.deny))
    if rc.topic is None:
        raise RouteError(f"route {rc.stream!r} has neither topic nor match", "give the route a topic or a match")
    return TopicSelector.exact(robot_topic(rc.topic, robot_id))


def stream_for(rc: RouteConfig, topic: str, robot_id: str) -> str:
    """`rc.stream` for an exact topic; for a match, `<stream>_<topic without the robot's namespace>`,
    lower case, every run of other characters as one '_' (e.g. /amr_7/sensors/IMU -> sensors_sensors_imu)."""
    if rc.match is None:
        return rc.stream
    local = topic.removeprefix(f"/{robot_namespace(robot_id)}/").lower()
    return f"{rc.stream}_{re.sub(r'[^a-z0-9]+', '_', local).strip('_')}"


def route_for(config: RobotBridgeConfig, rc: RouteConfig, topic: str, ros_type: str) -> Route:
    """The route of one concrete topic of `rc`, of type `ros_type`."""
    uplink = config.uplink
    stream = stream_for(rc, topic, config.robot_id)
    destination = DESTINATIONS[uplink.kind](uplink, config, rc.channel, stream)
    return Route(
        ros_topic=topic,
        ros_type=ros_type,
        qos=rc.qos,
        stream=stream,
        channel=rc.channel,
        scheme=uplink.kind,
        destination=destination,
        format=rc.format,
        mqtt_qos=rc.mqtt_qos,
        priority=rc.priority,
        max_rate_hz=rc.max_rate_hz,
        direction=rc.direction,
        qos_depth=rc.qos_depth,
        retain=rc.retain,
        compression="none" if ros_type in PRECOMPRESSED_TYPES else rc.compression,  # compressed already: as is
        compression_level=rc.level,
        schema_version=rc.schema_version,
    )
