"""The single-site coordinator's test fleet: its config, capabilities and robots, and a bounded wait."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.sim.task_robots import TaskRobot

CAPABILITIES = {"amr": ["navigate", "pick", "charge"], "drone": ["fly", "inspect", "charge"], "arm": ["pick", "place"]}
KINDS = ["amr", "drone", "arm"]


def site_doc(broker: Mosquitto, **overrides: Any) -> dict[str, Any]:
    """A single-site config with a fleet name of its own (tests share one Mosquitto)."""
    doc: dict[str, Any] = {
        "fleet": f"site{uuid.uuid4().hex[:6]}", "mode": "mqtt",
        "mqtt": {"host": broker.host, "port": broker.port, "session_expiry_s": 0},
        "capabilities": CAPABILITIES,
        "tasks": {"accept_timeout_s": 20, "run_timeout_s": 60, "robot_offline_after_s": 20, "max_attempts": 3},
    }
    for key, value in overrides.items():
        doc[key] = {**doc[key], **value} if isinstance(value, dict) and isinstance(doc.get(key), dict) else value
    return doc


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


def robots_of(count: int) -> list[TaskRobot]:
    return [TaskRobot(f"{KINDS[i % 3]}_{i:03d}", KINDS[i % 3], CAPABILITIES[KINDS[i % 3]], x=float(i % 5),
                      y=float(i // 5)) for i in range(count)]
