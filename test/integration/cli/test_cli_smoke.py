"""`swarm-bridge smoke`: real brokers, real rclpy, a report that adds up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from swarm_bridge.brokers import Kafka, Mosquitto, free_port

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "swarm_bridge.cli"]


def _smoke(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "smoke", *args], env=env, capture_output=True, text=True, timeout=300)


def test_smoke_with_its_own_brokers(tmp_path: Path, ros_env: dict[str, str]) -> None:
    report_path = tmp_path / "report.json"
    result = _smoke(["--count", "25", "--run-dir", str(tmp_path / "run"), "--report-json", str(report_path),
                    "--domain-id", ros_env["ROS_DOMAIN_ID"]], ros_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every record arrived, in order, once" in result.stdout
    report = json.loads(report_path.read_text())
    assert report["all_arrived"] is True
    by_stream = {(s["robot_id"], s["stream"]): s for s in report["streams"]}
    assert set(by_stream) == {("amr_001", "robot_state"), ("amr_001", "task_status"),
                              ("drone_002", "robot_state"), ("drone_002", "task_status")}
    for stream in report["streams"]:
        assert (stream["published"], stream["bridged"], stream["arrived"]) == (25, 25, 25)
        assert stream["duplicates"] == 0 and stream["missing"] == 0
    assert by_stream[("amr_001", "robot_state")]["uplink"] == "mqtt"
    assert by_stream[("drone_002", "robot_state")]["uplink"] == "kafka"
    assert by_stream[("drone_002", "task_status")]["last_record"]["task_id"] == "task-00024"
    # the private brokers were stopped: their pidfiles are gone
    assert not list((tmp_path / "run").rglob("*.pid"))


def test_smoke_against_given_brokers_twice(mosquitto: Mosquitto, kafka: Kafka, ros_env: dict[str, str]) -> None:
    for _ in range(2):  # the second run must not count the first run's records
        result = _smoke(["--count", "10", "--mqtt", mosquitto.url, "--kafka", kafka.bootstrap,
                        "--domain-id", ros_env["ROS_DOMAIN_ID"]], ros_env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "starting a private" not in result.stdout


@pytest.mark.parametrize(
    ("args", "status", "expected"),
    [(["--mqtt", "http://x:1"], 2, "--mqtt 'http://x:1': expected mqtt://host:port"),
     (["--kafka", "nohostport"], 2, "--kafka 'nohostport': expected host:port"),
     (["--count", "0"], 2, "--count must be >= 1"),
     (["--mqtt", "mqtt://127.0.0.1:{port}", "--kafka", "127.0.0.1:1"], 3, "mqtt://127.0.0.1:{port}: cannot connect")],
)
def test_smoke_bad_input_is_named(args: list[str], status: int, expected: str, ros_env: dict[str, str]) -> None:
    port = free_port()
    result = _smoke([a.format(port=port) for a in args], ros_env)
    assert result.returncode == status, result.stdout + result.stderr
    assert expected.format(port=port) in result.stderr
