"""Test helpers for the coordinator on a real Kafka: a config with topics of its own, task outcomes read back."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from swarm_bridge.brokers import Kafka
from swarm_bridge.config import CoordinatorConfig, validate_config
from swarm_bridge.coordinator.core.events import TaskEvent, decode_event
from swarm_bridge.coordinator.core.tasks import TERMINAL
from swarm_bridge.coordinator.kafka.runner import CoordinatorInstance
from swarm_bridge.sim.taps import KafkaTap

CAPABILITIES = {"amr": ["navigate", "pick", "charge"], "drone": ["fly", "inspect", "charge"], "arm": ["pick", "place"]}


def coordinator_doc(broker: Kafka, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A coordinator config mapping with topics and group of its own (tests share one Kafka)."""
    tag = uuid.uuid4().hex[:6]
    doc: dict[str, Any] = {
        "fleet": "test", "shards": 6,
        "kafka": {"port": broker.port, "group": f"coord-{tag}", "session_timeout_s": 6, "transaction_timeout_s": 10},
        "topics": {name: f"t{tag}.{name}" for name in ("submit", "state", "status", "presence", "commands", "events")},
        "registry": str(tmp_path / "registry"),
        "capabilities": CAPABILITIES,
        "tasks": {"accept_timeout_s": 60, "run_timeout_s": 120, "robot_offline_after_s": 30},
    }
    for key, value in overrides.items():
        doc[key] = {**doc[key], **value} if isinstance(value, dict) and isinstance(doc.get(key), dict) else value
    return doc


def coordinator_config(broker: Kafka, tmp_path: Path, **overrides: Any) -> CoordinatorConfig:
    return validate_config(coordinator_doc(broker, tmp_path, **overrides), CoordinatorConfig)


def write_config(doc: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


class TaskLog:
    """Every task event committed to the event topic, read from the start in a thread."""

    def __init__(self, kafka: Kafka, config: CoordinatorConfig) -> None:
        self.tap = KafkaTap(bootstrap=kafka.bootstrap, topics=[config.topics.events], from_start=True)

    def events(self) -> list[TaskEvent]:
        return [decode_event(r.payload) for r in self.tap.snapshot() if r.payload]

    def terminal(self) -> Counter[str]:
        """How many terminal events each task has (exactly one is right)."""
        return Counter(e.task.task_id for e in self.events() if e.task.state in TERMINAL)

    def last(self) -> dict[str, TaskEvent]:
        out: dict[str, TaskEvent] = {}
        for event in self.events():
            old = out.get(event.task.task_id)
            if old is None or old.task.version < event.task.version:
                out[event.task.task_id] = event
        return out

    def close(self) -> None:
        self.tap.close()


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `check` until true; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.2)


class Stepping:
    """One coordinator instance stepping in a thread of this process (its dispatch readable by the test)."""

    def __init__(self, instance: CoordinatorInstance) -> None:
        self.instance = instance
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                self.instance.step()
        except BaseException as exc:
            self.error = exc
            raise

    def owned(self) -> frozenset[int]:
        return self.instance.dispatch.owned

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        self.instance.close()
