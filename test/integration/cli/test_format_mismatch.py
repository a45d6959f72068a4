"""A reader configured for one format that gets records in another names it once, at the first record (which
side sends what, which key to change), and then only counts them: the Kafka coordinator (robot_format avro, JSON
robots), and a robot (task_command route json, Avro commands) next to the single-site coordinator."""

from __future__ import annotations

import logging
import re
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Producer
from coordinator_fleet import coordinator_config
from shipped_fleet import CLI, CONFIG, NODES, Processes, fleet_status, robot_id, wait_until

from swarm_bridge.brokers import Kafka, Mosquitto, free_port
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.coordinator.kafka.runner import CoordinatorInstance
from swarm_bridge.coordinator.kafka.topics import ensure_topics
from swarm_bridge.routing.sharding import shard_of
from swarm_bridge.sim.records import KafkaRobotRecords, robot_state_body

pytestmark = pytest.mark.integration

DEADLINE_S = 240.0


def test_kafka_coordinator_names_json_robots_once(kafka: Kafka, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    config = coordinator_config(kafka, tmp_path)
    assert config.robot_format == "avro"
    ensure_topics(config)  # the sharded topics with their partitions, before the robots write
    json_robot = KafkaRobotRecords(fmt="json", registry=str(tmp_path / "registry"), state_topic=config.topics.state,
                                   status_topic=config.topics.status, commands_topic=config.topics.commands)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    now = time.time_ns()
    for seq in range(6):
        body = robot_state_body("amr_1", "amr", ["navigate"], x=1.0, y=2.0, battery=90.0, now_ns=now)
        producer.produce(config.topics.state, key=b"amr_1", value=json_robot.state_record(body, seq=seq, now_ns=now))
    for seq in range(3):
        producer.produce(config.topics.status, key=b"amr_1", partition=shard_of("amr_1", config.shards),
                         value=json_robot.status_record(robot_id="amr_1", task_id="t1", state=TaskState.DONE,
                                                        seq=seq, now_ns=now))
    assert producer.flush(30) == 0
    caplog.set_level(logging.INFO, logger="swarm_bridge")
    instance = CoordinatorInstance(config)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while instance.summary()["dropped"].get("format mismatch", 0) < 9:
            assert time.monotonic() < deadline, instance.summary()
            instance.step(0.1)
        for _ in range(20):  # a while longer: nothing more is logged
            instance.step(0.05)
        summary = instance.summary()
    finally:
        instance.close()
    assert summary["dropped"] == {"format mismatch": 9}
    named = [r.getMessage() for r in caplog.records if "format mismatch" in r.getMessage()]
    assert len(named) == 2, named  # one per topic, at its first record
    state = next(m for m in named if config.topics.state in m)
    assert f"coordinator reading kafka:{config.topics.state}: format mismatch at the first such record " in state
    assert "it is json (starts '{' (0x7b)), but robot_format (coordinator config) is avro" in state
    assert "Fix: set robot_format (coordinator config) to json, or make that side send avro" in state
    assert not [r for r in caplog.records if "wrong magic byte" in r.getMessage()]


def _refused(metrics_port: int, reason: str) -> int:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    except OSError:
        return 0
    found = re.findall(r'swarm_bridge_route_dropped_total\{[^}]*reason="' + reason + r'"[^}]*\} (\S+)', text)
    return int(sum(float(v) for v in found))


def test_a_json_robot_next_to_an_avro_site_coordinator_is_named_once_on_both_sides(
        tmp_path: Path, ros_env: dict[str, str]) -> None:
    env = {**ros_env, "XDG_STATE_HOME": str(tmp_path / "state"), "PYTHONUNBUFFERED": "1"}
    with Mosquitto(run_dir=tmp_path / "mosquitto", port=free_port()) as broker:
        coordinator = ["--config", str(CONFIG / "coordinator.yaml"), "--set", "mode=mqtt",
                       "--set", f"mqtt.port={broker.port}"]
        metrics_port = free_port()
        # The shipped robot config with its fleet streams switched to json: routes 0, 1 and 4 are robot_state,
        # task_status and task_command.
        robot = ["--set", f"uplink.port={broker.port}", "--set", f"metrics_port={metrics_port}",
                 *[arg for i in (0, 1, 4) for arg in ("--set", f"routes.{i}.format=json")]]
        procs = Processes(tmp_path / "logs", env)
        try:
            procs.start("coordinator", [*CLI, "coordinator", *coordinator])
            wait_until("the site coordinator", lambda: "site coordinator" in procs.log("coordinator"), procs)
            procs.start("robot_bridge", [*NODES, "robot_bridge", "--config", str(CONFIG / "robot_bridge.yaml"),
                                         *robot])
            procs.start("task_executor", [*NODES, "task_executor", "--robot-id", robot_id()])
            wait_until("the robot's state", lambda: any(
                r["robot_id"] == robot_id() and r["kind"] for r in fleet_status(coordinator, env).get("robots", [])),
                procs, DEADLINE_S)
            for task in ("t-1", "t-2"):
                procs.check_alive()
                assert _submit(coordinator, env, task)
            wait_until("both commands refused", lambda: _refused(metrics_port, "format mismatch") == 2, procs,
                       DEADLINE_S)
            logs = {name: procs.log(name) for name in procs.procs}
        finally:
            procs.stop()
    robot_named = [line for line in logs["robot_bridge"].splitlines() if "format mismatch" in line]
    assert len(robot_named) == 1, robot_named
    assert ("route mqtt:swarm/warehouse_a/amr_007/command/task_command -> ros:/amr_007/task_command: format "
            "mismatch at the first such record") in robot_named[0]
    assert "it is avro (starts C3 01, then an 8-byte schema fingerprint), but format: of this route" in robot_named[0]
    assert "Fix: set format: of this route (stream task_command) in the robot bridge config to avro" in robot_named[0]
    site_named = [line for line in logs["coordinator"].splitlines() if "format mismatch" in line]
    assert len(site_named) == 1, site_named  # robot_state every second: named once
    assert "it is json (starts '{' (0x7b)), but robot_format (coordinator config) is avro" in site_named[0]
    assert "commands go out as avro" in site_named[0]


def _submit(coordinator: list[str], env: dict[str, str], task_id: str) -> bool:
    import subprocess

    result = subprocess.run([*CLI, "task", "submit", *coordinator, "--task-id", task_id, "--kind", "navigate"],
                            env=env, capture_output=True, text=True, timeout=120)
    return result.returncode == 0
