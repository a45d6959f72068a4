"""The fleet page on Kafka, from the command line, in headless Chromium: `swarm-bridge coordinator --web` and
`swarm-bridge fleet web` on a real Kafka with simulated robots; the page's robots and task counts are what the
coordinators' view (`fleet status`'s snapshot) says, and a robot that goes offline turns offline on the page."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from coordinator_fleet import CAPABILITIES, coordinator_doc, write_config
from fleet_page import broker_shown, chromium, robots_shown, screenshot, task_counts_shown, text, updates, wait_until

from swarm_bridge.brokers import Kafka
from swarm_bridge.config import CoordinatorConfig, validate_config
from swarm_bridge.coordinator.kafka.snapshot import read_snapshot, submit_tasks
from swarm_bridge.sim.kafka_fleet import KafkaFleet
from swarm_bridge.sim.task_robots import TaskRobot


class Command:
    """`swarm-bridge ARGS` in its own process; its output lines kept, the page's URL read from them."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "swarm_bridge.cli", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    def url(self, timeout_s: float = 120.0) -> str:
        found = wait_until(lambda: next((line.split("fleet page: ", 1)[1].split()[0] for line in self.lines
                                         if line.startswith("fleet page: ")), None) or (
            self.process.poll() is not None and "exited"), timeout_s, "the page's URL")
        assert found != "exited", "\n".join(self.lines[-30:])
        return str(found)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return int(self.process.wait(10))


def fleet_of(count: int) -> list[TaskRobot]:
    kinds = ["amr", "drone", "arm"]
    return [TaskRobot(f"{kinds[i % 3]}_{i:03d}", kinds[i % 3], CAPABILITIES[kinds[i % 3]], x=3.0 * (i % 4),
                      y=2.0 * (i // 4), battery=90.0 - 5 * i) for i in range(count)]


@pytest.fixture()
def kafka_site(kafka: Kafka, tmp_path: Path) -> Iterator[tuple[CoordinatorConfig, Path, Command]]:
    doc: dict[str, Any] = coordinator_doc(kafka, tmp_path, kafka={"instance_id": "web-solo"},
                                          tasks={"robot_offline_after_s": 8})
    path = write_config(doc, tmp_path / "coordinator.yaml")
    coordinator = Command("coordinator", "--config", str(path), "--web", "0")
    yield validate_config(doc, CoordinatorConfig), path, coordinator
    coordinator.stop()


@pytest.mark.integration
def test_the_page_on_kafka_shows_the_coordinators_view(kafka_site: tuple[CoordinatorConfig, Path, Command],
                                                       tmp_path: Path) -> None:
    config, path, coordinator = kafka_site
    beside = coordinator.url()  # `coordinator --web`: the page beside the running coordinator
    robots = fleet_of(8)
    sim = KafkaFleet(config, robots, work_s=0.5, state_period_s=0.5).start()
    page = Command("fleet", "web", "--config", str(path), "--port", "0")
    browser = chromium(tmp_path / "chromium")
    try:
        browser.get(page.url())
        wait_until(lambda: updates(browser) > 0, 60, "the page's first snapshot")
        wait_until(lambda: text(browser, "#online-count") == "8", 90, "eight robots online")
        assert text(browser, "#robot-count") == "8"
        wait_until(lambda: broker_shown(browser).get("brokers up") == "1", 60, "the cluster's health: one broker")
        kinds = ["navigate", "pick", "fly", "inspect", "place"]
        docs = [{"task_id": f"kjob-{i:02d}", "kind": kinds[i % 5], "target": {"x": float(i % 4), "y": 1.0}}
                for i in range(20)]
        assert submit_tasks(config, docs) == 0
        wait_until(lambda: task_counts_shown(browser).get("done") == 20, 120, "twenty tasks done on the page")
        sim.go_offline("arm_002")
        wait_until(lambda: robots_shown(browser)["arm_002"]["presence"] == "offline", 60, "arm_002 offline")
        screenshot(browser, tmp_path, "fleet_page_kafka.png")
        # The coordinators' view, read from Kafka as `fleet status` reads it, and the page say the same.
        snap = read_snapshot(config)
        now = time.time_ns()
        stale = int(config.tasks.robot_offline_after_s * 1e9)
        online = sum(r.reachable(now, stale) for r in snap.fleet)
        assert online == 7 and len(snap.fleet) == 8
        wait_until(lambda: task_counts_shown(browser) == snap.book.counts(), 30, "the page's counts to be the view's")
        wait_until(lambda: text(browser, "#online-count") == str(online), 30, "the page's online count")
        shown = robots_shown(browser)
        for robot in snap.fleet:
            assert shown[robot.robot_id]["position"] == f"({robot.x:.1f}, {robot.y:.1f})"
            assert shown[robot.robot_id]["battery"].startswith(f"{robot.battery_percent:.0f}")
        # The page beside the coordinator says the same.
        def beside_summary() -> dict[str, Any] | None:
            with urllib.request.urlopen(beside.split("?")[0] + "api/fleet", timeout=30) as response:
                summary: dict[str, Any] = json.loads(response.read())["summary"]
            return summary if summary["tasks"] == snap.book.counts() else None

        assert wait_until(beside_summary, 30, "the coordinator's own page to agree")["robots"] == 8
    finally:
        browser.quit()
        sim.stop()
        status = page.stop()
    assert status == 0, "\n".join(page.lines[-20:])
