"""Coordinator core without brokers: validation, lifecycle, assignment, event folding, dispatch."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from swarm_bridge.coordinator.core.assignment import CostPolicy, PlanPools, RobotPool, plan
from swarm_bridge.coordinator.core.dispatch import ASSIGN, CANCEL, Command, Dispatch, EventRecord, Output
from swarm_bridge.coordinator.core.events import TaskBook, TaskEvent, decode_event, encode_event, home_shard
from swarm_bridge.coordinator.core.fleet import FleetView, RobotMode, RobotView
from swarm_bridge.coordinator.core.tasks import (
    InvalidTask,
    Task,
    TaskRules,
    TaskState,
    assigned,
    new_task,
    on_robot_lost,
    on_status,
    overdue,
    parse_request,
)
from swarm_bridge.routing import shard_of

S = 1_000_000_000
NOW = 1_700_000_000 * S
KINDS = {"navigate", "pick", "inspect", "charge"}
RULES = TaskRules(accept_timeout_ns=5 * S, run_timeout_ns=60 * S, max_attempts=2)


def request(task_id: str = "t1", **extra: Any) -> bytes:
    return json.dumps({"task_id": task_id, "kind": "navigate", "target": {"x": 1.0, "y": 2.0}, **extra}).encode()


def robot(robot_id: str, x: float = 0.0, *, caps: tuple[str, ...] = ("navigate",), battery: float = 80.0,
          mode: RobotMode = RobotMode.IDLE) -> RobotView:
    return RobotView(robot_id, "amr", frozenset(caps), mode, x, 0.0, 0.0, battery, last_seen_ns=NOW)


@pytest.mark.parametrize(("doc", "field", "why"), [
    (b"{not json", "payload", "not JSON"),
    (b"[1]", "payload", "expected a JSON object"),
    (json.dumps({"kind": "navigate"}).encode(), "task_id", "missing"),
    (request(kind="teleport"), "kind", "unknown capability 'teleport'"),
    (request(deadline_ns=NOW - S), "deadline_ns", "already past"),
    (request(priority=300), "priority", "0..255"),
    (request(target={"x": "far"}), "target.x", "finite number"),
    (request(colour="red"), "colour", "unknown field"),
    (request(parameters={"n": 3}), "parameters", "strings"),
])
def test_invalid_requests_name_field_and_reason(doc: bytes, field: str, why: str) -> None:
    with pytest.raises(InvalidTask, match=why) as info:
        parse_request(doc, kinds=KINDS, now_ns=NOW)
    assert info.value.field == field


def test_lifecycle_to_done_and_stale_reports_ignored() -> None:
    task = new_task(parse_request(request(), kinds=KINDS, now_ns=NOW), NOW)
    task = assigned(task, "r1", NOW)
    assert (task.state, task.attempts, task.command_id) == (TaskState.ASSIGNED, 1, "t1#1")
    assert on_status(task, robot_id="r2", state=TaskState.DONE, reason="", progress=1, now_ns=NOW, rules=RULES) is None
    for state in (TaskState.ACCEPTED, TaskState.RUNNING, TaskState.DONE):
        nxt = on_status(task, robot_id="r1", state=state, reason="", progress=0.5, now_ns=NOW, rules=RULES)
        assert nxt is not None and nxt.state is state and nxt.version == task.version + 1
        task = nxt
    assert on_status(task, robot_id="r1", state=TaskState.FAILED, reason="x", progress=1, now_ns=NOW,
                     rules=RULES) is None


def test_reject_and_loss_retry_then_fail() -> None:
    task = assigned(new_task(parse_request(request(), kinds=KINDS, now_ns=NOW), NOW), "r1", NOW)
    again = on_status(task, robot_id="r1", state=TaskState.REJECTED, reason="busy", progress=0, now_ns=NOW,
                      rules=RULES)
    assert again is not None and again.state is TaskState.QUEUED and again.excluded == ("r1",)
    second = assigned(again, "r2", NOW)
    lost = on_robot_lost(second, NOW, RULES, "went offline")
    assert lost is not None and lost.state is TaskState.FAILED and "gave up after 2 attempts" in lost.reason


def test_timeouts() -> None:
    task = assigned(new_task(parse_request(request(deadline_ns=NOW + 10 * S), kinds=KINDS, now_ns=NOW), NOW),
                    "r1", NOW)
    assert overdue(task, NOW + 4 * S, RULES) is None
    retry = overdue(task, NOW + 5 * S, RULES)
    assert retry is not None and retry.state is TaskState.QUEUED and "did not accept" in retry.reason
    late = overdue(retry, NOW + 10 * S, RULES)
    assert late is not None and late.state is TaskState.FAILED and "deadline" in late.reason


def fleet_of(*robots: RobotView) -> FleetView:
    fleet = FleetView()
    for r in robots:
        fleet.put(r)
    return fleet


def test_cost_policy_prefers_near_charged_unloaded_capable() -> None:
    fleet = fleet_of(robot("near", 1.0), robot("far", 50.0), robot("flat", 0.5, battery=5.0),
                     robot("arm", 0.0, caps=("pick",)), robot("broken", 0.0, mode=RobotMode.ERROR))
    task = new_task(parse_request(request(), kinds=KINDS, now_ns=NOW), NOW)
    policy = CostPolicy()
    assert plan([task], fleet, {}, policy, now_ns=NOW, stale_after_ns=10 * S) == [(task, "near")]
    assert plan([task], fleet, {"near": 3}, policy, now_ns=NOW, stale_after_ns=10 * S) == [(task, "far")]
    urgent = new_task(parse_request(request(deadline_ns=NOW + 5 * S), kinds=KINDS, now_ns=NOW), NOW)
    assert plan([urgent], fleet, {"near": 3}, policy, now_ns=NOW, stale_after_ns=10 * S) == []


def test_a_paused_vehicle_gets_no_new_task_until_it_resumes() -> None:
    near = replace(robot("near", 1.0), paused=True)
    fleet = fleet_of(near, robot("far", 50.0))
    task = new_task(parse_request(request(), kinds=KINDS, now_ns=NOW), NOW)
    assert plan([task], fleet, {}, CostPolicy(), now_ns=NOW, stale_after_ns=10 * S) == [(task, "far")]
    fleet.put(replace(near, paused=False))
    assert plan([task], fleet, {}, CostPolicy(), now_ns=NOW, stale_after_ns=10 * S) == [(task, "near")]


def test_plan_is_deterministic_and_honours_priority() -> None:
    rng = random.Random(7)
    robots = [robot(f"r{i:03d}", rng.uniform(0, 100)) for i in range(50)]
    tasks = [new_task(parse_request(request(f"t{i}", priority=rng.randrange(3),
                                            target={"x": rng.uniform(0, 100)}), kinds=KINDS, now_ns=NOW), NOW)
             for i in range(200)]
    first = plan(tasks, fleet_of(*robots), {}, CostPolicy(max_queue=1), now_ns=NOW, stale_after_ns=10 * S)
    again = plan(list(reversed(tasks)), fleet_of(*reversed(robots)), {}, CostPolicy(max_queue=1), now_ns=NOW,
                 stale_after_ns=10 * S)
    assert [(t.task_id, r) for t, r in first] == [(t.task_id, r) for t, r in again]
    assert len(first) == 50 and len({r for _, r in first}) == 50
    assert {t.request.priority for t, _ in first} == {2}  # the most urgent go first


def test_events_round_trip_and_fold_by_version() -> None:
    task = new_task(parse_request(request(parameters={"a": "b"}), kinds=KINDS, now_ns=NOW), NOW)
    moved = assigned(task, "r1", NOW + 1)
    assert decode_event(encode_event(TaskEvent("assigned", moved))) == TaskEvent("assigned", moved)
    book = TaskBook()
    assert book.fold([TaskEvent("assigned", moved), TaskEvent("submitted", task)]) == 1
    assert book.get("t1") == moved and book.loads == {"r1": 1} and book.active == {"t1"}


def test_ended_tasks_forgotten_stay_known_by_id_and_counted() -> None:
    d = dispatch(robot("r1"))
    for name in ("t1", "t2", "t3"):
        d.submit(request(name), name, NOW)
    d.tick(NOW)
    events: dict[str, list[TaskEvent]] = {}
    for name in ("t1", "t2"):
        for state in (TaskState.ACCEPTED, TaskState.RUNNING, TaskState.DONE):
            out, _ = outputs_of(d.status(robot_id="r1", task_id=name, state=state, reason="", progress=0.0,
                                         now_ns=NOW + S) or [])
            events.setdefault(name, []).extend(o.event for o in out if o.event is not None)
    book = d.book
    before = book.counts()
    assert before["done"] == 2 and before["assigned"] == 1
    assert book.forget_ended(NOW + S) == 0  # ended at NOW + S: not before it
    assert book.forget_ended(NOW + 2 * S) == 2
    assert book.counts() == before  # the forgotten ones still count where they ended
    assert book.get("t1") is None and book.forgotten("t1") and "t1" in book and len(book) == 3
    assert [t.task_id for t in book] == ["t3"]
    # an event of a forgotten task read again (a replay) changes nothing, not even an older one
    assert book.fold(events["t1"]) == 0 and book.get("t1") is None
    # a resubmission is still a duplicate; a late status is stale; a cancel finds it ended
    assert d.submit(request("t1"), "t1", NOW + 3 * S) == []
    assert d.status(robot_id="r1", task_id="t2", state=TaskState.DONE, reason="", progress=1.0,
                    now_ns=NOW + 3 * S) == []
    assert d.request(json.dumps({"cancel": "t2"}).encode(), "t2", NOW + 3 * S) == []
    assert d.cancel("t2", NOW + 3 * S) == []
    assert d.counts["duplicate submission"] == 1 and d.counts["stale status"] == 1
    assert d.counts["cancel of an ended task"] == 1
    assert d.status(robot_id="r1", task_id="never", state=TaskState.DONE, reason="", progress=1.0,
                    now_ns=NOW) is None  # unknown: the runner catches up and asks again


def test_task_counts_follow_every_change_without_walking_the_book() -> None:
    rng = random.Random(7)
    d = dispatch(robot("r1"), robot("r2", 5.0))
    for i in range(60):
        d.submit(request(f"t{i}"), f"t{i}", NOW + i)
        d.tick(NOW + i)
        for task in list(d.book):
            if task.robot_id and not task.terminal and rng.random() < 0.5:
                state = rng.choice([TaskState.ACCEPTED, TaskState.RUNNING, TaskState.DONE, TaskState.FAILED])
                d.status(robot_id=task.robot_id, task_id=task.task_id, state=state, reason="x", progress=0.5,
                         now_ns=NOW + i)
        walked = {state.value: 0 for state in TaskState}
        for task in d.book:
            walked[task.state.value] += 1
        assert d.book.counts() == walked


def outputs_of(out: list[Output]) -> tuple[list[EventRecord], list[Command]]:
    return [o for o in out if isinstance(o, EventRecord)], [o for o in out if isinstance(o, Command)]


def dispatch(*robots: RobotView) -> Dispatch:
    d = Dispatch(shards=4, kinds=KINDS, rules=RULES, policy=CostPolicy(), stale_after_ns=10 * S)
    d.owned = frozenset(range(4))
    for r in robots:
        d.fleet.put(r)
    return d


def test_dispatch_idempotent_submission_and_rejection_with_reason() -> None:
    d = dispatch(robot("r1"))
    assert len(d.submit(request("t1"), "t1", NOW)) == 1
    assert d.submit(request("t1", priority=9), "t1", NOW) == []
    events, _ = outputs_of(d.submit(request("bad", kind="fly"), "bad", NOW))
    assert events[0].event is not None and events[0].event.task.state is TaskState.REJECTED
    assert "unknown capability 'fly'" in events[0].event.task.reason
    assert d.counts == {"duplicate submission": 1, "rejected: kind": 1}
    assert [t.task_id for t in d.book if t.state is TaskState.QUEUED] == ["t1"]


def test_dispatch_assigns_then_reassigns_when_robot_goes_offline() -> None:
    d = dispatch(robot("r1", 0.0), robot("r2", 10.0))
    d.submit(request("t1"), "t1", NOW)
    events, commands = outputs_of(d.tick(NOW))
    assert [(c.robot_id, c.action, c.command_id) for c in commands] == [("r1", ASSIGN, "t1#1")]
    assert events[0].shard == home_shard(events[0].event.task, 4)  # type: ignore[union-attr]
    d.fleet.on_presence("r1", "offline", "last will", NOW + S)
    events, commands = outputs_of(d.tick(NOW + S))
    assert [(c.robot_id, c.action) for c in commands] == [("r1", CANCEL), ("r2", ASSIGN)]
    # robots drop a command_id they have seen: the cancel must not reuse the assignment's
    assert [c.command_id for c in commands] == ["t1#1:cancel", "t1#2"]
    task = d.book.get("t1")
    assert task is not None and task.robot_id == "r2" and task.history == ("r1", "r2") and task.attempts == 2


def test_a_task_whose_only_capable_robot_was_excluded_still_ends() -> None:
    """A task taken from the only robot that can do it (silent in a Kafka stall, say) goes back to that robot
    when it is back, rather than waiting queued for a robot that does not exist; attempts still end it."""
    d = dispatch(robot("r1"), robot("r2", caps=("pick",)))
    d.submit(request("t1"), "t1", NOW)
    _, commands = outputs_of(d.tick(NOW))
    assert [(c.robot_id, c.action) for c in commands] == [("r1", ASSIGN)]
    d.fleet.on_presence("r1", "offline", "last will", NOW + S)
    outputs_of(d.tick(NOW + S))
    assert d.book.get("t1").excluded == ("r1",)  # type: ignore[union-attr]
    d.fleet.on_presence("r1", "online", "back", NOW + 2 * S)
    _, commands = outputs_of(d.tick(NOW + 2 * S))
    assert [(c.robot_id, c.action, c.command_id) for c in commands] == [("r1", ASSIGN, "t1#2")]
    d.fleet.on_presence("r1", "offline", "last will", NOW + 3 * S)
    outputs_of(d.tick(NOW + 3 * S))
    task = d.book.get("t1")
    assert task is not None and task.state is TaskState.FAILED and "gave up after 2 attempts" in task.reason


def test_dispatch_acts_only_on_owned_shards() -> None:
    d = dispatch(robot("r1"))
    d.submit(request("t1"), "t1", NOW)
    d.owned = frozenset(range(4)) - {home_shard(d.book.get("t1"), 4)}  # type: ignore[arg-type]
    assert d.tick(NOW) == []


class ScanEveryRobot:
    """The cost policy's formula over every robot, no grid: the reference the grid search must equal."""

    def __init__(self, policy: CostPolicy) -> None:
        self.policy = policy
        self.max_queue = policy.max_queue

    def choose(self, task: Task, pool: RobotPool, loads: Mapping[str, int], now_ns: int) -> str | None:
        p, t = self.policy, task.request.target
        costs = []
        for r in pool.robots:
            load = loads.get(r.robot_id, 0)
            if load >= p.max_queue or r.battery_percent < p.min_battery_percent:
                continue
            eta = math.dist((r.x, r.y, r.z), (t.x, t.y, t.z)) / p.speed_mps + load * p.task_s
            costs.append((eta + p.battery_weight / 100 * (100 - r.battery_percent) + p.queue_weight * load,
                          r.robot_id))
        return min(costs)[1] if costs else None


def test_grid_search_picks_what_a_full_scan_picks() -> None:
    rng = random.Random(11)
    robots = [robot(f"r{i:03d}", rng.choice([rng.uniform(-50, 150), 5.0]), battery=rng.uniform(10, 100))
              for i in range(300)]
    robots = [RobotView(r.robot_id, r.kind, r.capabilities, r.mode, r.x, rng.uniform(0, 100), 0.0, r.battery_percent,
                        last_seen_ns=NOW) for r in robots]
    tasks = [new_task(parse_request(request(f"t{i}", target={"x": rng.uniform(-300, 300), "y": rng.uniform(-9, 99)}),
                                    kinds=KINDS, now_ns=NOW), NOW) for i in range(1000)]
    loads = {r.robot_id: rng.randrange(3) for r in robots}
    policy = CostPolicy(max_queue=4)
    fast = plan(tasks, fleet_of(*robots), loads, policy, now_ns=NOW, stale_after_ns=10 * S)
    slow = plan(tasks, fleet_of(*robots), loads, ScanEveryRobot(policy), now_ns=NOW, stale_after_ns=10 * S)
    assert [(t.task_id, r) for t, r in fast] == [(t.task_id, r) for t, r in slow]
    room = sum(4 - loads[r.robot_id] for r in robots if r.battery_percent >= 20)
    assert room < 1000 and len(fast) == room  # every free slot of a charged robot is used, no more


def test_pools_kept_between_rounds_pick_what_fresh_pools_pick() -> None:
    """Rounds of a few tasks while loads rise and fall, robots report, pause, go offline and go stale: the pools
    kept from round to round give the same pairs as pools built anew each round, and are reused while the fleet
    stands still."""
    rng = random.Random(11)
    kinds = sorted(KINDS)
    fleet = fleet_of(*(replace(robot(f"r{i:03d}", rng.uniform(0, 100), caps=tuple(rng.sample(kinds, 2)),
                                     battery=rng.uniform(10, 100)), y=rng.uniform(0, 100),
                               capacity=rng.choice([0, 0, 1])) for i in range(120)))
    policy = CostPolicy(max_queue=2)
    kept = PlanPools()
    loads: dict[str, int] = {}
    reused = 0
    for round_ in range(300):
        now = NOW + round_ * S // 10
        change = rng.random()
        if change < 0.1:  # a robot reports from elsewhere
            moved = fleet.get(f"r{rng.randrange(120):03d}")
            assert moved is not None
            fleet.put(replace(moved, x=rng.uniform(0, 100), last_seen_ns=now, paused=rng.random() < 0.2))
        elif change < 0.15:
            fleet.on_presence(f"r{rng.randrange(120):03d}", rng.choice(["online", "offline"]), "", now)
        for robot_id in [r for r in loads if rng.random() < 0.3]:  # tasks end
            loads[robot_id] -= 1
            if not loads[robot_id]:
                del loads[robot_id]
        tasks = [new_task(parse_request(request(f"t{round_}-{j}", kind=rng.choice(kinds), priority=rng.randrange(3),
                                                target={"x": rng.uniform(0, 100), "y": rng.uniform(0, 100)}),
                                        kinds=KINDS, now_ns=now), now) for j in range(rng.randrange(1, 4))]
        stale = 20 * S  # from round 200 on, the robots not heard from since the start go stale
        pools_before = dict(kept.pools)
        fresh = plan(tasks, fleet, loads, policy, now_ns=now, stale_after_ns=stale)
        again = plan(tasks, fleet, loads, policy, now_ns=now, stale_after_ns=stale, kept=kept)
        assert [(t.task_id, r) for t, r in again] == [(t.task_id, r) for t, r in fresh], round_
        reused += any(kept.pools.get(k) is v for k, v in pools_before.items())
        for _task, robot_id in fresh:  # the dispatch books each pick
            loads[robot_id] = loads.get(robot_id, 0) + 1
    assert reused > 100


def test_a_batch_writes_each_task_once_at_its_last_home() -> None:
    from swarm_bridge.coordinator.kafka.runner import coalesce

    d = dispatch(robot("r1"))
    out = d.submit(request("t1"), "t1", NOW) + d.tick(NOW)
    kept = coalesce(out)
    events, commands = outputs_of(kept)
    task = d.book.get("t1")
    assert task is not None and len(commands) == 1
    full = [e for e in events if e.event is not None]
    assert [(e.shard, e.event.task.state) for e in full if e.event] == [(home_shard(task, 4), TaskState.ASSIGNED)]
    assert [e for e in events if e.event is None] == []  # t1 was born in this batch: nothing to delete where


def test_a_task_that_moves_home_after_its_batch_leaves_a_tombstone_where_it_was() -> None:
    from swarm_bridge.coordinator.kafka.runner import coalesce

    d = dispatch()
    task_id = next(f"t{i}" for i in range(100) if shard_of(f"t{i}", 4) != shard_of("r1", 4))
    assert coalesce(d.submit(request(task_id), task_id, NOW))  # committed in an earlier batch, on its id's shard
    d.fleet.put(robot("r1"))  # a robot that can take it comes online
    events, commands = outputs_of(coalesce(d.tick(NOW)))
    assert len(commands) == 1
    assert [e.shard for e in events if e.event is None] == [shard_of(task_id, 4)]
    assert [e.shard for e in events if e.event is not None] == [shard_of("r1", 4)]


def test_fleet_status_table_lists_robots_and_open_tasks() -> None:
    from swarm_bridge.coordinator.core.table import fleet_tables

    fleet = fleet_of(robot("amr_007", 1.5), RobotView("drone_002", "drone", frozenset({"fly"}), RobotMode.IDLE,
                                                      online=False, last_seen_ns=NOW))
    book = TaskBook()
    book.apply(assigned(new_task(parse_request(request("deliver-42", priority=5), kinds=KINDS, now_ns=NOW), NOW),
                        "amr_007", NOW))
    text = fleet_tables(fleet, book, now_ns=NOW, stale_after_ns=10 * S, max_tasks=5)
    lines = text.splitlines()
    assert lines[0] == "robots: 2 (1 online)"
    assert lines[3].split() == ["amr_007", "amr", "online", "idle", "80%", "(1.5,", "0.0)", "1", "-", "navigate"]
    assert lines[4].split()[:4] == ["drone_002", "drone", "OFFLINE", "idle"]
    assert "tasks: queued 0, assigned 1," in text
    assert lines[-1].split() == ["deliver-42", "navigate", "assigned", "amr_007", "5", "1", "-"]
    assert all(line == line.rstrip() for line in lines)



def test_drop_log_counts_every_drop_and_keeps_the_log_short() -> None:
    """One mechanism for both coordinator modes: every drop counted (counts and metric); the first ten of a reason
    logged with their detail, then one line per reason a minute with how many more."""
    import logging
    from collections import Counter

    from swarm_bridge.coordinator.core.drops import DropLog
    from swarm_bridge.coordinator.metrics import CoordinatorMetrics

    class Lines(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(record.getMessage())

    log = logging.getLogger("test.drops")
    handler = Lines()
    log.addHandler(handler)
    now = [0.0]
    counts: Counter[str] = Counter()
    metrics = CoordinatorMetrics()
    drops = DropLog("instance i1", counts, metrics.dropped, log, clock=lambda: now[0])
    try:
        for n in range(25):
            drops("malformed status", f"status[0]@{n}: bad")
        drops("status for an unknown task", "amr_1: task t9")
        now[0] = 30.0
        for n in range(25, 30):
            drops("malformed status", f"status[0]@{n}: bad")
        assert len(handler.lines) == 11
        now[0] = 61.0
        drops("malformed status", "status[0]@30: bad")
        now[0] = 62.0
        drops("malformed status", "status[0]@31: bad")
    finally:
        log.removeHandler(handler)
    assert counts == {"malformed status": 32, "status for an unknown task": 1}
    assert metrics.dropped.labels("malformed status")._value.get() == 32
    assert handler.lines[0] == "instance i1: dropped (malformed status): status[0]@0: bad"
    assert "further drops of this reason are counted" in handler.lines[9]
    assert handler.lines[10] == "instance i1: dropped (status for an unknown task): amr_1: task t9"
    assert handler.lines[11:] == ["instance i1: dropped (malformed status): 21 more in the last 61 s (31 in all); "
                                  "latest: status[0]@30: bad"]


def test_a_robot_is_last_seen_at_its_newest_record_whatever_order_the_topics_are_read_in() -> None:
    """A snapshot or a rebuild reads the state and presence topics in no set order across topics: an older
    presence record folded after newer states must not make the robot look silent."""
    fleet = FleetView()
    body = {"robot_id": "amr_007", "robot_kind": "amr", "capabilities": ["navigate"], "mode": 1,
            "pose": {"pose": {"position": {"x": 1.0, "y": 2.0, "z": 0.0}}}, "battery_percent": 80.0,
            "charging": False, "current_task_id": ""}
    second = 1_000_000_000
    fleet.on_state(body, 100 * second)
    fleet.on_presence("amr_007", "online", "connected", 40 * second)  # written before the states, read after
    robot = fleet.get("amr_007")
    assert robot is not None and robot.last_seen_ns == 100 * second
    assert robot.reachable(105 * second, 10 * second)
    fleet.on_state(body, 90 * second)  # an older state read late does not move it back either
    assert fleet.get("amr_007").last_seen_ns == 100 * second  # type: ignore[union-attr]


def test_a_stalled_broker_s_coordinator_load_is_waited_out_and_a_fatal_error_is_not() -> None:
    """init_transactions against a broker paused at start answers COORDINATOR_LOAD_IN_PROGRESS (not flagged
    retriable): the instance asks again instead of exiting; a fatal error still ends it at once."""
    from types import SimpleNamespace

    from confluent_kafka import KafkaError, KafkaException

    from swarm_bridge.coordinator.kafka.runner import CoordinatorInstance

    instance = CoordinatorInstance.__new__(CoordinatorInstance)
    instance.instance_id = "unit"
    instance.config = SimpleNamespace(kafka=SimpleNamespace(transaction_timeout_s=30.0, connect_timeout_s=0.01))  # type: ignore[assignment]
    answers = [KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS), KafkaError(KafkaError._TIMED_OUT), None]
    calls: list[float] = []

    def init_transactions(timeout: float) -> None:
        calls.append(timeout)
        error = answers.pop(0)
        if error is not None:
            raise KafkaException(error)

    instance._patiently("initialise the transactional producer", init_transactions)
    assert len(calls) == 3 and not answers

    def fenced(timeout: float) -> None:
        calls.append(timeout)
        raise KafkaException(KafkaError(KafkaError._FENCED, fatal=True))

    calls.clear()
    with pytest.raises(KafkaException):
        instance._patiently("initialise the transactional producer", fenced)
    assert len(calls) == 1


@pytest.mark.parametrize(("name", "builtin"), [
    ("CoordinatorSettingError", ValueError), ("RecordBodyError", ValueError), ("TaskStateError", ValueError),
    ("InvalidTask", ValueError)])
def test_coordinator_errors_are_project_errors_that_keep_their_builtin(name: str, builtin: type[Exception]) -> None:
    from swarm_bridge.coordinator import core
    from swarm_bridge.coordinator.kafka.topics import TopicMismatch
    from swarm_bridge.coordinator.site.client import SiteUnreachable
    from swarm_bridge.errors import SwarmBridgeError

    error = getattr(core, name)
    assert issubclass(error, core.CoordinatorError) and issubclass(error, SwarmBridgeError)
    assert issubclass(error, builtin)
    assert issubclass(TopicMismatch, core.CoordinatorError) and issubclass(TopicMismatch, RuntimeError)
    assert issubclass(SiteUnreachable, core.CoordinatorError) and issubclass(SiteUnreachable, ConnectionError)
