"""The fleet page of a single site, in headless Chromium: a site coordinator and simulated robots on a real
Mosquitto, the page read from the same broker; the fleet appears with its robot count, robots going offline or
silent turn so within their timeout, a task moves through its states, and the numbers are the coordinator's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fleet_page import (
    broker_shown,
    chromium,
    gateways_shown,
    map_points,
    robots_shown,
    screenshot,
    task_counts_shown,
    task_shown,
    text,
    updates,
    wait_until,
)
from selenium import webdriver
from site_harness import KINDS, robots_of, site_doc

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.config import CoordinatorConfig, validate_config
from swarm_bridge.coordinator.site.runner import SiteCoordinator
from swarm_bridge.fleetweb import FleetWeb, WebSettings
from swarm_bridge.sim.records import SiteRobotRecords
from swarm_bridge.sim.site_fleet import SiteFleet
from swarm_bridge.sim.task_robots import TaskRobot

PERIOD_S = 0.5


class SitePage:
    """A site coordinator, its simulated robots, the fleet page of its config and a browser on the page."""

    def __init__(self, broker: Mosquitto, robots: list[TaskRobot], profile: Path, *, work_s: float = 0.05,
                 **overrides: Any) -> None:
        self.config = validate_config(site_doc(broker, **overrides), CoordinatorConfig)
        self.coordinator = SiteCoordinator(self.config).start()
        records = SiteRobotRecords(self.coordinator.topics, fmt=self.config.robot_format)
        self.robots = SiteFleet(host=broker.host, port=broker.port, records=records, robots=robots,
                                work_s=work_s).start()
        self.web = FleetWeb(self.config, WebSettings(port=0, period_s=PERIOD_S)).start()
        self.browser: webdriver.Chrome = chromium(profile)
        self.browser.get(self.web.url)
        wait_until(lambda: updates(self.browser) > 0, 60, "the page's first snapshot")

    @property
    def offline_after_s(self) -> float:
        return self.config.tasks.robot_offline_after_s

    def close(self) -> None:
        self.browser.quit()
        self.web.stop()
        self.robots.stop()
        self.coordinator.stop()


@pytest.fixture()
def site_page(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Callable[..., SitePage]]:
    made: list[SitePage] = []

    def make(robots: list[TaskRobot], **kwargs: Any) -> SitePage:
        made.append(SitePage(mosquitto, robots, tmp_path / f"chromium{len(made)}", **kwargs))
        return made[-1]

    yield make
    for page in made:
        page.close()


def spread(count: int) -> list[TaskRobot]:
    """Robots on a 4-wide grid, 2.5 m apart, so the map has a shape to fit."""
    robots = robots_of(count)
    for index, robot in enumerate(robots):
        robot.x, robot.y = 2.5 * (index % 4) - 3.0, 2.0 * (index // 4) + 1.0
        robot.battery = 95.0 - 6.0 * index
    return robots


@pytest.mark.integration
def test_the_fleet_appears_with_its_robot_count_where_the_robots_are(site_page: Callable[..., SitePage],
                                                                      tmp_path: Path) -> None:
    robots = spread(7)
    site = site_page(robots)
    shown = wait_until(lambda: rows if len(rows := robots_shown(site.browser)) == 7 else None, 60,
                       "seven robots in the table")
    assert text(site.browser, "#robot-count") == "7"
    wait_until(lambda: text(site.browser, "#online-count") == "7", 60, "seven robots online")
    assert site.coordinator.summary()["robots_online"] == 7
    for robot in robots:
        row = shown[robot.robot_id]
        assert row["kind"] == robot.kind and row["position"] == f"({robot.x:.1f}, {robot.y:.1f})"
        assert row["battery"].startswith(f"{robot.battery:.0f}")
    wait_until(lambda: map_points(site.browser) == 7, 30, "seven robots on the map")
    # The broker's health, as Mosquitto's $SYS topics say it: at least the robots, the coordinator and the page.
    # Mosquitto says it every sys_interval (10 s).
    health = wait_until(lambda: b if int((b := broker_shown(site.browser)).get("clients connected", 0)) >= 9
                        else None, 60, "the broker's health")
    assert health["version"].startswith("mosquitto")
    # A single site has no gateway: the page says so instead of an empty table.
    assert text(site.browser, "#gateway-note").startswith("none on a single site")
    assert not gateways_shown(site.browser)
    screenshot(site.browser, tmp_path, "fleet_page_site.png")


@pytest.mark.integration
def test_a_robot_that_drops_or_falls_silent_turns_offline_within_its_timeout(
        site_page: Callable[..., SitePage]) -> None:
    site = site_page(spread(4), tasks={"robot_offline_after_s": 4})
    wait_until(lambda: text(site.browser, "#online-count") == "4", 60, "four robots online")
    dropped, silent = "amr_000", "drone_001"
    site.robots.drop(dropped)  # its connection dies: the broker sends its Last Will (presence offline)
    site.robots.silence(silent)  # connected, but it sends nothing more
    # Within the robot's timeout (and a snapshot period), with room for a busy machine.
    deadline = site.offline_after_s + 2 * PERIOD_S + 10.0
    def gone() -> dict[str, dict[str, str]] | None:
        rows = robots_shown(site.browser)
        return rows if rows[dropped]["presence"] == "offline" and rows[silent]["presence"] == "silent" else None

    rows = wait_until(gone, deadline,
                      "the dropped robot offline and the silent one silent")
    assert rows["arm_002"]["presence"] == rows["amr_003"]["presence"] == "online"
    assert text(site.browser, "#online-count") == "2"
    wait_until(lambda: site.coordinator.summary()["robots_online"] == 2, 30, "the coordinator to count 2 online")


@pytest.mark.integration
def test_a_task_moves_through_its_states_on_the_page(site_page: Callable[..., SitePage], tmp_path: Path) -> None:
    site = site_page(spread(3), work_s=4.0)
    wait_until(lambda: text(site.browser, "#online-count") == "3", 60, "three robots online")
    answer = site.coordinator.submit({"task_id": "page-task-1", "kind": "fly", "target": {"x": 1.0, "y": 2.0}})
    assert answer.accepted
    seen: list[str] = []

    def state_now() -> str | None:
        row = task_shown(site.browser, "page-task-1")
        if row is not None and (not seen or seen[-1] != row["state"]):
            seen.append(row["state"])
        return row["state"] if row is not None and row["state"] == "running" else None

    wait_until(state_now, 60, "the task running on the page", every_s=0.1)
    robot = wait_until(lambda: next((r for r in robots_shown(site.browser).values()
                                     if r["task"].startswith("page-task-1")), None), 30,
                       "the robot showing its task")
    assert robot["robot"] == "drone_001" and "running" in robot["task"]
    screenshot(site.browser, tmp_path, "fleet_page_task_running.png")
    def done_row() -> dict[str, str] | None:
        row = task_shown(site.browser, "page-task-1")
        return row if row is not None and row["state"] == "done" else None

    done = wait_until(done_row, 60, "the task done on the page")
    assert done["robot"] == "drone_001" and done["progress"].endswith("100%")
    history = done["history"].split(" → ")
    assert history[-3:] == ["accepted", "running", "done"], history
    assert seen[-1] == "running" and set(seen) <= {"queued", "assigned", "accepted", "running"}, seen
    assert set(history[:-3]) <= {"queued", "assigned"}, history


@pytest.mark.integration
def test_numbers_on_the_page_are_the_coordinators(site_page: Callable[..., SitePage], tmp_path: Path) -> None:
    robots = spread(12)
    site = site_page(robots, work_s=3.0)  # tasks take a while: the picture catches some done, some running
    wait_until(lambda: text(site.browser, "#online-count") == "12", 60, "twelve robots online")
    kinds = ["navigate", "fly", "inspect", "pick", "place", "charge"]
    for index in range(30):
        site.coordinator.submit({"task_id": f"job-{index:02d}", "kind": kinds[index % len(kinds)],
                                 "target": {"x": float(index % 5), "y": float(index % 3)}})
    site.coordinator.submit({"task_id": "job-bad", "kind": "teleport"})  # rejected: no robot can
    site.robots.drop("arm_011")
    # While the fleet works: a picture for the README (robots on the map, tasks running and done, one offline).
    wait_until(lambda: 0 < task_counts_shown(site.browser).get("done", 0) < 30, 60, "some tasks done")
    wait_until(lambda: robots_shown(site.browser)["arm_011"]["presence"] == "offline", 60, "arm_011 offline")
    screenshot(site.browser, tmp_path, "fleet_page.png", readme=True)

    def settled() -> dict[str, int] | None:
        summary = site.coordinator.summary()
        open_ = sum(n for state, n in summary["tasks"].items() if state in ("queued", "assigned", "accepted",
                                                                           "running"))
        return summary["tasks"] if not open_ else None

    final = wait_until(settled, 120, "every task to end")
    assert final["rejected"] == 1 and final["done"] + final["failed"] == 30
    # The page's numbers, once its next snapshots arrived, are the coordinator's.
    wait_until(lambda: task_counts_shown(site.browser) == final, 30, "the page's task counts to be the coordinator's")
    summary = site.coordinator.summary()
    wait_until(lambda: text(site.browser, "#online-count") == str(summary["robots_online"]), 30,
               "the page's online count to be the coordinator's")
    assert text(site.browser, "#robot-count") == str(summary["robots"]) == "12"
    robots_page = robots_shown(site.browser)
    for robot in site.coordinator.dispatch.fleet:
        assert robots_page[robot.robot_id]["kind"] == robot.kind
        assert robots_page[robot.robot_id]["position"] == f"({robot.x:.1f}, {robot.y:.1f})"
    assert {r["kind"] for r in robots_page.values()} == set(KINDS)
