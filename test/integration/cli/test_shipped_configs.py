"""The files in config/ run a task together, unchanged: a real robot bridge, edge gateway and coordinator started
from exactly config/robot_bridge.yaml, edge_gateway.yaml and coordinator.yaml (only broker ports overridden, with
the documented `--set`), the reference task executor as the robot, real Mosquitto and Kafka; the task submitted
with `swarm-bridge task submit` must end `done`. Both coordinator modes: Kafka (through the gateway) and the
single-site mode (`mode: mqtt`, straight on the robot's broker)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from shipped_fleet import CLI, CONFIG, NODES, Processes, fleet_status, robot_id, wait_until

from swarm_bridge.brokers import Kafka, Mosquitto, free_port

pytestmark = pytest.mark.integration


@pytest.fixture()
def fleet_env(tmp_path: Path, ros_env: dict[str, str]) -> dict[str, str]:
    """The processes' environment: this session's ROS domain, state (spool, registry) under tmp_path."""
    return {**ros_env, "XDG_STATE_HOME": str(tmp_path / "state"), "SWARM_BRIDGE_REGISTRY": str(tmp_path / "registry"),
            "PYTHONUNBUFFERED": "1"}


@pytest.fixture()
def own_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto of its own: the shipped configs' topics (swarm/warehouse_a/amr_007/...) meet no other test's."""
    with Mosquitto(run_dir=tmp_path / "mosquitto", port=free_port()) as broker:
        yield broker


def start_robot(procs: Processes, mqtt_port: int) -> None:
    """The robot: the bridge from config/robot_bridge.yaml and the reference task executor as its ROS side."""
    procs.start("robot_bridge", [*NODES, "robot_bridge", "--config", str(CONFIG / "robot_bridge.yaml"),
                                 "--set", f"uplink.port={mqtt_port}"])
    procs.start("task_executor", [*NODES, "task_executor", "--robot-id", robot_id(), "--work-s", "0.5"])


def submit_and_wait_done(procs: Processes, coordinator_args: list[str], env: dict[str, str]) -> None:
    """Submit one navigate task with `swarm-bridge task submit`; wait until the coordinator reports it done."""
    def done() -> bool:
        doc = fleet_status(coordinator_args, env)
        tasks = doc.get("summary", doc).get("tasks", {})
        return int(tasks.get("done", 0)) == 1

    def robot_known() -> bool:
        doc = fleet_status(coordinator_args, env)
        return any(r["robot_id"] == robot_id() and r["kind"] for r in doc.get("robots", []))  # its RobotState

    wait_until("the robot's RobotState to reach the coordinator", robot_known, procs)
    submit = subprocess.run([*CLI, "task", "submit", *coordinator_args, "--task-id", "deliver-42", "--kind",
                             "navigate", "--x", "3", "--y", "1"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert submit.returncode == 0, submit.stdout + submit.stderr
    wait_until("task deliver-42 to be done", done, procs)


def test_shipped_configs_run_a_task_through_kafka(tmp_path: Path, own_mosquitto: Mosquitto,
                                                   fleet_env: dict[str, str]) -> None:
    # A Kafka of its own: the coordinator's sharded topics (shards: 12) must not meet other tests' topics.
    with Kafka(run_dir=tmp_path / "kafka", port=free_port()) as kafka:
        coordinator = ["--config", str(CONFIG / "coordinator.yaml"), "--set", f"kafka.port={kafka.port}"]
        procs = Processes(tmp_path / "logs", fleet_env)
        try:
            # The coordinator first: it creates the sharded topics with the shard count (issue 14, #12).
            procs.start("coordinator", [*CLI, "coordinator", *coordinator])
            wait_until("the coordinator to own its shards", lambda: "owns shards" in procs.log("coordinator"), procs)
            procs.start("gateway", [*CLI, "gateway", "--config", str(CONFIG / "edge_gateway.yaml"),
                                    "--set", f"mqtt.port={own_mosquitto.port}",
                                    "--set", f"kafka.bootstrap={kafka.bootstrap}"])
            start_robot(procs, own_mosquitto.port)
            submit_and_wait_done(procs, coordinator, fleet_env)
            logs = {name: procs.log(name) for name in procs.procs}
        finally:
            procs.stop()
    assert "dropped (" not in logs["coordinator"], logs["coordinator"][-3000:]
    assert "dead letter" not in logs["gateway"], logs["gateway"][-3000:]
    assert "refused" not in logs["robot_bridge"], logs["robot_bridge"][-3000:]


def test_shipped_configs_run_a_task_on_a_single_site(tmp_path: Path, own_mosquitto: Mosquitto,
                                                      fleet_env: dict[str, str]) -> None:
    coordinator = ["--config", str(CONFIG / "coordinator.yaml"), "--set", "mode=mqtt",
                   "--set", f"mqtt.port={own_mosquitto.port}"]
    procs = Processes(tmp_path / "logs", fleet_env)
    try:
        procs.start("coordinator", [*CLI, "coordinator", *coordinator])
        wait_until("the site coordinator to start", lambda: "site coordinator" in procs.log("coordinator"), procs)
        start_robot(procs, own_mosquitto.port)
        submit_and_wait_done(procs, coordinator, fleet_env)
        logs = {name: procs.log(name) for name in procs.procs}
    finally:
        procs.stop()
    assert "dropped (" not in logs["coordinator"], logs["coordinator"][-3000:]
    assert "refused" not in logs["robot_bridge"], logs["robot_bridge"][-3000:]


def test_set_overrides_a_key_and_is_checked_like_the_file(tmp_path: Path) -> None:
    from swarm_bridge.config import ConfigError, GatewayConfig, RobotBridgeConfig, load_config

    config = load_config(CONFIG / "robot_bridge.yaml", RobotBridgeConfig,
                         ["uplink.port=1884", "routes.0.format=json", "spool.path=/tmp/x.db"])
    assert (config.uplink.port, config.routes[0].format, str(config.spool.path)) == (1884, "json", "/tmp/x.db")
    with pytest.raises(ConfigError) as bad:
        load_config(CONFIG / "edge_gateway.yaml", GatewayConfig, ["mqtt.prot=1884", "up.9.kafka_topic=x", "nokey"])
    text = str(bad.value)
    assert "--set up.9.kafka_topic=x: up is a list of 2 items" in text
    assert "--set nokey: expected KEY.PATH=VALUE" in text
    with pytest.raises(ConfigError, match=r"mqtt: unknown key 'prot' \(did you mean 'port'\?\)"):
        load_config(CONFIG / "edge_gateway.yaml", GatewayConfig, ["mqtt.prot=1884"])
    assert os.path.exists(CONFIG / "edge_gateway.yaml")  # the file itself is never written
