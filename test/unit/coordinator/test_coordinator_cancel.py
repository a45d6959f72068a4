"""Cancels in the coordinator's core: a cancel the robot confirms (mode kafka), cancel requests on the submit topic
passed on to the task's owner, and a robot told to stop when a timeout takes its task away (both modes)."""

from __future__ import annotations

import json
from typing import Any

from swarm_bridge.coordinator.core.assignment import CostPolicy
from swarm_bridge.coordinator.core.dispatch import (
    ASSIGN,
    CANCEL,
    Command,
    Dispatch,
    EventRecord,
    Forward,
    Output,
    cancel_doc,
)
from swarm_bridge.coordinator.core.events import TaskEvent, decode_event, encode_event, home_shard
from swarm_bridge.coordinator.core.fleet import RobotMode, RobotView
from swarm_bridge.coordinator.core.tasks import (
    TaskRules,
    TaskState,
    assigned,
    cancel_requested,
    new_task,
    on_robot_lost,
    on_status,
    overdue,
    parse_request,
)

S = 1_000_000_000
NOW = 1_700_000_000 * S
KINDS = {"navigate"}
RULES = TaskRules(accept_timeout_ns=5 * S, run_timeout_ns=60 * S, max_attempts=2)


def request(task_id: str = "t1", **extra: Any) -> bytes:
    return json.dumps({"task_id": task_id, "kind": "navigate", **extra}).encode()


def cancel(task_id: str = "t1", reason: str = "operator", hops: int = 0) -> bytes:
    return json.dumps(cancel_doc(task_id, reason, hops)).encode()


def robot(robot_id: str, x: float = 0.0) -> RobotView:
    return RobotView(robot_id, "amr", frozenset({"navigate"}), RobotMode.IDLE, x, 0.0, 0.0, 80.0, last_seen_ns=NOW)


def dispatch(*robots: RobotView, shards: int = 4) -> Dispatch:
    d = Dispatch(shards=shards, kinds=KINDS, rules=RULES, policy=CostPolicy(), stale_after_ns=1000 * S)
    d.owned = frozenset(range(shards))
    for r in robots:
        d.fleet.put(r)
    return d


def commands(out: list[Output] | None) -> list[tuple[str, int, str]]:
    return [(c.robot_id, c.action, c.command_id) for c in out or [] if isinstance(c, Command)]


def states(out: list[Output] | None) -> list[TaskState]:
    return [r.event.task.state for r in out or [] if isinstance(r, EventRecord) and r.event is not None]


def running(d: Dispatch, task_id: str = "t1", robot_id: str = "r1") -> None:
    d.request(request(task_id), task_id, NOW)
    assert commands(d.tick(NOW)) == [(robot_id, ASSIGN, f"{task_id}#1")]
    d.status(robot_id=robot_id, task_id=task_id, state=TaskState.RUNNING, reason="", progress=0.2, now_ns=NOW)


def test_a_queued_task_is_cancelled_at_once_without_a_command() -> None:
    d = dispatch()  # no robot: it stays queued
    d.request(request(), "t1", NOW)
    d.tick(NOW)
    out = d.request(cancel(), "t1", NOW + S)
    assert states(out) == [TaskState.CANCELLED] and commands(out) == []
    task = d.book.get("t1")
    assert task is not None and task.reason == "operator"


def test_a_running_task_ends_cancelled_only_when_its_robot_confirms() -> None:
    d = dispatch(robot("r1"))
    running(d)
    out = d.request(cancel(), "t1", NOW + S)
    assert commands(out) == [("r1", CANCEL, "t1#1:cancel")]
    assert states(out) == [TaskState.RUNNING]  # still on the robot, a cancel under way
    task = d.book.get("t1")
    assert task is not None and task.cancelling and task.cancel_ns == NOW + S
    assert d.request(cancel(), "t1", NOW + 2 * S) == []  # asked again: nothing new
    d.status(robot_id="r1", task_id="t1", state=TaskState.RUNNING, reason="", progress=0.4, now_ns=NOW + 2 * S)
    out = d.status(robot_id="r1", task_id="t1", state=TaskState.CANCELLED, reason="goal cancelled", progress=0.4,
                   now_ns=NOW + 3 * S)
    assert states(out) == [TaskState.CANCELLED] and commands(out) == []
    task = d.book.get("t1")
    assert task is not None and task.reason == "operator (robot r1: goal cancelled)"
    assert d.request(cancel(), "t1", NOW + 4 * S) == []  # ended: nothing to do


def test_a_robot_that_finishes_before_the_cancel_reaches_it_wins() -> None:
    d = dispatch(robot("r1"))
    running(d)
    d.request(cancel(), "t1", NOW + S)
    out = d.status(robot_id="r1", task_id="t1", state=TaskState.DONE, reason="", progress=1.0, now_ns=NOW + 2 * S)
    assert states(out) == [TaskState.DONE]


def test_a_cancel_the_robot_never_confirms_ends_after_the_accept_timeout_without_a_second_command() -> None:
    d = dispatch(robot("r1"))
    running(d)
    d.request(cancel(), "t1", NOW + S)
    assert d.tick(NOW + 5 * S) == []
    out = d.tick(NOW + 6 * S)
    assert states(out) == [TaskState.CANCELLED] and commands(out) == []
    task = d.book.get("t1")
    assert task is not None and "did not confirm within 5 s" in task.reason


def test_a_task_whose_robot_is_lost_while_cancelling_ends_cancelled_not_requeued() -> None:
    task = assigned(new_task(parse_request(request(), kinds=KINDS, now_ns=NOW), NOW), "r1", NOW)
    asked = cancel_requested(task, NOW, "operator")
    assert asked is not None and asked.state is TaskState.ASSIGNED
    lost = on_robot_lost(asked, NOW + S, RULES, "went offline")
    assert lost is not None and lost.state is TaskState.CANCELLED and "before it confirmed" in lost.reason
    rejected = on_status(asked, robot_id="r1", state=TaskState.REJECTED, reason="not mine", progress=0, now_ns=NOW,
                         rules=RULES)
    assert rejected is not None and rejected.state is TaskState.CANCELLED  # not retried elsewhere


def test_the_cancel_under_way_survives_the_event_log() -> None:
    task = assigned(new_task(parse_request(request(), kinds=KINDS, now_ns=NOW), NOW), "r1", NOW)
    asked = cancel_requested(task, NOW + S, "operator")
    assert asked is not None
    assert decode_event(encode_event(TaskEvent("running", asked))).task == asked
    older = json.loads(encode_event(TaskEvent("assigned", task)))
    del older["task"]["cancel_reason"], older["task"]["cancel_ns"]  # written before cancels were kept
    assert decode_event(json.dumps(older).encode()).task == task


def test_a_cancel_of_a_task_on_another_instance_s_shard_is_passed_on_to_it() -> None:
    d = dispatch(robot("r1"), shards=8)
    running(d)
    home = home_shard(d.book.get("t1"), 8)  # type: ignore[arg-type]
    d.owned = frozenset(range(8)) - {home}
    out = d.request(cancel(hops=2), "t1", NOW + S)
    assert out is not None and len(out) == 1 and isinstance(out[0], Forward)
    assert (out[0].shard, out[0].task_id) == (home, "t1")
    assert json.loads(out[0].payload) == cancel_doc("t1", "operator", 3)
    assert d.request(cancel(hops=8), "t1", NOW + S) == []
    assert d.counts["cancel passed on too often"] == 1


def test_cancel_requests_unknown_or_malformed_and_submissions_through_the_same_topic() -> None:
    d = dispatch()
    assert d.request(cancel("nobody"), "nobody", NOW) is None  # unknown here: the caller catches up, then drops
    assert d.request(json.dumps({"cancel": 7}).encode(), "x", NOW) == []
    assert d.counts["malformed cancel"] == 1
    assert states(d.request(b"{not json", "k", NOW)) == [TaskState.REJECTED]
    assert states(d.request(request("t2"), "t2", NOW)) == [TaskState.QUEUED]


def test_a_run_timeout_tells_the_robot_to_stop() -> None:
    """The task fails on the coordinator's side; the robot must not go on driving its goal."""
    d = dispatch(robot("r1"))
    running(d)
    assert d.tick(NOW + 59 * S) == []
    out = d.tick(NOW + 61 * S)
    assert states(out) == [TaskState.FAILED] and commands(out) == [("r1", CANCEL, "t1#1:cancel")]


def test_an_accept_timeout_tells_the_robot_to_stop_on_every_attempt_also_the_last() -> None:
    d = dispatch(robot("r1"), robot("r2", 5.0))
    d.request(request(), "t1", NOW)
    assert commands(d.tick(NOW)) == [("r1", ASSIGN, "t1#1")]
    out = d.tick(NOW + 6 * S)  # not accepted in time: to r2, and r1 told to drop it
    assert commands(out) == [("r1", CANCEL, "t1#1:cancel"), ("r2", ASSIGN, "t1#2")]
    out = d.tick(NOW + 12 * S)  # the last attempt: failed, and r2 told all the same
    assert states(out) == [TaskState.FAILED] and commands(out) == [("r2", CANCEL, "t1#2:cancel")]


def test_timeouts_of_tasks_on_no_robot_send_nothing() -> None:
    task = new_task(parse_request(request(deadline_ns=NOW + S), kinds=KINDS, now_ns=NOW), NOW)
    late = overdue(task, NOW + 2 * S, RULES)
    assert late is not None and late.state is TaskState.FAILED
    d = dispatch()
    d.request(request(deadline_ns=NOW + S), "t1", NOW)
    out = d.tick(NOW + 2 * S)
    assert states(out) == [TaskState.FAILED] and commands(out) == []


def test_fleet_status_shows_a_cancel_under_way() -> None:
    from swarm_bridge.coordinator.core.table import fleet_tables

    d = dispatch(robot("r1"))
    running(d)
    d.request(cancel(reason="aisle blocked"), "t1", NOW + S)
    text = fleet_tables(d.fleet, d.book, now_ns=NOW + S, stale_after_ns=1000 * S, max_tasks=5)
    assert text.splitlines()[-1].split() == ["t1", "navigate", "running", "r1", "0", "1", "cancelling:", "aisle",
                                             "blocked"]
