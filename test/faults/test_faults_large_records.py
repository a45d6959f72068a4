"""Chunked records under faults, real parts: a chunk removed or corrupted on its way to the broker (the fault
proxy rewrites the robot's MQTT packets) drops that record whole and counted while the next one arrives; a gateway
stopped in the middle of a record and started again delivers it whole."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import rclpy
import yaml
from fault_proxy import FaultProxy
from gateway_harness import GatewayThread, wait_for, write_config
from large_records import camera_image, decode_kafka, kafka_records, photo_rgb
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from swarm_bridge.brokers import Kafka, Mosquitto
from swarm_bridge.codec.chunks import CHUNK_MAGIC, split_record
from swarm_bridge.codec.envelope import Envelope
from swarm_bridge.codec.wire import wire_encoder
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.transport import ensure_kafka_topics

pytestmark = pytest.mark.integration

NODE = [sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge"]
SIDE = 1200  # 1200 x 1200 RGB8: 4.3 MB, 17 chunks of 256 KiB


class _Damage:
    """Rewrites the robot's PUBLISH packets of camera chunks: removes chunk 3 of the first record, flips a data byte
    of chunk 2 of the second, lets the third pass."""

    def __init__(self) -> None:
        self.records: list[int] = []  # seqs seen, in order
        self.done: list[str] = []

    def __call__(self, packet: bytes) -> bytes | None:
        at = packet.find(CHUNK_MAGIC)
        if packet[0] >> 4 != 3 or at < 0:  # not a PUBLISH of a chunk
            return packet
        seq = int.from_bytes(packet[at + 4:at + 12], "big")
        index = int.from_bytes(packet[at + 12:at + 16], "big")
        if seq not in self.records:
            self.records.append(seq)
        record = self.records.index(seq)
        if record == 0 and index == 3:
            self.done.append("removed")
            return None
        if record == 1 and index == 2:
            self.done.append("flipped")
            damaged = bytearray(packet)
            damaged[at + 200] ^= 0x10  # inside the chunk's data
            return bytes(damaged)
        return packet


def test_a_chunk_removed_or_flipped_on_the_way_drops_its_record_and_the_next_arrives(
        tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka, ros_context: Any, ros_env: dict[str, str]) -> None:
    from sensor_msgs.msg import Image

    tag = uuid.uuid4().hex[:6]
    robot_id, fleet, topic = f"cam_{tag}", f"faults_{tag}", f"fleet.telemetry.camera_{tag}"
    ensure_kafka_topics(kafka.bootstrap, [topic])
    gateway = GatewayThread(write_config(
        tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=fleet, mqtt_port=mosquitto.port,
        bootstrap=kafka.bootstrap, registry=tmp_path / "registry",
        up=[{"mqtt": "{prefix}/{fleet}/{robot_id}/telemetry/camera", "kafka_topic": topic}]))
    proxy = FaultProxy(mosquitto.port)
    damage = _Damage()
    proxy.rewrite_mqtt(damage)
    config = tmp_path / "robot.yaml"
    config.write_text(yaml.safe_dump({
        "robot_id": robot_id, "fleet": fleet,
        "uplink": {"kind": "mqtt", "port": proxy.port, "chunk_bytes": 256 * 1024},
        "spool": {"path": str(tmp_path / "spool.db")},
        "routes": [{"topic": f"/{robot_id}/camera", "type": "sensor_msgs/msg/Image", "channel": "telemetry",
                    "stream": "camera", "qos": "reliable", "format": "avro"}],
    }))
    proc = subprocess.Popen([*NODE, "--config", str(config)], env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    node = rclpy.create_node("camera", context=ros_context)
    cameras = node.create_publisher(Image, f"/{robot_id}/camera", qos_preset("reliable"))
    executor = make_executor(ros_context)
    images = [camera_image(Image, SIDE, SIDE, shift=50 * i, frame=i) for i in range(3)]
    try:
        assert spin_until(executor, [node], done=lambda: cameras.get_subscription_count() > 0, timeout_s=60)
        for image in images:
            cameras.publish(image)
            spin_until(executor, [node], timeout_s=0.3)
        got, _ = kafka_records(kafka.bootstrap, topic, count=1, timeout_s=120)
        assert wait_for(lambda: sum(gateway.counts.chunk_drops.values()) >= 2, 60), gateway.counts.chunk_drops
    finally:
        node.destroy_node()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=90)
        gateway.close()
        proxy.close()
    assert damage.done == ["removed", "flipped"], output[-2000:]
    assert [bytes(decode_kafka("sensor_msgs/msg/Image", value).body["data"]) for _k, value in got] == \
        [bytes(images[2].data)]  # the third, whole; never a damaged one
    assert dict(gateway.counts.chunk_drops) == {"chunk lost": 1, "chunk corrupt": 1}
    assert gateway.counts.chunked_records == 1


def _publisher(port: int, tag: str) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"robot-{tag}", protocol=paho.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _publish(client: paho.Client, topic: str, payloads: list[bytes], properties: list[tuple[str, str]]) -> None:
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "avro/binary"
    props.UserProperty = properties
    for payload in payloads:
        client.publish(topic, payload, qos=1, properties=props).wait_for_publish(timeout=30)


def test_a_gateway_stopped_mid_record_delivers_it_whole_after_its_restart(
        tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka) -> None:
    tag = uuid.uuid4().hex[:6]
    robot_id, fleet, topic = f"cam_{tag}", f"restart_{tag}", f"fleet.telemetry.camera_{tag}"
    ensure_kafka_topics(kafka.bootstrap, [topic])
    config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=fleet, mqtt_port=mosquitto.port,
                          bootstrap=kafka.bootstrap, registry=tmp_path / "registry",
                          up=[{"mqtt": "{prefix}/{fleet}/{robot_id}/telemetry/camera", "kafka_topic": topic}])
    encoder = wire_encoder("sensor_msgs/msg/Image", "avro", "mqtt", subject="x")
    pixels = photo_rgb(1672, 1672)  # 8.4 MB
    body = {"header": {"stamp": {"sec": 1, "nanosec": 0}, "frame_id": "camera"}, "height": 1672, "width": 1672,
            "encoding": "rgb8", "is_bigendian": 0, "step": 1672 * 3, "data": pixels}
    record = encoder.frame(encoder.codec.encode(Envelope(robot_id, "camera", 1, 1, "sensor_msgs/msg/Image", body)))
    chunks = split_record(record, robot_id=robot_id, stream="camera", seq=1, chunk_bytes=512 * 1024)
    mqtt_topic = f"swarm/{fleet}/{robot_id}/telemetry/camera"
    half = len(chunks) // 2
    gateway = GatewayThread(config)
    client = _publisher(mosquitto.port, tag)
    try:
        _publish(client, mqtt_topic, chunks[:half], list(encoder.user_properties))
        assert wait_for(lambda: gateway.counts.chunks_in >= half, 60)
        assert gateway.gateway.up.reassembly.pending() == 1  # the record is half here, its messages unacked
    finally:
        gateway.close()
    _publish(client, mqtt_topic, chunks[half:], list(encoder.user_properties))  # while no gateway reads
    client.disconnect()
    client.loop_stop()
    again = GatewayThread(config)  # the same gateway_id: its session holds the unacked first half
    try:
        got, _ = kafka_records(kafka.bootstrap, topic, count=1, timeout_s=120)
        assert wait_for(lambda: again.counts.acked >= len(chunks), 60)
    finally:
        again.close()
    assert len(got) == 1 and bytes(decode_kafka("sensor_msgs/msg/Image", got[0][1]).body["data"]) == pixels
    assert again.counts.chunked_records == 1 and not again.counts.chunk_drops
