"""The coordinator's decisions, with no Kafka in sight: submissions, robot reports and the clock in,
task events and commands out, for the shards this instance owns."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from swarm_bridge.coordinator.core.assignment import AssignmentPolicy, PlanPools, plan
from swarm_bridge.coordinator.core.events import TaskBook, TaskEvent, event_name, home_shard
from swarm_bridge.coordinator.core.fleet import FleetView
from swarm_bridge.coordinator.core.tasks import (
    ACTIVE,
    InvalidTask,
    Task,
    TaskRules,
    TaskState,
    assigned,
    cancel_requested,
    cancelled,
    due_ns,
    new_task,
    on_robot_lost,
    on_status,
    overdue,
    parse_request,
    rejected,
)
from swarm_bridge.routing.sharding import shard_of

__all__ = ["ASSIGN", "CANCEL", "CANCEL_KEY", "Command", "Dispatch", "EventRecord", "Forward", "Output", "cancel_doc"]

ASSIGN, CANCEL = 0, 1  # TaskCommand.ACTION_*
CANCEL_KEY = "cancel"
"""A record on the submit topic whose JSON object has this key is a cancel request: {"cancel": task_id, "reason":
str, "hops": int} (hops: how often it was passed on to the shard that owns the task)."""
_MAX_HOPS = 8  # a cancel passed on this often (views far behind) is dropped, counted


@dataclass(frozen=True)
class EventRecord:
    """A task event for partition `shard` of the event topic; `event` None is a tombstone (the task moved)."""

    shard: int
    task_id: str
    event: TaskEvent | None


@dataclass(frozen=True)
class Command:
    """A command for one robot, on partition `shard` (the robot's) of the commands topic."""

    shard: int
    robot_id: str
    action: int
    task: Task
    command_id: str


@dataclass(frozen=True)
class Forward:
    """A cancel request passed on to partition `shard` (the task's home) of the submit topic, keyed by task id:
    the task moved to a shard another instance owns."""

    shard: int
    task_id: str
    payload: bytes


Output = EventRecord | Command | Forward


def cancel_doc(task_id: str, reason: str = "", hops: int = 0) -> dict[str, Any]:
    """The cancel request for `task_id` as it goes on the submit topic (`CANCEL_KEY`)."""
    return {CANCEL_KEY: task_id, "reason": reason, "hops": hops}


class Dispatch:
    """Fleet view + task book + policy; acts only on tasks whose home shard is in `owned`."""

    def __init__(self, *, shards: int, kinds: Collection[str], rules: TaskRules, policy: AssignmentPolicy,
                 stale_after_ns: int, assign_limit: int = 2000) -> None:
        self.shards = shards
        self.kinds = frozenset(kinds)
        self.rules = rules
        self.policy = policy
        self.stale_after_ns = stale_after_ns
        self.assign_limit = assign_limit
        self.fleet = FleetView()
        self.book = self._new_book()
        self.owned: frozenset[int] = frozenset()
        self.counts: Counter[str] = Counter()  # every refusal and drop, by reason
        self._planned: tuple[int, int, frozenset[int]] | None = None
        self._pools = PlanPools()  # kept between rounds while the fleet stands still
        self._swept: frozenset[int] | None = None  # the shards whose every open task the last check looked at

    def _new_book(self) -> TaskBook:
        return TaskBook(due=lambda task: due_ns(task, self.rules))

    def reset(self) -> None:
        """Forget every robot and task and the owned shards (a round Kafka aborted): the caller folds them in
        again from the event log."""
        self.fleet = FleetView()
        self.book = self._new_book()
        self.owned = frozenset()
        self._planned = None
        self._pools = PlanPools()
        self._swept = None

    def owns(self, task: Task) -> bool:
        return home_shard(task, self.shards) in self.owned

    def submit(self, payload: bytes, key: str, now_ns: int) -> list[Output]:
        """One submission: a new queued task, a rejection with its reason, or nothing for a known task id."""
        try:
            request = parse_request(payload, kinds=self.kinds, now_ns=now_ns)
        except InvalidTask as error:
            task = rejected(error, key, now_ns)
            if task.task_id in self.book:
                self.counts["duplicate submission"] += 1
                return []
            self.counts[f"rejected: {error.field}"] += 1
            return self._change(None, task)
        if request.task_id in self.book:
            self.counts["duplicate submission"] += 1
            return []
        return self._change(None, new_task(request, now_ns))

    def status(self, *, robot_id: str, task_id: str, state: TaskState, reason: str, progress: float,
               now_ns: int) -> list[Output] | None:
        """A robot's report on a task; None when the task is unknown here (the caller may catch up and retry)."""
        task = self.book.get(task_id)
        if task is None:
            if self.book.forgotten(task_id):  # ended long ago: as any status of an ended task
                self.counts["stale status"] += 1
                return []
            return None
        new = on_status(task, robot_id=robot_id, state=state, reason=reason, progress=progress, now_ns=now_ns,
                        rules=self.rules)
        if new is None:
            if robot_id != task.robot_id or task.terminal:
                self.counts["stale status"] += 1
            return []
        return self._change(task, new)

    def cancel(self, task_id: str, now_ns: int, reason: str = "cancelled by request", *,
               confirmed: bool = False) -> list[Output] | None:
        """Cancel a task: the robot holding it (if any) gets a cancel command, and the task ends `cancelled` at once,
        or with `confirmed` (mode kafka) once the robot reports it (a queued one at once); None when the task is
        unknown here, [] when it has already ended (also long ago: forgotten) or a cancel is already under way."""
        task = self.book.get(task_id)
        if task is None:
            return [] if self.book.forgotten(task_id) else None
        new = (cancel_requested if confirmed else cancelled)(task, now_ns, reason)
        if new is None:
            return []
        out = self._change(task, new)
        if task.robot_id and task.state in ACTIVE:
            out.append(self._command(task, CANCEL))
        return out

    def request(self, payload: bytes, key: str, now_ns: int) -> list[Output] | None:
        """One record of the submit topic (mode kafka): a cancel request (`CANCEL_KEY`) or a submission (`submit`).
        A cancel of a task owned here is done, one of a task that moved to another shard is passed on there
        (`Forward`); None when the task is unknown here (the caller may catch up and retry)."""
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return self.submit(payload, key, now_ns)  # rejected with its reason
        if not isinstance(doc, dict) or CANCEL_KEY not in doc:
            return self.submit(payload, key, now_ns)
        task_id, reason, hops = doc.get(CANCEL_KEY), doc.get("reason") or "", doc.get("hops", 0)
        if not isinstance(task_id, str) or not isinstance(reason, str) or not isinstance(hops, int):
            self.counts["malformed cancel"] += 1
            return []
        task = self.book.get(task_id)
        if task is None:
            if self.book.forgotten(task_id):
                self.counts["cancel of an ended task"] += 1
                return []
            return None
        if self.owns(task):
            return self.cancel(task_id, now_ns, reason or "cancelled by request", confirmed=True)
        if task.terminal:
            self.counts["cancel of an ended task"] += 1
            return []
        if hops >= _MAX_HOPS:
            self.counts["cancel passed on too often"] += 1
            return []
        forward = json.dumps(cancel_doc(task_id, reason, hops + 1)).encode("utf-8")
        return [Forward(home_shard(task, self.shards), task_id, forward)]

    def tick(self, now_ns: int, *, check: bool = True) -> list[Output]:
        """Timeouts and lost robots (when `check`), then assignment of the owned queued tasks."""
        out: list[Output] = []
        if check:
            for task_id in sorted(self._to_check(now_ns)):
                task = self.book.get(task_id)
                if task is None or not self.owns(task):
                    continue
                new = self._lost(task, now_ns) or overdue(task, now_ns, self.rules)
                if new is not None:
                    out += self._change(task, new)
                    if self._left_on_robot(task, new):
                        out.append(self._command(task, CANCEL))
        seen = (self.book.changes, self.fleet.changes, self.owned)
        if not check and seen == self._planned:
            return out  # nothing new could make a queued task assignable; the periodic check replans anyway
        self._planned = seen
        queued = [t for t in (self.book.get(i) for i in self.book.queued) if t is not None and self.owns(t)]
        for task, robot_id in plan(queued, self.fleet, self.book.loads, self.policy, now_ns=now_ns,
                                   stale_after_ns=self.stale_after_ns, limit=self.assign_limit, kept=self._pools):
            new = assigned(task, robot_id, now_ns)
            out += self._change(task, new)
            out.append(self._command(new, ASSIGN))
        return out

    def _to_check(self, now_ns: int) -> set[str]:
        """The open tasks a check looks at: those fallen due and those on unknown or unreachable robots; every
        open task when the owned shards changed (tasks of new shards, due while another instance owned them)."""
        due = self.book.falling_due(now_ns)
        if self.owned != self._swept:
            self._swept = self.owned
            return self.book.active | self.book.queued
        holding = self.book.robots_holding()
        lost = (holding - self.fleet.ids()) | (self.fleet.unreachable(now_ns, self.stale_after_ns) & holding)
        return {*due, *(t.task_id for robot_id in lost for t in self.book.on_robot(robot_id))}

    @staticmethod
    def _left_on_robot(old: Task, new: Task) -> bool:
        """A timeout or a lost robot took the task from its robot (requeued, or failed): the robot may still have
        it and must be told to stop, unless it was told already (a cancel under way)."""
        on_robot = bool(old.robot_id) and old.state in ACTIVE and not old.cancel_reason
        return on_robot and (new.robot_id != old.robot_id or new.terminal)

    def _lost(self, task: Task, now_ns: int) -> Task | None:
        if not task.robot_id:
            return None
        robot = self.fleet.get(task.robot_id)
        if robot is None:
            return on_robot_lost(task, now_ns, self.rules, "is unknown")
        if not robot.online:
            if now_ns - robot.last_seen_ns < robot.offline_grace_ns:
                return None  # it goes on without the broker for a while (a VDA 5050 vehicle)
            return on_robot_lost(task, now_ns, self.rules, f"went offline ({robot.presence_reason or 'no reason'})")
        if not robot.reachable(now_ns, self.stale_after_ns):
            return on_robot_lost(task, now_ns, self.rules, f"silent for {self.stale_after_ns / 1e9:g} s")
        return None

    def _change(self, old: Task | None, new: Task) -> list[Output]:
        self.book.apply(new)
        home = home_shard(new, self.shards)
        out: list[Output] = [EventRecord(home, new.task_id, TaskEvent(event_name(old, new), new))]
        if old is not None and home_shard(old, self.shards) != home:
            out.append(EventRecord(home_shard(old, self.shards), old.task_id, None))
        return out

    def _command(self, task: Task, action: int) -> Command:
        """The command for `task` on its robot's shard; a cancel has an id of its own, since robots drop a
        command_id they have seen (the assignment's)."""
        command_id = task.command_id if action != CANCEL else f"{task.command_id}:cancel"
        return Command(shard_of(task.robot_id, self.shards), task.robot_id, action, task, command_id)
