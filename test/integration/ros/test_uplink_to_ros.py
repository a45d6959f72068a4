"""Down route in process: real Mosquitto, real rclpy publisher and subscriber; what a failed ROS publish leaves."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import rclpy

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.codec import Envelope, encode_json
from swarm_bridge.codec.wire import wire_decoder
from swarm_bridge.metrics import BridgeMetrics
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.ros.uplink_to_ros import NOT_PUBLISHABLE, DownlinkRoute
from swarm_bridge.routing import Route
from swarm_bridge.transport import MqttLink

pytestmark = pytest.mark.integration

TASK_COMMAND = "swarm_bridge_msgs/msg/TaskCommand"


def _command(seq: int, command_id: str) -> bytes:
    body = {"task_id": f"task-{seq}", "command_id": command_id, "robot_id": "amr_042", "kind": "pick"}
    return encode_json(Envelope("amr_042", "task_command", seq, time.time_ns(), TASK_COMMAND, body))


def _received_more_than(downlink: DownlinkRoute, count: int) -> Callable[[], bool]:
    return lambda: downlink.counts.received > count


def test_a_command_whose_ros_publish_failed_is_taken_again_when_redelivered(
        mosquitto: Mosquitto, ros_context: Any) -> None:
    from swarm_bridge_msgs.msg import TaskCommand

    topic = "swarm/down_test/amr_042/command/task_command"
    route = Route(ros_topic="/amr_042/task_command", ros_type=TASK_COMMAND, qos="reliable", stream="task_command",
                  channel="command", scheme="mqtt", destination=topic, format="json", direction="down")
    node = rclpy.create_node("bridge_down", context=ros_context)
    sink = rclpy.create_node("command_sink", context=ros_context)
    received: list[TaskCommand] = []
    sink.create_subscription(TaskCommand, route.ros_topic, received.append, qos_preset("reliable"))
    executor = make_executor(ros_context)
    link = MqttLink(host="127.0.0.1", port=mosquitto.port, client_id="amr_042-down-test")
    link.connect()
    downlink = DownlinkRoute(node, route, robot_id="amr_042", uplink=link, metrics=BridgeMetrics(),
                             decoder=wire_decoder(TASK_COMMAND, "json", "mqtt", subject="-"))
    publish = downlink._publisher.publish
    failures: list[Any] = []

    def publish_failing_once(message: Any) -> None:  # fault injection: rclpy's "cannot publish data", once
        if not failures:
            failures.append(message)
            raise RuntimeError("Failed to publish: cannot publish data")
        publish(message)

    setattr(downlink._publisher, "publish", publish_failing_once)  # noqa: B010 (a fault injected on the real one)
    coordinator = MqttLink(host="127.0.0.1", port=mosquitto.port, client_id="coordinator-down-test")
    coordinator.connect()
    try:
        assert spin_until(executor, [node, sink], done=lambda: sink.count_publishers(route.ros_topic) > 0,
                          timeout_s=30)
        time.sleep(0.5)  # the subscription reaches the broker
        for seq in range(3):  # the first delivery fails on ROS; the broker redelivers, then a real duplicate
            coordinator.send(topic, b"", _command(seq, "c-1"), qos=1)
            assert coordinator.flush(10) == 0
            assert spin_until(executor, [], done=_received_more_than(downlink, seq), timeout_s=15)
        spin_until(executor, [], done=lambda: len(received) >= 1, timeout_s=15)
        spin_until(executor, [], timeout_s=1.0)  # nothing else may arrive
    finally:
        coordinator.close()
        link.close()
        node.destroy_node()
        sink.destroy_node()
    assert len(failures) == 1
    assert [(c.task_id, c.command_id) for c in received] == [("task-1", "c-1")]
    assert downlink.counts.published == 1
    assert dict(downlink.counts.refused) == {NOT_PUBLISHABLE: 1, "duplicate command id": 1}
