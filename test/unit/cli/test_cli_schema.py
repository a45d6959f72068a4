"""`swarm-bridge schema`: show any installed ROS type's schemas, register and check against a registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from swarm_bridge.cli import main

REPO = Path(__file__).resolve().parents[3]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["schema", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_show_avro_of_an_installed_type_is_a_valid_schema(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "show", "sensor_msgs/msg/BatteryState")
    assert status == 0
    schema: Any = fastavro.parse_schema(json.loads(out))
    fields = {f["name"] for f in json.loads(out)["fields"]}
    assert {"robot_id", "stream", "seq", "stamp_ns", "ros_type", "schema_version", "body"} <= fields
    assert schema["name"] == "swarm_bridge.record.sensor_msgs.msg.BatteryState"


def test_show_proto_and_json_layout(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "show", "sensor_msgs/msg/BatteryState", "--format", "proto")
    assert status == 0 and "message BatteryState {" in out and "package ros.sensor_msgs.msg;" in out
    status, out, _ = _run(capsys, "show", "swarm_bridge_msgs/msg/TaskCommand", "--format", "json")
    layout = json.loads(out)
    assert status == 0 and layout["ros_type"] == "swarm_bridge_msgs/msg/TaskCommand"
    names = [f["name"] for f in layout["types"]["swarm_bridge_msgs/msg/TaskCommand"]]
    assert names[:3] == ["task_id", "command_id", "robot_id"]
    assert "geometry_msgs/msg/PoseStamped" in layout["types"]


def test_unknown_type_is_named_with_the_near_miss(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _run(capsys, "show", "sensor_msgs/msg/BateryState")
    assert status == 2
    assert "did you mean 'sensor_msgs/msg/BatteryState'?" in err


def test_list_installed_types(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "list", "--prefix", "swarm_bridge_msgs/")
    assert status == 0
    assert out.split() == ["swarm_bridge_msgs/msg/RobotState", "swarm_bridge_msgs/msg/TaskCommand",
                           "swarm_bridge_msgs/msg/TaskStatus"]


def test_register_and_check_against_the_file_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = str(tmp_path / "registry")
    status, out, _ = _run(capsys, "register", "nav_msgs/msg/Odometry", "--topic", "fleet.telemetry.odometry",
                          "--registry", registry)
    assert (status, out.strip()) == (0, "fleet.telemetry.odometry-value: version 1, id 1")
    status, out, _ = _run(capsys, "register", "nav_msgs/msg/Odometry", "--topic", "fleet.telemetry.odometry",
                          "--registry", registry)
    assert out.strip() == "fleet.telemetry.odometry-value: version 1, id 1"  # identical: same id, same version

    v1, v2 = (str(REPO / f"schemas/task_status.v{n}.avsc") for n in (1, 2))
    assert _run(capsys, "register", v1, "--subject", "task_status", "--registry", registry)[0] == 0
    status, out, _ = _run(capsys, "check", v2, "--subject", "task_status", "--registry", registry)
    assert (status, out.strip()) == (0, "task_status: compatible (BACKWARD)")

    broken = json.loads(Path(v1).read_text())
    broken["fields"] = [f for f in broken["fields"] if f["name"] != "task_id"] + [
        {"name": "mandatory_new", "type": "string"}]  # a new field without a default breaks BACKWARD
    path = tmp_path / "task_status.broken.avsc"
    path.write_text(json.dumps(broken))
    status, _, err = _run(capsys, "check", str(path), "--subject", "task_status", "--registry", registry)
    assert status == 1
    assert "incompatible under BACKWARD" in err and "mandatory_new" in err
    status, out, _ = _run(capsys, "list", "--subjects", "--registry", registry)
    assert out.split() == ["fleet.telemetry.odometry-value", "task_status"]


def test_register_names_the_subject_by_the_fleets_strategy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry, odometry = str(tmp_path / "registry"), "swarm_bridge.record.nav_msgs.msg.Odometry"
    for strategy, subject in (("topic_record_name", f"fleet.telemetry.odometry-{odometry}"),
                              ("record_name", odometry), ("topic_name", "fleet.telemetry.odometry-value")):
        status, out, _ = _run(capsys, "register", "nav_msgs/msg/Odometry", "--topic", "fleet.telemetry.odometry",
                              "--subject-name-strategy", strategy, "--registry", registry)
        assert (status, out.split(":")[0]) == (0, subject)
    status, _, err = _run(capsys, "check", "nav_msgs/msg/Odometry", "--subject-name-strategy", "topic_record_name",
                          "--registry", registry)
    assert status == 2 and "--subject-name-strategy topic_record_name needs --topic" in err


def test_export_writes_a_schema_per_route(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "export", "--config", str(REPO / "config/robot_bridge.yaml"),
                          "--out", str(tmp_path), "--format", "avro")
    assert status == 0 and out.count(" -> ") == 4 and "(type found in the ROS graph at run time): skipped" in out
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["nav_msgs.Odometry.avsc", "swarm_bridge_msgs.RobotState.avsc",
                       "swarm_bridge_msgs.TaskCommand.avsc", "swarm_bridge_msgs.TaskStatus.avsc"]
    for path in tmp_path.iterdir():
        fastavro.parse_schema(json.loads(path.read_text()))
