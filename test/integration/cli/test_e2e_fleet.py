"""End to end on the shared bags: replay as robots -> robot bridges -> Mosquitto -> gateway -> Kafka -> coordinator
-> task commands back down to each robot's ROS topic. Every stream is counted against its bag and its content
compared; every task must end done."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from swarm_bridge.brokers import Kafka, free_port

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "swarm_bridge.cli"]


def test_shared_bags_through_the_whole_fleet(tmp_path: Path, shared_bags: Path, ros_env: dict[str, str]) -> None:
    # A Kafka of its own: the coordinator's sharded topics must not meet topics other tests created.
    with Kafka(run_dir=tmp_path / "kafka", port=free_port()) as kafka:
        report_path = tmp_path / "report.json"
        result = subprocess.run(
            [*CLI, "demo", "--no-progress", "--bags", str(shared_bags), "--kafka", kafka.bootstrap, "--rate", "5",
             "--run-dir", str(tmp_path / "run"), "--report-json", str(report_path),
             "--plot", str(tmp_path / "e2e.png")],
            env=ros_env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    bags = [p for p in shared_bags.iterdir() if p.is_dir()]
    assert len(report["robots"]) == len(bags)
    assert report["delivered_at"].startswith("Kafka")
    for row in report["streams"]:  # per robot and bag topic: counted at Kafka
        assert row["delivered"] == row["published"] == row["in_bag"] > 0, row
        assert (row["duplicates"], row["undecodable"], row["content_mismatch"]) == (0, 0, 0), row
    totals = report["totals"]
    assert totals["delivered"] == totals["in_bags"] > 50_000
    assert 0 < totals["latency_p50_ms"] <= totals["latency_p99_ms"] <= totals["latency_max_ms"]
    # task commands went down through Kafka, the gateway, MQTT and the bridges to the executors, and back up
    assert report["tasks"]["submitted"] == report["tasks"]["done"] == 2 * len(bags)
    print(f"\ne2e: {totals['delivered']} records, latency p50 {totals['latency_p50_ms']} ms, "
          f"p99 {totals['latency_p99_ms']} ms, max {totals['latency_max_ms']} ms; tasks {report['tasks']}")
