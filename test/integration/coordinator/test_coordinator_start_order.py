"""Any start order of gateway and coordinator works: a gateway started first makes the command topic with one
partition, and the coordinator started after grows it to one partition per shard instead of refusing to run;
tasks then go down through the gateway to MQTT robots and end done."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from coordinator_fleet import CAPABILITIES, TaskLog, coordinator_config, wait_for
from gateway_harness import GatewayThread, write_config

from swarm_bridge.brokers import Kafka, Mosquitto
from swarm_bridge.config import CoordinatorConfig
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.coordinator.kafka.service import run_coordinator
from swarm_bridge.coordinator.kafka.snapshot import submit_tasks
from swarm_bridge.coordinator.site.wire import SiteTopics
from swarm_bridge.routing import shard_of
from swarm_bridge.sim.records import SiteRobotRecords
from swarm_bridge.sim.site_fleet import SiteFleet
from swarm_bridge.sim.task_robots import TaskRobot

pytestmark = pytest.mark.integration

SHARDS = 6


class Coordinator:
    """`run_coordinator` in a thread, as `swarm-bridge coordinator` runs it; its exception kept."""

    def __init__(self, config: CoordinatorConfig) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(config,), daemon=True)
        self.thread.start()

    def _run(self, config: CoordinatorConfig) -> None:
        try:
            run_coordinator(config, stop=self.stop, handle_signals=False)
        except BaseException as exc:
            self.error = exc

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


class Hub:
    """One fleet's gateway, coordinator and MQTT robots on the test brokers, with Kafka topics of its own."""

    def __init__(self, kafka: Kafka, mosquitto: Mosquitto, tmp_path: Path) -> None:
        tag = uuid.uuid4().hex[:6]
        self.kafka, self.mosquitto, self.tmp_path = kafka, mosquitto, tmp_path
        self.fleet = f"order{tag}"
        ns = f"t{tag}"
        self.config = coordinator_config(kafka, tmp_path, fleet=self.fleet, shards=SHARDS, robot_format="json",
                                         topics={"submit": f"{ns}.tasks.submit", "state": f"{ns}.state.robot_state",
                                                 "status": f"{ns}.event.task_status",
                                                 "presence": f"{ns}.presence.status",
                                                 "commands": f"{ns}.command.task_command",
                                                 "events": f"{ns}.coordinator.tasks"},
                                         tasks={"accept_timeout_s": 120, "run_timeout_s": 120,
                                                "robot_offline_after_s": 60})
        self.gateway_file = write_config(
            tmp_path / "gateway.yaml", gateway_id=f"gw{tag}", fleet=self.fleet, mqtt_port=mosquitto.port,
            bootstrap=kafka.bootstrap, registry=tmp_path / "registry",
            kafka={"command_group": f"gw{tag}-commands", "dlq_topic": f"{ns}.dlq"},
            up=[{"mqtt": "{prefix}/{fleet}/{robot_id}/{channel}/{stream}", "where": {"channel": ["event", "state"]},
                 "kafka_topic": ns + ".{channel}.{stream}"},
                {"mqtt": "{prefix}/{fleet}/{robot_id}/presence/status", "kafka_topic": f"{ns}.presence.status",
                 "payload": "raw"}],
            down=[{"kafka_topic": f"{ns}.command.task_command",
                   "mqtt": "{prefix}/{fleet}/{robot_id}/command/task_command"}])
        self.closers: list[Callable[[], None]] = []

    def start_gateway(self) -> None:
        gateway = GatewayThread(self.gateway_file)  # the gateway's own start path: it creates the command topic
        self.closers.append(gateway.close)

    def start_coordinator(self) -> Coordinator:
        coordinator = Coordinator(self.config)
        self.closers.append(coordinator.close)
        topics = (self.config.topics.events, self.config.topics.commands)
        wait_for(lambda: coordinator.error is not None or all(self.partitions(t) == SHARDS for t in topics), 60,
                 "the coordinator's topics")
        return coordinator

    def partitions(self, topic: str) -> int:
        meta = AdminClient({"bootstrap.servers": self.kafka.bootstrap}).list_topics(timeout=30).topics
        return len(meta[topic].partitions) if topic in meta and meta[topic].error is None else 0

    def run_tasks(self, count: int) -> dict[str, Any]:
        """MQTT robots behind the gateway; `count` tasks submitted; every task's last event once all ended."""
        robots = [TaskRobot(f"amr_{i:03d}", "amr", CAPABILITIES["amr"], x=float(i)) for i in range(6)]
        sim = SiteFleet(host=self.mosquitto.host, port=self.mosquitto.port, robots=robots,
                         records=SiteRobotRecords(SiteTopics("swarm", self.fleet), fmt="json")).start()
        self.closers.append(sim.stop)
        log = TaskLog(self.kafka, self.config)
        self.closers.append(log.close)
        docs = [{"task_id": f"job-{i}", "kind": "navigate", "target": {"x": float(i), "y": 0.0}} for i in range(count)]
        assert submit_tasks(self.config, docs) == 0
        wait_for(lambda: len(log.terminal()) >= count, 180, f"{count} tasks to end")
        return {"last": log.last(), "received": sim.snapshot(), "bad_commands": sim.bad_commands}

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


@pytest.fixture()
def hub(kafka: Kafka, mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Hub]:
    made = Hub(kafka, mosquitto, tmp_path)
    yield made
    made.close()


@pytest.mark.parametrize("gateway_first", [True, False], ids=["gateway-first", "coordinator-first"])
def test_any_start_order_runs_tasks_to_done(hub: Hub, gateway_first: bool) -> None:
    commands = hub.config.topics.commands
    if gateway_first:
        hub.start_gateway()
        assert hub.partitions(commands) == 1  # what the gateway makes without knowing the shard count
    coordinator = hub.start_coordinator()
    assert coordinator.error is None, f"the coordinator died: {coordinator.error}"
    assert hub.partitions(commands) == SHARDS
    if not gateway_first:
        hub.start_gateway()
        assert hub.partitions(commands) == SHARDS  # the gateway takes the topic as it is
    result = hub.run_tasks(12)
    assert {e.task.state for e in result["last"].values()} == {TaskState.DONE}
    assert len(result["last"]) == 12 and result["bad_commands"] == 0
    # Commands came down the partitions the coordinator grew (a robot's commands go to its shard's partition;
    # partition 0 is the only one a gateway started first made).
    shards = {shard_of(r.robot_id, SHARDS) for r in result["received"]}
    assert len(shards - {0}) >= 2, shards
    assert coordinator.error is None
