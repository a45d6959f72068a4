"""Large records end to end, real parts: rclpy publishes 8 MB camera images of a real photograph and lidar-sized
PointCloud2s; the robot bridge (its own process) chunks and compresses them, real Mosquitto carries the chunks, the
gateway puts them together and writes them to a real Kafka with its default limits (as chunks again); readers get
every record whole and equal."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import rclpy
import yaml
from gateway_harness import GatewayThread, wait_for, write_config
from large_records import camera_image, decode_kafka, kafka_records, lidar_cloud

from swarm_bridge.brokers import Kafka, Mosquitto
from swarm_bridge.codec import record_codec
from swarm_bridge.codec.framing import parse_single_object
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.sim.taps import MqttTap
from swarm_bridge.transport import ensure_kafka_topics

pytestmark = pytest.mark.integration

NODE = [sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge"]
SIDE = 1672  # 1672 x 1672 RGB8: 8.4 MB per image
IMAGES, CLOUDS = 3, 3


def _robot_config(path: Path, robot_id: str, fleet: str, port: int) -> Path:
    path.write_text(yaml.safe_dump({
        "robot_id": robot_id, "fleet": fleet,
        "uplink": {"kind": "mqtt", "port": port, "chunk_bytes": 256 * 1024},
        "spool": {"path": str(path.parent / "spool.db"), "max_mb": 256},
        "routes": [
            {"topic": f"/{robot_id}/camera", "type": "sensor_msgs/msg/Image", "channel": "telemetry",
             "stream": "camera", "qos": "reliable", "format": "avro", "priority": 0},
            {"topic": f"/{robot_id}/cloud", "type": "sensor_msgs/msg/PointCloud2", "channel": "telemetry",
             "stream": "cloud", "qos": "reliable", "format": "avro", "priority": 0, "compression": "zstd",
             "compression_level": 3},
        ],
    }))
    return path


def test_8_mb_images_and_lidar_clouds_arrive_whole_through_mqtt_and_kafka(
        tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka, ros_context: Any, ros_env: dict[str, str]) -> None:
    from sensor_msgs.msg import Image, PointCloud2, PointField

    tag = uuid.uuid4().hex[:6]
    robot_id, fleet = f"cam_{tag}", f"large_{tag}"
    ensure_kafka_topics(kafka.bootstrap, ["fleet.telemetry.camera", "fleet.telemetry.cloud"])
    gateway = GatewayThread(write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=fleet,
                                         mqtt_port=mosquitto.port, bootstrap=kafka.bootstrap,
                                         registry=tmp_path / "registry"))
    tap = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[f"swarm/{fleet}/{robot_id}/#"])
    config = _robot_config(tmp_path / "robot.yaml", robot_id, fleet, mosquitto.port)
    proc = subprocess.Popen([*NODE, "--config", str(config)], env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    node = rclpy.create_node("large_publisher", context=ros_context)
    cameras = node.create_publisher(Image, f"/{robot_id}/camera", qos_preset("reliable"))
    clouds = node.create_publisher(PointCloud2, f"/{robot_id}/cloud", qos_preset("reliable"))
    executor = make_executor(ros_context)
    images = [camera_image(Image, SIDE, SIDE, shift=97 * i, frame=i) for i in range(IMAGES)]
    sweeps = [lidar_cloud(PointCloud2, PointField, sweep=i) for i in range(CLOUDS)]
    try:
        assert spin_until(executor, [node], done=lambda: cameras.get_subscription_count() > 0
                          and clouds.get_subscription_count() > 0, timeout_s=60)
        for image, cloud in zip(images, sweeps, strict=True):
            cameras.publish(image)
            clouds.publish(cloud)
            spin_until(executor, [node], timeout_s=0.3)
        camera_got, camera_chunks = kafka_records(kafka.bootstrap, "fleet.telemetry.camera", count=IMAGES,
                                                  timeout_s=180)
        cloud_got, _ = kafka_records(kafka.bootstrap, "fleet.telemetry.cloud", count=CLOUDS, timeout_s=60)
        assert wait_for(lambda: len(_streams(tap)["camera"]) >= IMAGES and len(_streams(tap)["cloud"]) >= CLOUDS, 60)
    finally:
        node.destroy_node()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
        tap.close()
        gateway.close()
    assert proc.returncode == 0, output[-3000:]
    # Kafka: every record whole and equal, written as chunks under Kafka's default 1 MiB limit
    assert [key for key, _v in camera_got] == [robot_id.encode()] * IMAGES
    assert [bytes(decode_kafka("sensor_msgs/msg/Image", v).body["data"]) for _k, v in camera_got] == \
        [bytes(i.data) for i in images]
    assert [bytes(decode_kafka("sensor_msgs/msg/PointCloud2", v).body["data"]) for _k, v in cloud_got] == \
        [bytes(c.data) for c in sweeps]
    assert camera_chunks.chunks >= IMAGES * 9 and not camera_chunks.drops
    counts = gateway.counts
    assert counts.chunked_records == IMAGES + CLOUDS and not counts.chunk_drops  # zstd left each cloud > 256 KiB
    assert counts.acked == counts.messages  # every chunk's message acked once Kafka had its record
    # the demo's tap: chunks put together, zstd undone
    by_stream = _streams(tap)
    codec = {s: record_codec(t, "avro") for s, t in (("camera", "sensor_msgs/msg/Image"),
                                                      ("cloud", "sensor_msgs/msg/PointCloud2"))}
    for stream, sent in (("camera", [bytes(i.data) for i in images]), ("cloud", [bytes(c.data) for c in sweeps])):
        got = [bytes(codec[stream].decode(parse_single_object(p, max_payload=0).payload).body["data"])
               for p in by_stream[stream]]
        assert got == sent, stream
    assert "zstd level 3" in output and "(ratio 0." in output  # the stop summary: bytes encoded, sent


def _streams(tap: MqttTap) -> dict[str, list[bytes]]:
    """The tap's records by stream (the last level of their MQTT topic)."""
    by_stream: dict[str, list[bytes]] = {"camera": [], "cloud": []}
    for record in tap.snapshot():
        by_stream.setdefault(record.topic.rsplit("/", 1)[1], []).append(record.payload)
    return by_stream

