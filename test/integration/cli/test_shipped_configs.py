"""The files in config/ run a task together, unchanged: a real robot bridge, edge gateway and coordinator started
from exactly config/robot_bridge.yaml, edge_gateway.yaml and coordinator.yaml (only broker ports overridden, with
the documented `--set`), the reference task executor as the robot, real Mosquitto and Kafka; the task submitted
with `swarm-bridge task submit` must end `done`. Both coordinator modes: Kafka (through the gateway) and the
single-site mode (`mode: mqtt`, straight on the robot's broker)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from swarm_bridge.brokers import Kafka, Mosquitto, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"
CLI = [sys.executable, "-m", "swarm_bridge.cli"]
NODES = [sys.executable, "-m", "swarm_bridge.nodes"]
DEADLINE_S = 300.0  # generous: a shared, busy machine; the loop ends as soon as the task is done


class Processes:
    """The fleet's processes, each logging to a file of its own; stopped with SIGINT (then killed) at the end."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs, self.env = logs, env
        self.procs: dict[str, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str]) -> None:
        out = (self.logs / f"{name}.log").open("wb")
        self.procs[name] = (subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT), out)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def check_alive(self) -> None:
        for name, (proc, _out) in self.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}")

    def tails(self) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name)[-2500:]}" for name in self.procs)

    def stop(self) -> None:
        for proc, _out in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc, out in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out.close()


def wait_until(what: str, ready: Callable[[], bool], procs: Processes, deadline_s: float = DEADLINE_S) -> None:
    """Poll `ready` until true; fail (with every process's log) when a process died or the deadline passed."""
    deadline = time.monotonic() + deadline_s
    while not ready():
        procs.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {deadline_s:.0f} s\n{procs.tails()}")
        time.sleep(0.5)


def fleet_status(coordinator_args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """`swarm-bridge fleet status --json` with the coordinator's config."""
    result = subprocess.run([*CLI, "fleet", "status", *coordinator_args, "--json"], env=env, capture_output=True,
                            text=True, timeout=120)
    if result.returncode != 0:
        return {}
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


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


def robot_id() -> str:
    doc = yaml.safe_load((CONFIG / "robot_bridge.yaml").read_text())
    return str(doc["robot_id"])


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
