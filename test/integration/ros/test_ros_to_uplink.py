"""ROS -> robot bridge -> real Mosquitto / real Kafka: every record arrives once, in order, intact."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from runs import one_run

from swarm_bridge.brokers import Kafka, Mosquitto
from swarm_bridge.codec.registry import FileRegistry
from swarm_bridge.demo import SmokeFleet, robot_config

pytestmark = pytest.mark.integration

COUNT = 40


def _run(ros_context: Any, robot_id: str, uplink: str, port: int, fmt: str = "json",
         registry: str | None = None) -> SmokeFleet:
    config = robot_config(robot_id, uplink=uplink, host="127.0.0.1", port=port, fmt=fmt, registry=registry)
    fleet = SmokeFleet(ros_context, [config])
    fleet.open()
    if not fleet.run(count=COUNT, rate_hz=200, timeout_s=30):
        fleet.close()  # its bridge and publishers gone: the next case's taps see none of them
        found = [(k, r.published, [e.seq for e in r.arrived][:3]) for k, r in fleet.results.items()]
        pytest.fail(f"not every record arrived once: {found}")
    return fleet


def _check_content(fleet: SmokeFleet, robot_id: str) -> None:
    state = fleet.results[(robot_id, "robot_state")]
    assert one_run(e.seq for e in state.arrived) == list(range(COUNT))
    for env in state.arrived:
        i = env.seq & 0xFFFFFFFF
        assert env.robot_id == robot_id and env.stream == "robot_state"
        assert env.ros_type == "swarm_bridge_msgs/msg/RobotState"
        assert env.stamp_ns == (1_700_000_000 + i) * 1_000_000_000  # the message's own stamp
        assert env.body["robot_id"] == robot_id
        assert env.body["capabilities"] == ["navigate", "inspect"]
        assert env.body["pose"]["header"]["frame_id"] == "map"
        assert env.body["pose"]["pose"]["position"]["x"] == float(i)
        assert math.isclose(env.body["pose"]["pose"]["position"]["y"], math.sin(i / 10.0))
        assert math.isclose(env.body["battery_percent"], 100.0 - i * 0.1, rel_tol=1e-6)  # float32
    status = fleet.results[(robot_id, "task_status")]
    assert [e.body["task_id"] for e in status.arrived] == [f"task-{i:05d}" for i in range(COUNT)]


@pytest.mark.parametrize("fmt", ["json", "avro", "protobuf"])
def test_ros_to_mqtt(ros_context: Any, mosquitto: Mosquitto, fmt: str) -> None:
    with _run(ros_context, "amr_001", "mqtt", mosquitto.port, fmt) as fleet:
        assert fleet.results[("amr_001", "robot_state")].destination == "swarm/demo/amr_001/state/robot_state"
        _check_content(fleet, "amr_001")
        (bridge,) = fleet.bridges
        # records, not publishes: while one is unacknowledged (a slow machine) the next leave packed in one
        assert bridge.outbox.stats.acked == 2 * COUNT and bridge.uplink.stats.failed == 0


@pytest.mark.parametrize("fmt", ["json", "avro", "protobuf"])
def test_ros_to_kafka(ros_context: Any, kafka: Kafka, fmt: str, tmp_path: Path) -> None:
    with _run(ros_context, "drone_002", "kafka", kafka.port, fmt, registry=str(tmp_path / "registry")) as fleet:
        assert fleet.results[("drone_002", "task_status")].destination == "fleet.event.task_status"
        _check_content(fleet, "drone_002")
        records = [record for tap in fleet._taps for record in tap.snapshot()]
        assert {record.key for record in records} == {b"drone_002"}  # record key = robot id
        if fmt != "json":  # Confluent wire format: magic byte 0, then the registered schema id
            ids = {int.from_bytes(r.payload[1:5], "big") for r in records}
            assert {r.payload[0] for r in records} == {0}
            assert {r.payload[5] == 0 for r in records} == {fmt == "protobuf"}  # Protobuf's message index 00
            registry = FileRegistry(tmp_path / "registry")
            assert ids == {registry.latest(f"{t}-value").id for t in ("fleet.state.robot_state",
                                                                      "fleet.event.task_status")}
