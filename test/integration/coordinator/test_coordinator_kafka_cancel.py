"""Cancels in mode kafka, on a real Kafka with the simulated Kafka fleet: `task cancel` puts a request on the submit
topic, the task's owner tells the robot (CANCEL TaskCommand) and the task ends cancelled once the robot reports it
(a queued one at once); a cancel reaching an instance that does not own the task is passed on to the one that does;
a run timeout tells the robot to stop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from coordinator_fleet import CAPABILITIES, Stepping, TaskLog, coordinator_config, wait_for, write_config

from swarm_bridge.brokers import Kafka
from swarm_bridge.cli import main as cli_main
from swarm_bridge.config import CoordinatorConfig
from swarm_bridge.coordinator.core.dispatch import ASSIGN, CANCEL
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.coordinator.kafka.runner import CoordinatorInstance
from swarm_bridge.coordinator.kafka.snapshot import TaskSubmitter, cancel_task, submit_tasks
from swarm_bridge.routing.sharding import shard_of
from swarm_bridge.sim.kafka_fleet import KafkaFleet
from swarm_bridge.sim.taps import KafkaTap
from swarm_bridge.sim.task_robots import TaskRobot

pytestmark = pytest.mark.integration



def state_of(log: TaskLog, task_id: str) -> TaskState | None:
    event = log.last().get(task_id)
    return None if event is None else event.task.state


@pytest.fixture()
def solo(kafka: Kafka, tmp_path: Path) -> Iterator[tuple[CoordinatorConfig, TaskLog, Stepping]]:
    config = coordinator_config(kafka, tmp_path, kafka={"instance_id": "solo"},
                                tasks={"accept_timeout_s": 60, "run_timeout_s": 8, "robot_offline_after_s": 120})
    running = Stepping(CoordinatorInstance(config))
    log = TaskLog(kafka, config)
    wait_for(lambda: running.owned() == frozenset(range(6)), 60, "the instance to own every shard")
    yield config, log, running
    log.close()
    running.close()
    assert running.error is None


def test_task_cancel_stops_the_robot_and_ends_cancelled_once_it_confirms(
        solo: tuple[CoordinatorConfig, TaskLog, Stepping], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, log, running = solo
    amr = TaskRobot("amr_1", "amr", CAPABILITIES["amr"])
    sim = KafkaFleet(config, [amr], work_s=3600.0).start()  # never finishes by itself
    cli_config = write_config(json.loads(config.model_dump_json()), tmp_path / "coordinator.yaml")
    try:
        # `place` only an arm can do, and there is none: it stays queued
        assert submit_tasks(config, [{"task_id": "drive-1", "kind": "navigate", "target": {"x": 3.0}},
                                     {"task_id": "place-1", "kind": "place"}]) == 0
        wait_for(lambda: state_of(log, "drive-1") is TaskState.RUNNING, 60, "drive-1 running on amr_1")
        wait_for(lambda: state_of(log, "place-1") is TaskState.QUEUED, 60, "place-1 queued")
        capsys.readouterr()
        assert cli_main(["task", "cancel", "--config", str(cli_config), "--task-id", "drive-1",
                         "--reason", "aisle blocked"]) == 0
        assert "cancel of drive-1 sent" in capsys.readouterr().out
        submitter = TaskSubmitter(config)  # as the ROS topic tasks/submit forwards it: raw JSON
        submitter.send(json.dumps({"cancel": "place-1", "reason": "not needed"}).encode())
        assert submitter.close() == 0
        assert cancel_task(config, "nobody", "never submitted") == 0
        wait_for(lambda: state_of(log, "drive-1") is TaskState.CANCELLED, 60, "drive-1 cancelled")
        wait_for(lambda: state_of(log, "place-1") is TaskState.CANCELLED, 60, "place-1 cancelled")
        wait_for(lambda: running.instance.dispatch.counts["cancel for an unknown task"] == 1, 60,
                 "the cancel of an unknown task counted")
        received = sim.snapshot()
    finally:
        sim.stop()
    assert [(r.robot_id, r.action, r.command_id) for r in received if r.task_id == "drive-1"] == [
        ("amr_1", ASSIGN, "drive-1#1"), ("amr_1", CANCEL, "drive-1#1:cancel")]
    assert not [r for r in received if r.task_id == "place-1"]
    events = [e for e in log.events() if e.task.task_id == "drive-1"]
    # Asked for, then confirmed: the task stayed on its robot until the robot said it stopped.
    asked = [e for e in events if e.task.cancel_reason and not e.task.terminal]
    assert asked and asked[-1].task.state is TaskState.RUNNING
    final = log.last()["drive-1"].task
    assert final.reason == "aisle blocked (robot amr_1: cancelled by the coordinator)"
    assert log.last()["place-1"].task.reason == "not needed"
    assert set(log.terminal().values()) == {1}


def test_a_run_timeout_fails_the_task_and_tells_the_robot_to_stop(
        solo: tuple[CoordinatorConfig, TaskLog, Stepping]) -> None:
    config, log, _ = solo
    sim = KafkaFleet(config, [TaskRobot("amr_1", "amr", CAPABILITIES["amr"])], work_s=3600.0).start()
    try:  # running, then silent about it past run_timeout_s (8 s)
        assert submit_tasks(config, [{"task_id": "drive-1", "kind": "navigate"}]) == 0
        wait_for(lambda: state_of(log, "drive-1") is TaskState.FAILED, 90, "drive-1 failed by the run timeout")
        wait_for(lambda: any(r.action == CANCEL for r in sim.snapshot()), 60, "the robot told to stop")
        received = sim.snapshot()
    finally:
        sim.stop()
    assert "no report from robot amr_1" in log.last()["drive-1"].task.reason
    assert [(r.action, r.command_id) for r in received] == [(ASSIGN, "drive-1#1"), (CANCEL, "drive-1#1:cancel")]
    assert not sim.robots["amr_1"].queue  # it dropped the goal


def test_a_cancel_reaching_the_instance_that_does_not_own_the_task_is_passed_on(kafka: Kafka,
                                                                                tmp_path: Path) -> None:
    """The request goes to the task id's shard; once assigned, the task lives on its robot's shard, owned here by
    the other instance (range assignor: one has shards 0-2, the other 3-5)."""
    config = coordinator_config(kafka, tmp_path)
    task_id = next(f"job-{i}" for i in range(100) if shard_of(f"job-{i}", 6) < 3)
    robot_id = next(f"amr_{i}" for i in range(100) if shard_of(f"amr_{i}", 6) >= 3)
    a = Stepping(CoordinatorInstance(config.model_copy(update={"kafka": config.kafka.model_copy(
        update={"instance_id": "a"})})))
    b = Stepping(CoordinatorInstance(config.model_copy(update={"kafka": config.kafka.model_copy(
        update={"instance_id": "b"})})))
    log = TaskLog(kafka, config)
    requests = KafkaTap(bootstrap=kafka.bootstrap, topics=[config.topics.submit], from_start=True)
    sim = KafkaFleet(config, [TaskRobot(robot_id, "amr", CAPABILITIES["amr"])], work_s=3600.0).start()
    try:
        wait_for(lambda: len(a.owned()) == 3 and len(b.owned()) == 3, 90, "a and b to split the shards")
        assert submit_tasks(config, [{"task_id": task_id, "kind": "navigate"}]) == 0
        wait_for(lambda: state_of(log, task_id) is TaskState.RUNNING, 60, f"{task_id} running on {robot_id}")
        assert cancel_task(config, task_id, "operator") == 0
        wait_for(lambda: state_of(log, task_id) is TaskState.CANCELLED, 60, f"{task_id} cancelled")
        received = sim.snapshot()
        cancels = [json.loads(r.payload) for r in requests.snapshot() if b'"cancel"' in r.payload]
    finally:
        sim.stop()
        requests.close()
        log.close()
        a.close()
        b.close()
    assert a.error is None and b.error is None
    # the request as sent, then passed on once by the instance owning the task id's shard
    assert cancels == [{"cancel": task_id, "reason": "operator", "hops": 0},
                       {"cancel": task_id, "reason": "operator", "hops": 1}]
    assert [(r.action, r.command_id) for r in received] == [(ASSIGN, f"{task_id}#1"), (CANCEL, f"{task_id}#1:cancel")]
    assert log.last()[task_id].task.reason == f"operator (robot {robot_id}: cancelled by the coordinator)"
