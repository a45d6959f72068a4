"""A robot's bandwidth budget with real parts (rclpy, the robot bridge process, Mosquitto): under a budget far
below what a camera offers, odometry (control priority) loses nothing while camera records are decimated or
dropped, each counted and every delivered one whole; the budget raised at run time (the node's parameter) lets
every later image through; after an outage the spool drains within the budget too, control priority first."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import rclpy
import yaml
from fault_proxy import FaultProxy
from large_records import camera_image
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from runs import one_run

from swarm_bridge.brokers import Mosquitto, free_port
from swarm_bridge.codec import decode_json, record_codec
from swarm_bridge.codec.framing import parse_single_object
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.sim.taps import MqttTap

pytestmark = pytest.mark.integration

NODE = [sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge"]
SIDE = 1200  # 4.3 MB images
SHORT, LATER = 6, 3


def _budget_drops(port: int) -> int:
    """The camera route's records dropped by the budget, from the bridge's /metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
            text = page.read().decode()
    except OSError:
        return 0
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("swarm_bridge_route_dropped_total{") and 'reason="budget: ' in line
               and "/camera" in line)


def test_odometry_keeps_every_record_under_a_short_budget_and_a_raised_budget_takes_every_image(
        tmp_path: Path, mosquitto: Mosquitto, ros_context: Any, ros_env: dict[str, str]) -> None:
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Image

    tag = uuid.uuid4().hex[:6]
    robot_id, fleet = f"amr_{tag}", f"budget_{tag}"
    config = tmp_path / "robot.yaml"
    metrics_port = free_port()
    config.write_text(yaml.safe_dump({
        "robot_id": robot_id, "fleet": fleet, "metrics_port": metrics_port,
        "uplink": {"kind": "mqtt", "port": mosquitto.port},
        "spool": {"path": str(tmp_path / "spool.db")},
        "budget": {"bytes_per_s": 1_000_000, "max_wait_s": 1.0, "keep_priority": 5},
        "routes": [
            {"topic": f"/{robot_id}/odom", "type": "nav_msgs/msg/Odometry", "channel": "telemetry",
             "stream": "odometry", "qos": "reliable", "format": "json", "priority": 5},
            {"topic": f"/{robot_id}/camera", "type": "sensor_msgs/msg/Image", "channel": "telemetry",
             "stream": "camera", "qos": "reliable", "format": "avro", "priority": 0},
        ],
    }))
    tap = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[f"swarm/{fleet}/{robot_id}/#"])
    proc = subprocess.Popen([*NODE, "--config", str(config)], env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    node = rclpy.create_node("budget_test", context=ros_context)
    odom = node.create_publisher(Odometry, f"/{robot_id}/odom", qos_preset("reliable"))
    cameras = node.create_publisher(Image, f"/{robot_id}/camera", qos_preset("reliable"))
    parameters = AsyncParameterClient(node, "robot_bridge")
    executor = make_executor(ros_context)
    images = [camera_image(Image, SIDE, SIDE, shift=40 * i, frame=i) for i in range(SHORT + LATER)]
    sent_odom = 0

    def odometry(count: int) -> None:
        nonlocal sent_odom
        for _ in range(count):
            message = Odometry()
            message.pose.pose.position.x = float(sent_odom)
            odom.publish(message)
            sent_odom += 1
            spin_until(executor, [node], timeout_s=0.02)

    def camera(kind: str) -> list[Any]:
        return [r for r in tap.snapshot() if r.topic.endswith(f"/{kind}")]

    try:
        assert spin_until(executor, [node], done=lambda: odom.get_subscription_count() > 0
                          and cameras.get_subscription_count() > 0 and parameters.services_are_ready(),
                          timeout_s=60)
        for image in images[:SHORT]:  # 6 x 4.3 MB at about 5 Hz: 20 MB/s offered, 1 MB/s allowed
            cameras.publish(image)
            odometry(10)
        # every image of the short phase settled: whole at the broker, or dropped (counted) by the budget
        assert spin_until(executor, [node], timeout_s=120,
                          done=lambda: len(camera("camera")) + _budget_drops(metrics_port) >= SHORT)
        odometry(50)
        future = parameters.set_parameters([Parameter("budget_bytes_per_s", value=200_000_000.0)])
        assert spin_until(executor, [node], done=future.done, timeout_s=30)
        answer = future.result()
        assert answer is not None and all(result.successful for result in answer.results)
        refused = parameters.set_parameters([Parameter("budget_bytes_per_s", value=-1.0)])
        assert spin_until(executor, [node], done=refused.done, timeout_s=30)
        refusal = refused.result()
        assert refusal is not None and not refusal.results[0].successful
        delivered_short = len(camera("camera"))
        for image in images[SHORT:]:
            cameras.publish(image)
            odometry(50)
        assert spin_until(executor, [node], done=lambda: len(camera("camera")) >= delivered_short + LATER
                          and len(camera("odometry")) >= sent_odom, timeout_s=60)
    finally:
        node.destroy_node()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
        tap.close()
    assert proc.returncode == 0, output[-3000:]
    route = f"route ros:/{robot_id}/camera -> mqtt:swarm/{fleet}/{robot_id}/telemetry/camera"
    reasons = output.split(f"{route}: dropped by reason: ")[1].split("\n")[0].split(", ")
    dropped = sum(int(reason.rsplit(": ", 1)[1]) for reason in reasons)
    assert all(reason.startswith("budget: ") for reason in reasons), reasons
    assert f"{route}: received {SHORT + LATER}, sent {SHORT + LATER - dropped}, dropped {dropped}" in output
    made = re.search(re.escape(route) + r": (\d+) bytes encoded", output)
    encoded = int(made.group(1)) if made else -1
    # only the images that left were made (encoded, chunked): one the budget dropped cost its take, no encoding
    assert 0 < encoded <= (SHORT + LATER - dropped) * (SIDE * SIDE * 3 + 1000), (encoded, dropped)
    codec = record_codec("sensor_msgs/msg/Image", "avro")
    got = [bytes(codec.decode(parse_single_object(r.payload, max_payload=0).payload).body["data"])
           for r in camera("camera")]
    wanted = [bytes(i.data) for i in images]
    assert all(data in wanted for data in got)  # every delivered image whole
    assert 1 <= delivered_short < SHORT and delivered_short + dropped == SHORT, output[-3000:]
    assert got[delivered_short:] == wanted[SHORT:]  # after the raise: every one
    assert one_run(decode_json(r.payload).seq for r in camera("odometry")) == list(range(sent_odom))  # none lost
    assert "budget: short" in output and "budget: changed from 1 MB (8 Mbit) to 200 MB (1.6e+03 Mbit)" in output


def test_records_drained_from_the_spool_after_an_outage_keep_to_the_budget_and_to_priorities(
        tmp_path: Path, mosquitto: Mosquitto, ros_context: Any, ros_env: dict[str, str]) -> None:
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Image

    tag = uuid.uuid4().hex[:6]
    robot_id, fleet = f"amr_{tag}", f"drain_{tag}"
    budget, burst = 2_000_000, 262_144
    proxy = FaultProxy(mosquitto.port)
    config = tmp_path / "robot.yaml"
    config.write_text(yaml.safe_dump({
        "robot_id": robot_id, "fleet": fleet,
        "uplink": {"kind": "mqtt", "port": proxy.port, "reconnect_min_s": 0.2, "reconnect_max_s": 0.5},
        "spool": {"path": str(tmp_path / "spool.db")},
        "budget": {"bytes_per_s": budget, "burst_bytes": burst, "max_wait_s": 30.0, "keep_priority": 5},
        "routes": [
            {"topic": f"/{robot_id}/odom", "type": "nav_msgs/msg/Odometry", "channel": "telemetry",
             "stream": "odometry", "qos": "reliable", "format": "json", "priority": 5},
            {"topic": f"/{robot_id}/camera", "type": "sensor_msgs/msg/Image", "channel": "telemetry",
             "stream": "camera", "qos": "reliable", "format": "avro", "priority": 0},
        ],
    }))
    pattern = f"swarm/{fleet}/{robot_id}/telemetry/#"
    tap = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[pattern])
    wire = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[pattern], split=False)  # chunks as they came
    proc = subprocess.Popen([*NODE, "--config", str(config)], env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    node = rclpy.create_node("drain_test", context=ros_context)
    odom = node.create_publisher(Odometry, f"/{robot_id}/odom", qos_preset("reliable", depth=1000))
    cameras = node.create_publisher(Image, f"/{robot_id}/camera", qos_preset("reliable"))
    executor = make_executor(ros_context)
    images = [camera_image(Image, 800, 800, shift=30 * i, frame=i) for i in range(5)]  # 1.9 MB each
    sent_odom = 0

    def odometry(count: int) -> None:
        nonlocal sent_odom
        for _ in range(count):
            message = Odometry()
            message.pose.pose.position.x = float(sent_odom)
            odom.publish(message)
            sent_odom += 1
            spin_until(executor, [node], timeout_s=0.02)

    def arrived(records: list[Any], kind: str) -> list[Any]:
        return [r for r in records if r.topic.endswith(f"/{kind}")]

    try:
        assert spin_until(executor, [node], done=lambda: odom.get_subscription_count() > 0
                          and cameras.get_subscription_count() > 0, timeout_s=60)
        odometry(10)
        assert spin_until(executor, [node], done=lambda: len(arrived(tap.snapshot(), "odometry")) >= 10,
                          timeout_s=60)  # nothing in flight when the link goes
        proxy.refuse(True)
        proxy.drop()
        spin_until(executor, [node], timeout_s=1.0)
        for image in images:  # 9.6 MB in 5 s: within the budget, so every image reaches the spool
            cameras.publish(image)
            odometry(20)
            spin_until(executor, [node], timeout_s=0.6)
        spin_until(executor, [node], timeout_s=3.0)  # the budget's lanes empty into the spool
        proxy.refuse(False)
        back_ns = time.time_ns()
        assert spin_until(executor, [node], timeout_s=120, done=lambda: len(arrived(tap.snapshot(), "camera"))
                          >= len(images) and len(arrived(tap.snapshot(), "odometry")) >= sent_odom)
    finally:
        node.destroy_node()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
        tap.close()
        wire.close()
        proxy.close()
    assert proc.returncode == 0, output[-3000:]
    assert one_run(decode_json(r.payload).seq for r in arrived(tap.snapshot(), "odometry")) == list(range(sent_odom))
    codec = record_codec("sensor_msgs/msg/Image", "avro")
    got = [bytes(codec.decode(parse_single_object(r.payload, max_payload=0).payload).body["data"])
           for r in arrived(tap.snapshot(), "camera")]
    assert got == [bytes(i.data) for i in images]  # every image whole, none dropped
    after = [r for r in wire.snapshot() if r.arrived_ns >= back_ns]
    drained = arrived(after, "camera")
    span_s = (drained[-1].arrived_ns - drained[0].arrived_ns) / 1e9
    size = sum(len(r.payload) for r in drained)
    assert size >= 9_000_000, size  # the images left from the spool after the outage
    first = len(drained[0].payload)  # a part leaves once the bucket holds min(its size, burst)
    assert (size - burst - first) / span_s <= 1.5 * budget, (size, span_s)  # paced by the budget
    odometry_at = [i for i, r in enumerate(after) if r.topic.endswith("/odometry")]
    camera_at = [i for i, r in enumerate(after) if r.topic.endswith("/camera")]
    # the spooled odometry (control priority; batched, so fewer messages than records) left first, unpaced
    assert odometry_at and odometry_at[-1] < camera_at[0], (odometry_at, camera_at[:3])
