"""Commands down that are larger than a transport takes, real Mosquitto and rclpy: a zstd-compressed command in
chunks reaches ROS whole; one with a chunk lost is refused and counted, and the next one arrives."""

from __future__ import annotations

import base64
import time
from typing import Any

import paho.mqtt.client as paho
import pytest
import rclpy
from large_records import photo_rgb
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.codec import Envelope, encode_json
from swarm_bridge.codec.chunks import split_record
from swarm_bridge.codec.compression import COMPRESSIONS
from swarm_bridge.codec.wire import wire_decoder
from swarm_bridge.metrics import BridgeMetrics
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.ros.uplink_to_ros import DownlinkRoute
from swarm_bridge.routing import Route
from swarm_bridge.transport import MqttLink

pytestmark = pytest.mark.integration

TASK_COMMAND = "swarm_bridge_msgs/msg/TaskCommand"
TOPIC = "swarm/large_down/amr_042/command/task_command"


def _command(seq: int, site_map: str) -> bytes:
    body = {"task_id": f"task-{seq}", "command_id": f"c-{seq}", "robot_id": "amr_042", "kind": "navigate",
            "parameters": [{"key": "site_map_rgb_b64", "value": site_map}]}
    return encode_json(Envelope("amr_042", "task_command", seq, time.time_ns(), TASK_COMMAND, body))


def test_a_compressed_command_in_chunks_reaches_ros_whole_and_a_damaged_one_is_counted(
        mosquitto: Mosquitto, ros_context: Any) -> None:
    from swarm_bridge_msgs.msg import TaskCommand

    route = Route(ros_topic="/amr_042/task_command", ros_type=TASK_COMMAND, qos="reliable", stream="task_command",
                  channel="command", scheme="mqtt", destination=TOPIC, format="json", direction="down")
    node = rclpy.create_node("bridge_down_large", context=ros_context)
    sink = rclpy.create_node("command_sink_large", context=ros_context)
    received: list[Any] = []
    sink.create_subscription(TaskCommand, route.ros_topic, received.append, qos_preset("reliable"))
    executor = make_executor(ros_context)
    link = MqttLink(host="127.0.0.1", port=mosquitto.port, client_id="amr_042-large-down")
    link.connect()
    downlink = DownlinkRoute(node, route, robot_id="amr_042", uplink=link, metrics=BridgeMetrics(),
                             decoder=wire_decoder(TASK_COMMAND, "json", "mqtt", subject="-"))
    site_map = base64.b64encode(photo_rgb(900, 900)).decode()  # a 3.2 MB map of real content
    zstd = COMPRESSIONS["zstd"]
    chunked = [split_record(zstd.compress(_command(seq, site_map), 3), robot_id="amr_042", stream="task_command",
                            seq=seq, chunk_bytes=64 * 1024) for seq in (1, 2)]
    assert len(chunked[0]) > 3
    del chunked[1][1]  # lost on the way
    publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id="coordinator-large", protocol=paho.MQTTv5)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "application/json"
    props.UserProperty = [("compression", "zstd")]
    try:
        assert spin_until(executor, [node, sink], done=lambda: sink.count_publishers(route.ros_topic) > 0,
                          timeout_s=30)
        time.sleep(0.5)  # the subscription reaches the broker
        for payload in [*chunked[0], *chunked[1], zstd.compress(_command(3, "small"), 3)]:
            publisher.publish(TOPIC, payload, qos=1, properties=props).wait_for_publish(timeout=30)
        assert spin_until(executor, [], done=lambda: len(received) >= 2, timeout_s=60)
        spin_until(executor, [], timeout_s=1.0)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        link.close()
        node.destroy_node()
        sink.destroy_node()
    assert [c.task_id for c in received] == ["task-1", "task-3"]
    assert received[0].parameters[0].value == site_map
    assert dict(downlink.counts.refused) == {"chunk lost": 1}
