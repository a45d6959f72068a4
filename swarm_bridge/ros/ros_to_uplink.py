"""Up direction: one ROS subscription per route, each message enveloped, encoded and sent upstream."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from rclpy.node import Node

from swarm_bridge.codec import Envelope, encode_json
from swarm_bridge.ros.convert import message_to_dict, source_stamp_ns
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.types import message_class
from swarm_bridge.routing import Route, kafka_key
from swarm_bridge.transport import Uplink

__all__ = ["RouteCounts", "UplinkRoute"]

log = logging.getLogger(__name__)


@dataclass
class RouteCounts:
    """What one route saw: messages received from ROS, sent upstream, dropped (never silently)."""

    received: int = 0
    sent: int = 0
    dropped: int = 0


class UplinkRoute:
    """ROS topic -> uplink destination for one route; numbers records per stream from 0."""

    def __init__(self, node: Node, route: Route, *, robot_id: str, uplink: Uplink) -> None:
        self.route = route
        self.counts = RouteCounts()
        self._robot_id = robot_id
        self._key = kafka_key(robot_id)
        self._uplink = uplink
        self._seq = 0
        self._subscription = node.create_subscription(
            message_class(route.ros_type), route.ros_topic, self._on_message, qos_preset(route.qos)
        )
        log.info("%s: up (%s, qos %s)", route, route.ros_type, route.qos)

    def _on_message(self, msg: Any) -> None:
        self.counts.received += 1
        try:
            envelope = Envelope(
                robot_id=self._robot_id,
                stream=self.route.stream,
                seq=self._seq,
                stamp_ns=source_stamp_ns(msg, time.time_ns()),
                ros_type=self.route.ros_type,
                body=message_to_dict(msg),
            )
            payload = encode_json(envelope)
        except (ValueError, TypeError) as exc:
            self.counts.dropped += 1
            log.warning("%s: dropped 1 (cannot encode: %s)", self.route, exc)
            return
        self._seq += 1
        self._uplink.send(self.route.destination, self._key, payload, qos=self.route.mqtt_qos)
        self.counts.sent += 1
