"""The fleet page's model without brokers: robots and presence as the coordinator folds them, tasks from the event
log or a site's status and reports, per-stream rates, drops, and memory bounded however long it runs."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from swarm_bridge.coordinator.core.fleet import FleetView
from swarm_bridge.coordinator.core.tasks import TaskRequest, TaskState, assigned, new_task
from swarm_bridge.fleetweb.feed import PageFeed
from swarm_bridge.fleetweb.model import FleetPage, PageLimits, RateMeter
from swarm_bridge.sim.records import robot_state_body

S = 1_000_000_000
NOW = 1_700_000_000 * S


def page(**limits: Any) -> FleetPage:
    return FleetPage(fleet="f", stale_after_ns=10 * S, limits=PageLimits(**limits))


def state(robot_id: str, x: float = 1.0, y: float = 2.0, task: str = "", battery: float = 80.0) -> dict[str, Any]:
    return robot_state_body(robot_id, "amr", ["navigate"], x=x, y=y, battery=battery, current_task_id=task,
                            now_ns=NOW)


def test_robots_presence_and_online_count_are_the_coordinators() -> None:
    p, view = page(), FleetView()
    for robot_id, x in (("a", 1.0), ("b", 5.0), ("c", -3.0)):
        p.on_state(state(robot_id, x=x), NOW)
        view.on_state(state(robot_id, x=x), NOW)
    p.on_presence("b", "offline", "connection lost", NOW + S)
    view.on_presence("b", "offline", "connection lost", NOW + S)
    snap = p.snapshot(NOW + 2 * S)
    online = sum(r.reachable(NOW + 2 * S, 10 * S) for r in view)
    assert snap["summary"]["robots"] == 3 and snap["summary"]["online"] == online == 2
    b = next(r for r in snap["robots"] if r["robot_id"] == "b")
    assert (b["presence"], b["presence_reason"], b["x"], b["frame"]) == ("offline", "connection lost", 5.0, "map")
    late = p.snapshot(NOW + 11 * S)  # nothing heard for longer than offline_after: silent, not online
    assert late["summary"]["online"] == 0
    assert {r["presence"] for r in late["robots"]} == {"silent", "offline"}
    json.dumps(late, allow_nan=False)


def test_numbers_a_robot_cannot_mean_are_not_sent_as_nan() -> None:
    p = page()
    p.on_state(state("a", x=float("nan"), battery=float("nan")), NOW)
    robot = p.snapshot(NOW)["robots"][0]
    assert robot["x"] is None and robot["battery_percent"] is None
    json.dumps(p.snapshot(NOW), allow_nan=False)


def test_task_versions_from_the_event_log_move_the_task_and_its_counts() -> None:
    p = page()
    queued = new_task(TaskRequest("t1", "navigate"), NOW)
    given = assigned(queued, "a", NOW + S)
    p.on_task(given, NOW + S)
    p.on_task(queued, NOW + S)  # an older version read late changes nothing
    assert p.task_counts()["assigned"] == 1 and p.task_counts()["queued"] == 0
    running = replace(given, state=TaskState.RUNNING, progress=0.5, version=given.version + 1, updated_ns=NOW + 2 * S)
    done = replace(running, state=TaskState.DONE, progress=1.0, version=running.version + 1, updated_ns=NOW + 3 * S)
    p.on_task(running, NOW + 2 * S)
    p.on_state(state("a", task="t1"), NOW + 2 * S)
    robot = p.snapshot(NOW + 2 * S)["robots"][0]
    assert (robot["current_task_id"], robot["task_state"], robot["task_progress"], robot["tasks"]) == (
        "t1", "running", 0.5, 1)
    p.on_task(done, NOW + 3 * S)
    p.on_task(done, NOW + 3 * S)
    row = p.snapshot(NOW + 3 * S)["tasks"][0]
    assert (row["state"], row["progress"], row["history"]) == ("done", 1.0, ["assigned", "running", "done"])
    assert p.task_counts() == {"queued": 0, "assigned": 0, "accepted": 0, "running": 0, "done": 1, "failed": 0,
                               "cancelled": 0, "rejected": 0}


def test_a_site_status_and_robot_reports_show_a_task_through_its_states() -> None:
    p = page()
    queued = {"task_id": "t1", "kind": "pick", "state": "queued", "robot_id": "", "attempts": 0, "reason": ""}
    given = {**queued, "state": "assigned", "robot_id": "a", "attempts": 1}
    doc: dict[str, Any] = {"at_ns": NOW, "summary": {"tasks": {"queued": 1}, "dropped": {"malformed state": 2}},
                           "open_tasks": [queued]}
    p.on_site_status(doc, NOW)
    p.on_site_status({**doc, "at_ns": NOW + S, "open_tasks": [given]}, NOW + S)
    p.on_report(robot_id="a", task_id="t1", state=TaskState.RUNNING, progress=0.4, reason="", now_ns=NOW + 2 * S)
    # a status published before the report, read after it, does not move the task back
    p.on_site_status({**doc, "at_ns": NOW + S, "open_tasks": [given]}, NOW + 2 * S)
    assert p.task("t1") is not None and p.task("t1").state == "running"  # type: ignore[union-attr]
    p.on_report(robot_id="b", task_id="t1", state=TaskState.DONE, progress=1.0, reason="", now_ns=NOW + 3 * S)
    assert p.task("t1").state == "running"  # type: ignore[union-attr]  # another robot's report
    p.on_report(robot_id="a", task_id="t1", state=TaskState.DONE, progress=1.0, reason="", now_ns=NOW + 3 * S)
    snap = p.snapshot(NOW + 3 * S)
    assert snap["tasks"][0]["history"] == ["queued", "assigned", "running", "done"]
    assert snap["summary"]["tasks"]["queued"] == 1  # the coordinator's own counts, as it last said them
    assert snap["drops"] == {"coordinator: malformed state": 2}


def test_rates_count_whole_seconds_in_the_window() -> None:
    meter = RateMeter(10)
    for i in range(200):  # 20 records/s for 10 s
        meter.add(NOW + i * S // 20)
    assert meter.rate(NOW + 10 * S) == 20.0
    assert meter.rate(NOW + 30 * S) == 0.0  # long quiet: the old buckets no longer count


def test_streams_rates_latency_and_drops() -> None:
    p = page()
    for i in range(100):
        p.on_record("a", "telemetry/odometry", 700, NOW + i * S // 10, stamp_ns=NOW + i * S // 10 - 5_000_000)
    p.drop("malformed state/robot_state")
    p.on_broker("clients connected", "12")
    snap = p.snapshot(NOW + 10 * S)
    assert snap["broker"] == {"clients connected": "12"}
    stream = snap["streams"][0]
    assert (stream["robot_id"], stream["stream"], stream["total"], stream["bytes"]) == (
        "a", "telemetry/odometry", 100, 70_000)
    assert stream["rate_hz"] == 10.0 and stream["p99_ms"] == 5.0
    assert snap["drops"] == {"malformed state/robot_state": 1}
    assert snap["source"]["records"] == 100


def test_memory_is_bounded_however_much_arrives() -> None:
    p = page(robots=50, open_tasks=20, finished_tasks=10, forgotten_tasks=100, streams=30, history=4)
    for i in range(5000):
        p.on_state(state(f"r{i}"), NOW)
        p.on_record(f"r{i}", "telemetry/imu", 100, NOW)
        task = new_task(TaskRequest(f"t{i}", "navigate"), NOW)
        p.on_task(task, NOW)
        if i % 2:
            p.on_task(replace(task, state=TaskState.DONE, version=2), NOW)
    assert len(p.fleet) == 50 and len(p._streams) == 30
    assert len(p._open) <= 20 and len(p._finished) <= 10 and len(p._forgotten) <= 100
    assert p.drops["robot over the page's limit"] == 4950
    assert p.drops["stream over the page's limit"] == 4970
    assert p.task_counts()["done"] == 2500 and p.task_counts()["queued"] == 2500  # counts stay whole
    snap = p.snapshot(NOW)
    assert len(snap["tasks"]) <= 100 and len(snap["streams"]) <= 30


def test_feed_renders_one_shared_text_per_snapshot() -> None:
    feed = PageFeed(page())
    feed.apply(FleetPage.on_state, state("a"), NOW)
    text = feed.render(NOW)
    assert feed.version == 1 and json.loads(text)["summary"]["robots"] == 1 and feed.text is text


def test_drop_reasons_are_bounded_too() -> None:
    p = page(drop_reasons=3)
    for i in range(10):
        p.drop(f"malformed telemetry/s{i}")
    assert p.drops == {"malformed telemetry/s0": 1, "malformed telemetry/s1": 1, "malformed telemetry/s2": 1,
                       "other": 7}


def test_a_robot_that_reports_no_task_shows_the_one_the_task_log_says_it_runs() -> None:
    """A VDA 5050 vehicle reports orders, not tasks: its row names the task under way on it from the event log."""
    p = page()
    p.on_state(state("acme/agv1"), NOW)  # no current_task_id of its own
    given = assigned(new_task(TaskRequest("far", "navigate"), NOW), "acme/agv1", NOW)
    p.on_task(given, NOW)
    assert p.snapshot(NOW)["robots"][0]["current_task_id"] == ""  # assigned: not yet under way
    p.on_task(replace(given, state=TaskState.RUNNING, version=given.version + 1), NOW + S)
    robot = p.snapshot(NOW + S)["robots"][0]
    assert (robot["current_task_id"], robot["task_state"]) == ("far", "running")
    p.on_task(replace(given, state=TaskState.CANCELLED, version=given.version + 2), NOW + 2 * S)
    assert p.snapshot(NOW + 2 * S)["robots"][0]["current_task_id"] == ""
