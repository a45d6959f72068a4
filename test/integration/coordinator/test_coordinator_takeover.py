"""Two coordinator processes share the shards; one is SIGKILLed mid-run: the survivor takes its shards
over, rebuilds their tasks from the event topic, and no task is lost or assigned twice."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from coordinator_fleet import CAPABILITIES, TaskLog, coordinator_doc, wait_for, write_config

from swarm_bridge.brokers import Kafka
from swarm_bridge.config import CoordinatorConfig, validate_config
from swarm_bridge.coordinator.core.dispatch import ASSIGN
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.coordinator.kafka.snapshot import submit_tasks
from swarm_bridge.sim.kafka_fleet import KafkaFleet
from swarm_bridge.sim.task_robots import TaskRobot

pytestmark = pytest.mark.integration

OWNS = re.compile(r"instance (\w+): owns shards \[([0-9, ]*)\]")
REBUILT = re.compile(r"instance b: owns shards \[0, 1, 2, 3, 4, 5\] \((\d+) tasks known\)")


def owned(log_path: Path) -> list[int] | None:
    """The shards an instance last said it owns (None before it owned any)."""
    found = OWNS.findall(log_path.read_text(errors="replace")) if log_path.exists() else []
    return [int(s) for s in found[-1][1].split(",") if s.strip()] if found else None


def start(config_path: Path, name: str, tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = tmp_path / f"{name}.log"
    proc = subprocess.Popen([sys.executable, "-m", "swarm_bridge.cli", "coordinator", "--config", str(config_path),
                             "--instance-id", name], stdout=subprocess.DEVNULL, stderr=log_path.open("wb"),
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc, log_path


def test_sigkilled_instance_loses_its_shards_and_no_task_is_lost_or_assigned_twice(kafka: Kafka,
                                                                                   tmp_path: Path) -> None:
    doc = coordinator_doc(kafka, tmp_path)
    config = validate_config(doc, CoordinatorConfig)
    path = write_config(doc, tmp_path / "coordinator.yaml")
    procs: list[subprocess.Popen[bytes]] = []
    log = None
    sim = None
    try:
        a, a_log = start(path, "a", tmp_path)
        procs.append(a)
        wait_for(lambda: owned(a_log) == list(range(6)), 60, "instance a to own all shards")
        b, b_log = start(path, "b", tmp_path)
        procs.append(b)
        wait_for(lambda: bool(owned(b_log)) and sorted((owned(a_log) or []) + (owned(b_log) or [])) == list(range(6)),
                 60, "a and b to split the shards")
        a_shards = owned(a_log) or []
        log = TaskLog(kafka, config)
        robots = [TaskRobot(f"amr_{i:02d}", "amr", CAPABILITIES["amr"], x=float(i)) for i in range(60)]
        sim = KafkaFleet(config, robots, work_s=0.05).start()
        docs: list[dict[str, Any]] = [
            {"task_id": f"move-{i:04d}", "kind": "navigate" if i % 2 else "pick", "target": {"x": float(i % 60)}}
                for i in range(1200)]
        assert submit_tasks(config, docs[:600]) == 0
        # a random point (seeded, printed; SWARM_BRIDGE_FAULT_SEED repeats a run): 50..550 of 600 tasks done
        seed = int(os.environ.get("SWARM_BRIDGE_FAULT_SEED") or random.randrange(1 << 20))
        kill_after = random.Random(seed).randrange(50, 550)
        print(f"coordinator SIGKILL after {kill_after} tasks done (seed {seed})")
        wait_for(lambda: len(log.terminal()) >= kill_after, 180, f"{kill_after} tasks done before the kill")
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=10)
        assert submit_tasks(config, docs[600:]) == 0
        wait_for(lambda: owned(b_log) == list(range(6)), 60, "b to take over a's shards")
        wait_for(lambda: len(log.terminal()) >= 1200, 180, "all 1200 tasks to end")
        ends, last, received = log.terminal(), log.last(), sim.snapshot()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if sim is not None:
            sim.stop()
        if log is not None:
            log.close()
    assert a_shards and len(a_shards) < 6
    # b rebuilt the whole task state from the event topic before owning a's shards.
    (known,) = REBUILT.findall(b_log.read_text())
    assert int(known) >= kill_after
    assert set(ends) == {d["task_id"] for d in docs} and set(ends.values()) == {1}
    assert {last[d["task_id"]].task.state for d in docs} == {TaskState.DONE}
    assigns = Counter(r.task_id for r in received if r.action == ASSIGN)
    assert len(assigns) == 1200 and set(assigns.values()) == {1}
