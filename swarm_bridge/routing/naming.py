"""Names on the wire: MQTT topics (VDA 5050 habit) and Kafka topics and keys; a robot's ROS namespace."""

from __future__ import annotations

import re

from swarm_bridge.routing.errors import RouteError

__all__ = ["ROBOT_ID_PLACEHOLDER", "is_topic_level", "kafka_key", "kafka_topic", "mqtt_topic", "presence_topic",
           "robot_namespace", "robot_topic"]

ROBOT_ID_PLACEHOLDER = "{robot_id}"  # in a route's ROS topic or match pattern: the robot's ROS namespace


def mqtt_topic(prefix: str, fleet: str, robot_id: str, channel: str, stream: str) -> str:
    """`{prefix}/{fleet}/{robot_id}/{channel}/{stream}`, e.g. `swarm/demo/amr_007/telemetry/odometry`.
    RouteError (a ValueError) for a part that is not one topic level (empty, or holds / + # NUL): never a
    wildcard topic."""
    for name, part in (("prefix", prefix), ("fleet", fleet), ("robot_id", robot_id), ("channel", channel),
                       ("stream", stream)):
        if not is_topic_level(part):
            raise RouteError(f"{name} {part!r} is not one MQTT topic level (empty, or holds / + # NUL)",
                             f"give {name} as a non-empty name without / + # or NUL")
    return f"{prefix}/{fleet}/{robot_id}/{channel}/{stream}"


def is_topic_level(part: str) -> bool:
    """Whether `part` is one MQTT topic level: not empty, no / + # NUL (else a topic made of it would span levels
    or be a wildcard)."""
    return bool(part) and not any(c in part for c in "/+#\0")


def presence_topic(prefix: str, fleet: str, robot_id: str) -> str:
    """The robot's retained presence topic (online/offline, with the Last Will): `.../presence/status`."""
    return mqtt_topic(prefix, fleet, robot_id, "presence", "status")


def kafka_topic(channel: str, stream: str) -> str:
    """One Kafka topic per stream kind, e.g. `fleet.telemetry.odometry`; robots share it, keyed by id."""
    return f"fleet.{channel}.{stream}"


def kafka_key(robot_id: str) -> bytes:
    """Record key = robot id, so one robot's records stay in one partition, in order."""
    return robot_id.encode("utf-8")


def robot_namespace(robot_id: str) -> str:
    """The robot's ROS namespace token: its id with each character ROS names refuse ('-') as '_', and '_' before
    a leading digit (`amr-7` -> `amr_7`, `007` -> `_007`, `amr_007` unchanged)."""
    token = re.sub(r"[^A-Za-z0-9_]", "_", robot_id)
    return f"_{token}" if token[:1].isdigit() else token


def robot_topic(template: str, robot_id: str) -> str:
    """A route's ROS topic (or match pattern) for one robot: `{robot_id}` becomes `robot_namespace(robot_id)`."""
    return template.replace(ROBOT_ID_PLACEHOLDER, robot_namespace(robot_id))
