"""The fleet coordinator's ROS end: task requests on a ROS topic go to the coordinators' Kafka submit topic.

Topic `tasks/submit` (std_msgs/msg/String, QoS preset `reliable`): one task request as JSON, the same
document `swarm-bridge task submit` sends ({task_id, kind, target, priority, deadline_ns, parameters}).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from rclpy.node import Node
from std_msgs.msg import String

from swarm_bridge.ros.qos import qos_preset

__all__ = ["SUBMIT_TOPIC", "FleetCoordinatorNode"]

log = logging.getLogger(__name__)

SUBMIT_TOPIC = "tasks/submit"


class FleetCoordinatorNode:
    """Subscribes to `tasks/submit` and hands each request's bytes to `submit` (a Kafka producer)."""

    def __init__(self, node: Node, submit: Callable[[bytes], None]) -> None:
        self.node = node
        self.received = 0
        self.failed = 0
        self._submit = submit
        self._subscription = node.create_subscription(String, SUBMIT_TOPIC, self._on_request,
                                                      qos_preset("reliable"))

    def _on_request(self, msg: String) -> None:
        self.received += 1
        try:
            self._submit(msg.data.encode("utf-8"))
        except Exception:  # a request that cannot be forwarded is counted, never fatal
            self.failed += 1
            log.exception("ros:%s -> kafka: cannot forward a task request", SUBMIT_TOPIC)
