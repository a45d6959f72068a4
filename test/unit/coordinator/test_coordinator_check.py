"""The coordinator's periodic check without brokers: it looks only at tasks fallen due and tasks on lost robots, and
decides exactly what a walk over every open task decides."""

from __future__ import annotations

import json
import random

import pytest

from swarm_bridge.coordinator.core.assignment import CostPolicy
from swarm_bridge.coordinator.core.dispatch import Dispatch
from swarm_bridge.coordinator.core.events import TaskBook
from swarm_bridge.coordinator.core.fleet import FleetView, RobotMode, RobotView
from swarm_bridge.coordinator.core.tasks import (
    Task,
    TaskRules,
    TaskState,
    assigned,
    cancel_requested,
    due_ns,
    new_task,
    on_status,
    overdue,
    parse_request,
)

S = 1_000_000_000
NOW = 1_700_000_000 * S
RULES = TaskRules(accept_timeout_ns=5 * S, run_timeout_ns=60 * S, max_attempts=3)


def request(task_id: str, **extra: object) -> bytes:
    return json.dumps({"task_id": task_id, "kind": "navigate", "target": {"x": 1.0, "y": 2.0}, **extra}).encode()


def queued(task_id: str = "t1", **extra: object) -> Task:
    return new_task(parse_request(request(task_id, **extra), kinds={"navigate"}, now_ns=NOW), NOW)


def tasks_in_every_state() -> list[Task]:
    on_robot = assigned(queued(), "r1", NOW)
    accepted = on_status(on_robot, robot_id="r1", state=TaskState.ACCEPTED, reason="", progress=0, now_ns=NOW + S,
                         rules=RULES)
    assert accepted is not None
    running = on_status(accepted, robot_id="r1", state=TaskState.RUNNING, reason="", progress=0.5,
                        now_ns=NOW + 2 * S, rules=RULES)
    done = on_status(accepted, robot_id="r1", state=TaskState.DONE, reason="", progress=1, now_ns=NOW + 3 * S,
                     rules=RULES)
    cancelling = cancel_requested(accepted, NOW + 4 * S, "operator")
    assert running is not None and done is not None and cancelling is not None
    return [queued(), queued("t2", deadline_ns=NOW + 30 * S), on_robot, accepted, running, done, cancelling]


@pytest.mark.parametrize("task", tasks_in_every_state(), ids=lambda t: f"{t.state.value}-{t.version}")
def test_a_task_falls_due_exactly_when_overdue_first_has_something_to_say(task: Task) -> None:
    due = due_ns(task, RULES)
    if due is None:
        assert overdue(task, NOW + 10**6 * S, RULES) is None
        return
    assert overdue(task, due - 1, RULES) is None
    assert overdue(task, due, RULES) is not None


def test_the_fleet_finds_the_unreachable_robots_a_walk_over_every_robot_finds() -> None:
    rng = random.Random(7)
    fleet = FleetView()
    stale = 10 * S
    for step in range(400):
        robot_id = f"r{rng.randrange(60)}"
        heard = NOW + rng.randrange(40 * S)
        if rng.random() < 0.2:
            fleet.on_presence(robot_id, rng.choice(["online", "offline"]), "test", heard)
        else:
            old = fleet.get(robot_id) or RobotView(robot_id, "amr", frozenset({"navigate"}), RobotMode.IDLE)
            fleet.put(RobotView(robot_id, old.kind, old.capabilities, old.mode, last_seen_ns=heard,
                                online=old.online))
        now = NOW + rng.randrange(55 * S)
        cuts = [now, NOW + 20 * S + stale, (fleet.get(robot_id) or RobotView("")).last_seen_ns + stale]
        for at in cuts:  # the cut exactly on a robot's last-heard time too
            walked = {r.robot_id for r in fleet if not r.reachable(at, stale)}
            assert fleet.unreachable(at, stale) == walked, f"step {step}"
            assert fleet.reachable_count(at, stale) == len(fleet) - len(walked)


def test_the_due_list_stays_as_small_as_the_open_tasks() -> None:
    book = TaskBook(due=lambda task: due_ns(task, RULES))
    task = assigned(queued(), "r1", NOW)
    book.apply(task)
    for i in range(5000):  # one task reporting progress over and over: a version each time, none due yet
        nxt = on_status(task, robot_id="r1", state=TaskState.RUNNING, reason="", progress=(i % 100) / 100,
                        now_ns=NOW + i, rules=RULES)
        assert nxt is not None
        book.apply(task := nxt)
        book.falling_due(NOW)
    assert len(book._due) <= 2 * 1 + 1024 + 1
    assert book.falling_due(NOW + 4999 + RULES.run_timeout_ns) == ["t1"]  # its latest version, once
    assert book.falling_due(NOW + 10**6 * S) == []


def robot(robot_id: str, x: float, heard: int) -> RobotView:
    return RobotView(robot_id, "amr", frozenset({"navigate"}), RobotMode.IDLE, x, 0.0, 0.0, 80.0, last_seen_ns=heard)


def fleet_dispatch(owned: frozenset[int] = frozenset(range(4))) -> Dispatch:
    d = Dispatch(shards=4, kinds={"navigate"}, rules=RULES, policy=CostPolicy(max_queue=2), stale_after_ns=10 * S)
    d.owned = owned
    return d


def test_a_check_decides_what_a_walk_over_every_open_task_decides() -> None:
    """Two dispatches fed the same fleet life (robots heard, silent, offline, back; tasks accepted, run, done,
    rejected, cancelled, past deadlines); one checks by its due list and lost robots, the other walks every open
    task each check. Every round's output must be the same."""
    rng = random.Random(11)
    fast, walking = fleet_dispatch(), fleet_dispatch()
    now = NOW
    robots = [f"r{i}" for i in range(12)]
    states = [TaskState.ACCEPTED, TaskState.RUNNING, TaskState.DONE, TaskState.REJECTED, TaskState.FAILED]
    decided = 0
    for step in range(1500):
        now += rng.randrange(S // 2, 3 * S)
        for d in (fast, walking):
            for i, robot_id in enumerate(robots):
                if (i + step) % 5:  # most robots heard each step, some go silent for a while
                    d.fleet.put(robot(robot_id, float(i), now))
        event = rng.random()
        if event < 0.35:
            extra = {"deadline_ns": now + rng.randrange(2 * S, 20 * S)} if rng.random() < 0.3 else {}
            for d in (fast, walking):
                d.submit(request(f"t{step}", **extra), f"t{step}", now)
        elif event < 0.75 and walking.book.active:
            task_id = rng.choice(sorted(walking.book.active))
            task = walking.book.get(task_id)
            assert task is not None
            state = rng.choice(states)
            for d in (fast, walking):
                d.status(robot_id=task.robot_id, task_id=task_id, state=state, reason="", progress=0.5, now_ns=now)
        elif event < 0.85:
            robot_id, presence = rng.choice(robots), rng.choice(["online", "offline"])
            for d in (fast, walking):
                d.fleet.on_presence(robot_id, presence, "test", now)
        elif event < 0.9 and walking.book.active:
            task_id = rng.choice(sorted(walking.book.active))
            for d in (fast, walking):
                d.cancel(task_id, now, "operator", confirmed=True)
        walking._swept = None  # walk every open task, as the check did before it kept a due list
        got, want = fast.tick(now), walking.tick(now)
        assert got == want, f"step {step}"
        decided += len(want)
    assert decided > 1000
    assert fast.book.counts() == walking.book.counts()
    ended = fast.book.counts()
    assert ended["failed"] and ended["done"] and ended["cancelled"]


def test_tasks_that_fell_due_under_another_owner_are_checked_once_their_shards_come_here() -> None:
    d = fleet_dispatch()
    d.fleet.put(robot("r1", 0.0, NOW))
    d.submit(request("t1"), "t1", NOW)
    assert d.tick(NOW)
    d.owned = frozenset()  # the shard moves away while the task falls due
    d.fleet.put(robot("r1", 0.0, NOW + 6 * S))
    assert d.tick(NOW + 6 * S) == []
    d.owned = frozenset(range(4))  # and comes back: the check looks at every open task of it once
    d.fleet.put(robot("r1", 0.0, NOW + 7 * S))
    d.tick(NOW + 7 * S)
    requeued = d.book.get("t1")
    assert requeued is not None and "did not accept" in requeued.reason and requeued.history == ("r1", "r1")
