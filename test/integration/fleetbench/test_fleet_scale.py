"""The fleet-scale benchmark's one tiny step (5 robots, a few seconds) through a real Mosquitto, gateway, Kafka and
coordinator (its pure machinery: unit/fleetbench/test_fleet_scale.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from swarm_bridge.brokers import Kafka, Mosquitto
from swarm_bridge.cli import main as cli_main
from swarm_bridge.fleetbench.run import TASK_HOPS


@pytest.mark.integration
def test_tiny_fleet_through_the_hub_is_counted_exactly(mosquitto: Mosquitto, kafka: Kafka, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    status = cli_main(["bench", "fleet", "--steps", "5", "--duration", "4", "--workers", "1", "--no-baselines",
                       "--warmup", "2", "--warmup-robots", "3", "--shards", "3", "--up-partitions", "2",
                       "--round-window-ms", "20", "--round-pacing", "commit",
                       "--mqtt-port", str(mosquitto.port), "--kafka-port", str(kafka.port), "--out", str(out)])
    assert status == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    figures = json.loads(last)
    [step] = figures["steps"]
    warmup = figures["warmup"]
    assert (warmup["ran"], warmup["seconds"], warmup["robots"]) == (True, 2.0, 3)
    assert warmup["rounds"] == 1  # Kafka is not the bench's own here: its JIT is not seen, one round
    assert warmup["figures"]["sent"] == warmup["figures"]["delivered"] > 0
    assert step["robots"] == 5
    assert step["sent"] == step["delivered"] > 0  # the step counts its own run only, not the warm-up's records
    assert (step["lost"], step["duplicates"], step["unexpected"]) == (0, 0, 0)
    assert step["gateway_dead_letters"] == 0
    assert step["tasks_submitted"] > 0
    assert step["tasks_done"] == step["tasks_submitted"]  # every task went down and came back done
    assert step["coordinator_transactions_per_s"] > 0  # the rounds that assigned them, from its metrics
    # every hop of the round trip was timed (the coordinator's and gateway's histograms, the robots' readings)
    assert set(step["task_hops"]) == {name for name, *_ in TASK_HOPS} | {"command stamped -> robot received"}
    assert all(hop["count"] > 0 for hop in step["task_hops"].values()), step["task_hops"]
    assert set(step["cpu_percent"]) >= {"gateway", "coordinator", "simulator"}
    assert step["us_per_record"]["gateway"] > 0 and step["hub_us_per_record"] >= step["us_per_record"]["gateway"]
    assert step["hub_records_per_core"] > 0
    assert step["p99_ms_by_second"] and max(step["p99_ms_by_second"]) >= step["p50_ms"]  # each second's p99
    # the gateway's own summary at stop, and its read-backs of the up topics for robots that began a new run
    assert any(" stopped: " in line for line in figures["gateway_stop_log"]), figures["gateway_stop_log"]
    for name in ("report.md", "figures.json", "throughput.png", "latency.png", "cpu.png"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "figures.json").read_text())["steps"][0]["sent"] == step["sent"]
    assert "Warm-up before the steps (not a step, not judged): 3 robots for 2 s" in (out / "report.md").read_text()
    # telemetry topics with --up-partitions, robot_state one partition per shard (as the coordinator makes it)
    assert (figures["shards"], figures["up_partitions"], figures["round_window_ms"]) == (3, 2, 20.0)
    assert figures["round_pacing"] == "commit"  # the coordinator paced by commits through the hub, every task done
    meta = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=10).topics
    partitions = {name.split(".", 1)[1]: len(topic.partitions) for name, topic in meta.items()
                  if name.startswith(figures["namespace"] + ".")}
    assert partitions["telemetry.odometry"] == partitions["telemetry.imu"] == partitions["state.battery"] == 2
    assert partitions["state.robot_state"] == partitions["tasks.submit"] == 3
