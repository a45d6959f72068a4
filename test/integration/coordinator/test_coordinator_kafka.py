"""The coordinator on a real Kafka with simulated robots: every task ends once, invalid ones are rejected
with a reason, a robot going offline gets its tasks reassigned."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from coordinator_fleet import CAPABILITIES, TaskLog, coordinator_config, coordinator_doc, wait_for, write_config

from swarm_bridge.brokers import Kafka
from swarm_bridge.cli import main as cli_main
from swarm_bridge.config import CoordinatorConfig
from swarm_bridge.coordinator.core.dispatch import ASSIGN
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.coordinator.kafka.service import run_coordinator
from swarm_bridge.coordinator.kafka.snapshot import submit_tasks
from swarm_bridge.sim.kafka_fleet import KafkaFleet
from swarm_bridge.sim.task_robots import TaskRobot

pytestmark = pytest.mark.integration


def fleet_of(count: int) -> list[TaskRobot]:
    kinds = ["amr", "drone", "arm"]
    return [TaskRobot(f"{kinds[i % 3]}_{i:03d}", kinds[i % 3], CAPABILITIES[kinds[i % 3]], x=float(i % 20),
                     y=float(i // 20)) for i in range(count)]


class Running:
    """A coordinator instance in a thread of this process."""

    def __init__(self, config: CoordinatorConfig) -> None:
        self.stop = threading.Event()
        self.summary: dict[str, object] = {}
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(config,), daemon=True)
        self.thread.start()

    def _run(self, config: CoordinatorConfig) -> None:
        try:
            self.summary = run_coordinator(config, stop=self.stop, handle_signals=False)
        except BaseException as exc:
            self.error = exc
            raise

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


@pytest.fixture()
def stack(kafka: Kafka, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[CoordinatorConfig, TaskLog]]:
    pacing = getattr(request, "param", "window")  # kafka.round_pacing
    config = coordinator_config(kafka, tmp_path, kafka={"instance_id": "solo", "round_pacing": pacing})
    running = Running(config)
    wait_for(lambda: config.topics.events in kafka_topics(kafka), 30, "the coordinator's topics")
    log = TaskLog(kafka, config)
    yield config, log
    log.close()
    running.close()


def kafka_topics(kafka: Kafka) -> set[str]:
    from confluent_kafka.admin import AdminClient

    return set(AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=10).topics)


@pytest.mark.parametrize("stack", ["window", "commit"], indirect=True)
def test_200_robots_5000_tasks_each_end_exactly_once(stack: tuple[CoordinatorConfig, TaskLog]) -> None:
    config, log = stack
    sim = KafkaFleet(config, fleet_of(200), work_s=0.0).start()
    kinds = ["navigate", "pick", "fly", "inspect", "place"]
    docs: list[dict[str, Any]] = [{"task_id": f"job-{i:05d}" + ("-fail" if i % 50 == 0 else ""), "kind": kinds[i % 5],
             "target": {"x": float(i % 37), "y": float(i % 11)}, "priority": i % 4} for i in range(5000)]
    try:
        assert submit_tasks(config, docs) == 0
        wait_for(lambda: len(log.terminal()) >= 5000, 240, "5000 tasks to end")
        time.sleep(1.0)  # anything extra would show up now
        ends = log.terminal()
        last = log.last()
        received = sim.snapshot()
    finally:
        sim.stop()
    assert set(ends) == {d["task_id"] for d in docs}
    assert set(ends.values()) == {1}
    outcomes = Counter(last[d["task_id"]].task.state for d in docs)
    assert outcomes == {TaskState.DONE: 4900, TaskState.FAILED: 100}
    assigns = Counter(r.task_id for r in received if r.action == ASSIGN)
    assert set(assigns.values()) == {1} and len(assigns) == 5000
    # Each command reached its addressee, keyed by robot id, and only capable robots got tasks.
    robots = {r.robot_id: r for r in fleet_of(200)}
    assert all(r.addressed_to == r.robot_id for r in received)
    assert all(last[r.task_id].task.request.kind in robots[r.robot_id].capabilities for r in received)


def test_invalid_tasks_rejected_with_reason(stack: tuple[CoordinatorConfig, TaskLog], tmp_path: Path,
                                            kafka: Kafka) -> None:
    config, log = stack
    sim = KafkaFleet(config, fleet_of(6)).start()
    past = time.time_ns() - 5_000_000_000
    docs: list[dict[str, Any]] = [
        {"task_id": "ok-1", "kind": "navigate"},
        {"task_id": "bad-capability", "kind": "teleport"},
        {"task_id": "bad-deadline", "kind": "navigate", "deadline_ns": past},
        {"task_id": "bad-priority", "kind": "pick", "priority": "high"},
        {"kind": "navigate"},
        {"task_id": "ok-2", "kind": "fly"},
    ]
    doc_path = write_config(coordinator_doc(kafka, tmp_path), tmp_path / "unused.yaml")
    assert doc_path.exists()
    try:
        assert submit_tasks(config, docs) == 0
        # A resubmission of a known id (even changed) creates nothing; the CLI submits the same way.
        cli_config = write_config(json.loads(config.model_dump_json()), tmp_path / "coordinator.yaml")
        assert cli_main(["task", "submit", "--config", str(cli_config), "--task-id", "ok-1", "--kind", "pick"]) == 0
        wait_for(lambda: len(log.terminal()) >= 6, 60, "six tasks to end")
        time.sleep(1.0)
        last = log.last()
        ends = log.terminal()
    finally:
        sim.stop()
    assert last["ok-1"].task.state is TaskState.DONE and last["ok-1"].task.request.kind == "navigate"
    assert last["ok-2"].task.state is TaskState.DONE
    reasons = {tid: e.task.reason for tid, e in last.items() if e.task.state is TaskState.REJECTED}
    assert "unknown capability 'teleport'" in reasons.pop("bad-capability")
    assert "deadline already past" in reasons.pop("bad-deadline")
    assert "priority" in reasons.pop("bad-priority")
    (malformed,) = reasons.values()
    assert "task_id: missing" in malformed
    assert set(ends.values()) == {1}
    assert {e.task.request.kind for e in log.events() if e.task.task_id == "ok-1"} == {"navigate"}


def test_robot_going_offline_gets_its_tasks_reassigned(stack: tuple[CoordinatorConfig, TaskLog],
                                                      capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config, log = stack
    near = TaskRobot("amr_near", "amr", CAPABILITIES["amr"], x=0.0)
    far = TaskRobot("amr_far", "amr", CAPABILITIES["amr"], x=50.0)
    sim = KafkaFleet(config, [near, far], work_s=3600.0).start()  # amr_near never finishes
    try:
        assert submit_tasks(config, [{"task_id": "deliver-1", "kind": "navigate", "target": {"x": 1.0}}]) == 0
        wait_for(lambda: log.last().get("deliver-1") is not None
                 and log.last()["deliver-1"].task.state is TaskState.RUNNING, 60, "deliver-1 running on amr_near")
        assert log.last()["deliver-1"].task.robot_id == "amr_near"
        sim.work_s = 0.0
        sim.go_offline("amr_near")
        wait_for(lambda: log.last()["deliver-1"].task.state is TaskState.DONE, 60, "deliver-1 done elsewhere")
        received = sim.snapshot()
        cli_config = write_config(json.loads(config.model_dump_json()), tmp_path / "coordinator.yaml")
        capsys.readouterr()
        assert cli_main(["fleet", "status", "--config", str(cli_config)]) == 0
        table = capsys.readouterr().out
    finally:
        sim.stop()
    task = log.last()["deliver-1"].task
    assert task.history == ("amr_near", "amr_far") and task.attempts == 2
    assert [(r.robot_id, r.action) for r in received if r.task_id == "deliver-1"] == [
        ("amr_near", ASSIGN), ("amr_far", ASSIGN)]
    reasons = {e.task.reason for e in log.events() if e.task.task_id == "deliver-1"}
    assert "robot amr_near went offline (connection lost (last will))" in reasons
    assert "robots: 2 (1 online)" in table and "amr_near" in table and "OFFLINE" in table and "done 1" in table


def test_every_dropped_record_is_counted_but_only_the_first_few_are_logged(kafka: Kafka, tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    """A flood of malformed status records: all counted (summary and metric), ten WARNING lines, not one each."""
    import logging

    from confluent_kafka import Producer

    from swarm_bridge.coordinator.kafka.runner import CoordinatorInstance

    config = coordinator_config(kafka, tmp_path, kafka={"instance_id": "drops"})
    instance = CoordinatorInstance(config)
    caplog.set_level(logging.WARNING, logger="swarm_bridge.coordinator")
    reason = f"malformed {config.topics.status}"
    try:
        producer = Producer({"bootstrap.servers": kafka.bootstrap})
        for i in range(60):
            producer.produce(config.topics.status, value=b"\x7f not a record", key=f"amr_{i:03d}".encode())
        assert producer.flush(30) == 0
        deadline = time.monotonic() + 120
        while instance.summary()["dropped"].get(reason, 0) < 60 and time.monotonic() < deadline:
            instance.step(0.1)
        assert instance.summary()["dropped"] == {reason: 60}
        assert instance.metrics.dropped.labels(reason)._value.get() == 60
    finally:
        instance.close()
    lines = [r.getMessage() for r in caplog.records if "dropped (" in r.getMessage()]
    assert len(lines) == 10, lines
    assert "further drops of this reason are counted" in lines[-1]
