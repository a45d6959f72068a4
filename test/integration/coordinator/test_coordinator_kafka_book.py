"""The coordinator's task book on a real Kafka stays bounded: ended tasks are forgotten after `keep_ended_s` (only
their ids kept), yet a resubmission stays a duplicate, also for an instance that rebuilt its book from the topic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from coordinator_fleet import CAPABILITIES, Stepping, TaskLog, coordinator_config, wait_for

from swarm_bridge.brokers import Kafka
from swarm_bridge.coordinator.core.dispatch import ASSIGN
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.coordinator.kafka.runner import CoordinatorInstance
from swarm_bridge.coordinator.kafka.snapshot import submit_tasks
from swarm_bridge.sim.kafka_fleet import KafkaFleet
from swarm_bridge.sim.task_robots import TaskRobot

pytestmark = pytest.mark.integration


def _docs(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"task_id": f"{prefix}-{i:03d}", "kind": "navigate", "target": {"x": float(i), "y": 0.0}}
            for i in range(count)]


def _forgotten(stepping: Stepping, docs: list[dict[str, Any]]) -> bool:
    book = stepping.instance.dispatch.book
    return all(book.forgotten(d["task_id"]) for d in docs)


def test_ended_tasks_are_forgotten_but_stay_duplicates_also_after_a_rebuild(kafka: Kafka, tmp_path: Path) -> None:
    config = coordinator_config(kafka, tmp_path, kafka={"instance_id": "book"}, tasks={"keep_ended_s": 0.5})
    robots = [TaskRobot(f"amr_{i}", "amr", CAPABILITIES["amr"], x=float(i)) for i in range(4)]
    first = Stepping(CoordinatorInstance(config))
    log = TaskLog(kafka, config)
    sim = KafkaFleet(config, robots, work_s=0.0).start()
    ended = _docs("ended", 20)
    try:
        assert submit_tasks(config, ended) == 0
        wait_for(lambda: len(log.terminal()) >= 20, 120, "20 tasks to end")
        wait_for(lambda: _forgotten(first, ended), 60, "the ended tasks to be forgotten")
        book = first.instance.dispatch.book
        assert book.counts()[TaskState.DONE.value] == 20 and len(book) == 20
        assert all(book.get(d["task_id"]) is None for d in ended)
        # resubmitted: duplicates, nothing runs again; a new task still runs
        assert submit_tasks(config, [*ended, *_docs("fresh", 1)]) == 0
        wait_for(lambda: first.instance.dispatch.counts["duplicate submission"] >= 20, 60, "20 duplicates refused")
        wait_for(lambda: "fresh-000" in log.terminal(), 60, "the fresh task to end")
        first.close()
        # a new instance reads every task back from the event topic, forgets the ended ones again, and still
        # refuses their resubmission
        second = Stepping(CoordinatorInstance(config))
        try:
            wait_for(lambda: len(second.owned()) == config.shards, 60, "the new instance to own the shards")
            assert submit_tasks(config, ended) == 0
            wait_for(lambda: second.instance.dispatch.counts["duplicate submission"] >= 20, 60,
                     "20 duplicates refused after the rebuild")
            wait_for(lambda: _forgotten(second, [*ended, *_docs("fresh", 1)]), 60, "the rebuilt book to forget")
            assert second.instance.summary()["done"] == 21
        finally:
            second.close()
        assert second.error is None and first.error is None
        ends = log.terminal()
        received = sim.snapshot()
    finally:
        sim.stop()
        log.close()
    assert set(ends) == {d["task_id"] for d in ended} | {"fresh-000"} and set(ends.values()) == {1}
    assigned = sorted(r.task_id for r in received if r.action == ASSIGN)
    assert assigned == sorted([*(d["task_id"] for d in ended), "fresh-000"])  # each once, none again
