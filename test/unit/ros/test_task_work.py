"""The reference robot's task logic, pure: accept, run one at a time, finish, reject without the capability, cancel
(the executor on ROS: integration/ros/test_task_work.py)."""

from __future__ import annotations

from swarm_bridge.ros.task_work import (
    ACCEPTED,
    ACTION_ASSIGN,
    ACTION_CANCEL,
    CANCELLED,
    DONE,
    REJECTED,
    RUNNING,
    TaskWork,
)


def _assign(work: TaskWork, task_id: str, now: float, kind: str = "navigate") -> list[tuple[str, int]]:
    return [(r.task_id, r.state) for r in work.command(task_id=task_id, action=ACTION_ASSIGN, kind=kind, now_s=now)]


def test_tasks_run_one_at_a_time_in_arrival_order() -> None:
    work = TaskWork(frozenset({"navigate"}), work_s=2.0)
    assert _assign(work, "t1", 0.0) == [("t1", ACCEPTED), ("t1", RUNNING)]
    assert _assign(work, "t2", 0.5) == [("t2", ACCEPTED)]
    assert work.current == "t1"
    assert work.advance(1.9) == []
    assert [(r.task_id, r.state) for r in work.advance(2.0)] == [("t1", DONE), ("t2", RUNNING)]
    assert [(r.task_id, r.state) for r in work.advance(4.1)] == [("t2", DONE)]
    assert work.current == ""


def test_a_task_outside_the_capabilities_is_rejected_with_the_reason() -> None:
    work = TaskWork(frozenset({"navigate", "inspect"}))
    reports = work.command(task_id="t1", action=ACTION_ASSIGN, kind="fly", now_s=0.0)
    assert [(r.state, r.reason) for r in reports] == [(REJECTED, "no capability 'fly' (has inspect, navigate)")]
    assert work.current == ""


def test_a_repeated_assignment_changes_nothing_and_cancel_stops_running_or_queued() -> None:
    work = TaskWork(frozenset({"navigate"}), work_s=5.0)
    _assign(work, "t1", 0.0)
    _assign(work, "t2", 0.0)
    assert _assign(work, "t1", 1.0) == [] and _assign(work, "t2", 1.0) == []
    cancelled = work.command(task_id="t2", action=ACTION_CANCEL, kind="", now_s=1.0)
    assert [(r.task_id, r.state) for r in cancelled] == [("t2", CANCELLED)]
    assert [(r.task_id, r.state) for r in work.command(task_id="t1", action=ACTION_CANCEL, kind="", now_s=1.0)] \
        == [("t1", CANCELLED)]
    assert work.command(task_id="nope", action=ACTION_CANCEL, kind="", now_s=1.0) == []
    assert work.advance(10.0) == [] and work.current == ""
