"""Issue #20 with real processes: 20 robot bridge processes, half with RobotState v1 installed and half with v2
(`charging` removed, `battery_voltage` added, mode grown), publish through a real gateway process into Kafka; a
running coordinator process (mode kafka) folds every robot into its fleet view, and confluent-kafka's
`AvroDeserializer` reads every record with its writer's schema. Real Mosquitto, Kafka, Apicurio and rclpy.

20 bridges fit: an idle bridge costs about 0.5 % of a core (bench/idle.py), each start about 0.7 s of CPU."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rclpy
import yaml
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from coordinator_fleet import coordinator_doc, wait_for
from gateway_harness import GatewayProcess, read_topic
from gateway_harness import write_config as gateway_config
from registry_server import apicurio
from robot_state_versions import MODE_DOCKING, v2_prefix

from swarm_bridge.brokers import Kafka, Mosquitto, free_port
from swarm_bridge.brokers.registry import SchemaRegistryServer
from swarm_bridge.codec.rostypes import RosTypes, default_types
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.sim.records import robot_state_body

pytestmark = pytest.mark.integration

ROBOT_STATE = "swarm_bridge_msgs/msg/RobotState"
ROBOTS, RECORDS = 20, 3
NODE = [sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge"]
COORDINATOR = [sys.executable, "-m", "swarm_bridge.cli", "coordinator", "--config"]
OWNS = re.compile(r"owns shards \[([0-9, ]*)\]")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaRegistryServer]:
    with apicurio(tmp_path_factory) as registry:
        yield registry


def _body(robot_id: str, n: int, v2: bool) -> dict[str, Any]:
    """RobotState of robot `robot_id`, record `n`, as its ROS side publishes it on its version."""
    body = robot_state_body(robot_id, "amr", ["navigate"], x=float(n), y=1.0, battery=50.0 + n,
                            mode=MODE_DOCKING if v2 else 1)
    if v2:
        del body["charging"]
        body["battery_voltage"] = 24.0 + n
    else:
        body["charging"] = True
    return body


def _bridge_config(tmp_path: Path, robot: str, *, fleet: str, stream: str, port: int, registry: str) -> Path:
    path = tmp_path / f"{robot}.yaml"
    path.write_text(yaml.safe_dump({
        "robot_id": robot, "fleet": fleet, "registry": registry,
        "uplink": {"kind": "mqtt", "port": port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "spool": {"path": str(tmp_path / f"{robot}.db"), "max_mb": 16},
        "routes": [{"topic": "/{robot_id}/robot_state", "type": ROBOT_STATE, "channel": "state", "stream": stream,
                    "qos": "reliable", "format": "avro"}]}))
    return path


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text: str = answer.read().decode()
    return text


def _gauge(text: str, name: str) -> float | None:
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_twenty_bridge_processes_on_v1_and_v2_are_read_by_a_running_coordinator_and_the_ecosystem(
        tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka, server: SchemaRegistryServer, ros_context: Any,
        ros_env: dict[str, str]) -> None:
    from swarm_bridge_msgs.msg import RobotState

    tag = uuid.uuid4().hex[:6]
    fleet, stream = f"fleet_{tag}", f"robot_state_{tag}"
    state_topic, presence_topic = f"fleet.state.{stream}", f"fleet.presence.status_{tag}"
    robots = {f"amr_{i:02d}_{tag}": i % 2 == 1 for i in range(ROBOTS)}  # odd robots have v2 installed
    installed = os.environ.get("AMENT_PREFIX_PATH") or sys.prefix
    v2 = v2_prefix(tmp_path / "v2")
    v2_env = {**ros_env, "AMENT_PREFIX_PATH": os.pathsep.join([str(v2), installed])}
    metrics_port = free_port()
    doc = coordinator_doc(kafka, tmp_path, shards=2, registry=server.url, metrics_port=metrics_port,
                          topics={"state": state_topic, "presence": presence_topic},
                          tasks={"robot_offline_after_s": 3600})
    coordinator_yaml = tmp_path / "coordinator.yaml"
    coordinator_yaml.write_text(yaml.safe_dump(doc))
    coordinator_log = tmp_path / "coordinator.log"
    processes: list[subprocess.Popen[bytes]] = []
    gateway = None
    try:
        coordinator = subprocess.Popen([*COORDINATOR, str(coordinator_yaml), "--instance-id", f"c_{tag}"],
                                       stdout=coordinator_log.open("wb"), stderr=subprocess.STDOUT,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
        processes.append(coordinator)
        # the coordinator first: it makes the state and presence topics with `shards` partitions
        wait_for(lambda: bool(OWNS.search(coordinator_log.read_text(errors="replace"))) or
                 coordinator.poll() is not None, 120, "the coordinator to own its shards")
        assert coordinator.poll() is None, coordinator_log.read_text()[-3000:]
        gateway = GatewayProcess(gateway_config(
            tmp_path / "gateway.yaml", gateway_id=f"gw_{tag}", fleet=fleet, mqtt_port=mosquitto.port,
            bootstrap=kafka.bootstrap, registry=server.url,  # type: ignore[arg-type]
            kafka={"command_group": f"gw_commands_{tag}"},
            up=[{"mqtt": "{prefix}/{fleet}/{robot_id}/{channel}/{stream}", "kafka_topic": "fleet.{channel}.{stream}"},
                {"mqtt": "{prefix}/{fleet}/{robot_id}/presence/status", "kafka_topic": presence_topic,
                 "payload": "raw"}],
            down=[{"kafka_topic": f"fleet.command.task_command_{tag}",
                   "mqtt": "{prefix}/{fleet}/{robot_id}/command/task_command"}]), timeout_s=120)
        logs = {robot: tmp_path / f"{robot}.log" for robot in robots}
        for robot, on_v2 in robots.items():
            config = _bridge_config(tmp_path, robot, fleet=fleet, stream=stream, port=mosquitto.port,
                                    registry=server.url)
            processes.append(subprocess.Popen(
                [*NODE, "--config", str(config), "--ros-args", "-r", f"__node:=robot_bridge_{robot}"],
                env=v2_env if on_v2 else ros_env, stdout=logs[robot].open("wb"), stderr=subprocess.STDOUT))

        # each robot's ROS side: its own RobotState CDR, made from the definition its robot has installed
        cdr = {False: default_types(), True: RosTypes(extra_msg_dirs=[v2 / "share"])}
        node = rclpy.create_node(f"robots_{tag}", context=ros_context)
        publishers = {robot: node.create_publisher(RobotState, f"/{robot}/robot_state", qos_preset("reliable"))
                      for robot in robots}
        executor = make_executor(ros_context)
        assert spin_until(executor, [node], done=lambda: all(p.get_subscription_count() for p in publishers.values())
                          or any(p.poll() is not None for p in processes), timeout_s=180), \
            {robot: logs[robot].read_text()[-500:] for robot, p in publishers.items() if not p.get_subscription_count()}
        assert all(p.poll() is None for p in processes), [p.args for p in processes if p.poll() is not None]
        for n in range(RECORDS):
            for robot, on_v2 in robots.items():
                publishers[robot].publish(cdr[on_v2].dict_to_cdr(_body(robot, n, on_v2), ROBOT_STATE))

        records = read_topic(kafka.bootstrap, state_topic, count=ROBOTS * RECORDS, timeout_s=180)

        # the running coordinator: every robot in its fleet view, online, nothing dropped
        def coordinator_sees_all() -> bool:
            return _gauge(_metrics(metrics_port), "swarm_coordinator_robots_online") == ROBOTS

        wait_for(coordinator_sees_all, 120, f"the coordinator to count {ROBOTS} robots online")
        text = _metrics(metrics_port)
        assert "swarm_coordinator_dropped_total{" not in text, text
    finally:
        if gateway is not None:
            gateway.stop()
        # One after the other, as robots on their own hosts stop: twenty Fast DDS participants torn down at once
        # on one host can deadlock one of them (ros/context.py ROS_TEARDOWN_S), which the rc check below catches.
        for process in processes:
            process.terminate()
            process.wait(timeout=60)
    summary = coordinator_log.read_text(errors="replace")
    assert f"'robots': {ROBOTS}," in summary and "'dropped': {}" in summary, summary[-3000:]
    assert all(p.returncode == 0 for p in processes), [(p.args, p.returncode) for p in processes if p.returncode]

    # every record once, each with its writer's version, read by the ecosystem's own reader
    assert len(records) == ROBOTS * RECORDS
    assert len({int.from_bytes(m.value()[1:5], "big") for m in records}) == 2  # two schema ids: v1 and v2
    client = SchemaRegistryClient({"url": server.url})
    try:
        deserializer = AvroDeserializer(client)
        read = [deserializer(m.value(), SerializationContext(state_topic, MessageField.VALUE)) for m in records]
    finally:
        client.close()
    assert sorted((r["robot_id"], r["seq"] & 0xFFFFFFFF) for r in read) == sorted(
        (robot, n) for robot in robots for n in range(RECORDS))
    for record in read:
        on_v2, body, n = robots[record["robot_id"]], record["body"], record["seq"] & 0xFFFFFFFF
        assert ("battery_voltage" in body) is on_v2 and ("charging" in body) is not on_v2, record
        assert body["battery_percent"] == 50.0 + n and body["mode"] == (MODE_DOCKING if on_v2 else 1)
        assert body["battery_voltage" if on_v2 else "charging"] == (24.0 + n if on_v2 else True)
