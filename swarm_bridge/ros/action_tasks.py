"""Tasks through ROS 2 actions, on the robot: TaskCommand (from the bridge's down route) -> a goal to the task
kind's action server; its acceptance, feedback and result -> TaskStatus (for the bridge's up route). The logic
is swarm_bridge.actions (pure); this module only carries its effects out with rclpy."""

from __future__ import annotations

import importlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rclpy.action import ActionClient
from rclpy.action.client import ClientGoalHandle
from rclpy.node import Node

from swarm_bridge.actions import (
    ActionWork,
    CancelGoal,
    Effect,
    GoalLedger,
    GoalMapping,
    HeldTask,
    MappingError,
    Report,
    SendGoal,
    left_report,
    outcome,
    task_input,
)
from swarm_bridge.actions.outcome import RUNNING
from swarm_bridge.config import RobotBridgeConfig
from swarm_bridge.config.tasks import ActionTaskConfig
from swarm_bridge.ros.convert import dict_to_message, message_to_dict
from swarm_bridge.ros.errors import MessageFieldError
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.types import RosTypeError, message_class
from swarm_bridge.routing.naming import robot_topic

__all__ = ["ActionTasks", "action_class", "action_mapping", "check_actions", "field_types", "ledger_path"]

log = logging.getLogger(__name__)

POLL_S = 0.1  # how often goals waiting for their action server look again
STATE_NAMES = {2: "accepted", 3: "running", 4: "done", 5: "failed", 6: "cancelled", 7: "rejected"}  # TaskStatus
ACTION_FORM = "package/action/Name, e.g. nav2_msgs/action/NavigateToPose"
LEFT_WAIT_S = 5.0  # at most this long the reports on a dead run's tasks wait for the up route to match


def action_class(action_type: str) -> Any:
    """`nav2_msgs/action/NavigateToPose` -> its generated class; RosTypeError naming the fix."""
    parts = action_type.split("/")
    if len(parts) != 3 or parts[1] != "action" or not all(parts):
        raise RosTypeError(action_type, "not of the form package/action/Name", form=ACTION_FORM)
    try:
        module = importlib.import_module(f"{parts[0]}.action")
    except ImportError as exc:
        raise RosTypeError(action_type, f"package '{parts[0]}' has no actions installed ({exc})",
                           form=ACTION_FORM) from None
    cls = getattr(module, parts[2], None)
    if cls is None or not hasattr(cls, "Goal"):
        raise RosTypeError(action_type, f"package '{parts[0]}' has no action '{parts[2]}'", form=ACTION_FORM)
    return cls


def field_types(cls: Any, prefix: str = "") -> dict[str, str]:
    """Every field path of a message class, nested messages' fields too, -> its rosidl type name."""
    out: dict[str, str] = {}
    for name, kind in cls.get_fields_and_field_types().items():
        path = f"{prefix}{name}"
        out[path] = kind
        if "/" in kind and "<" not in kind and "[" not in kind:
            package, _, message = kind.partition("/")
            out.update(field_types(message_class(f"{package}/msg/{message}"), f"{path}."))
    return out


def _mapping(kind: str, config: ActionTaskConfig) -> tuple[Any, GoalMapping]:
    """The action class and goal mapping of one task kind; MappingError naming every key that does not fit."""
    key = f"tasks.actions.{kind}"
    try:
        cls = action_class(config.type)
    except RosTypeError as exc:
        raise MappingError(f"{key}.type", str(exc)) from None
    problems: list[MappingError] = []
    mapping: GoalMapping | None = None
    try:
        mapping = GoalMapping(kind, config, field_types(cls.Goal))
    except MappingError as exc:
        problems += [MappingError(k, p) for k, p in exc.each]
    if config.progress is not None:
        rule, path = config.progress.rule
        if path not in field_types(cls.Feedback):
            problems.append(MappingError(f"{key}.progress.{rule}", f"{config.type} feedback has no field {path}; "
                                         f"its fields: {', '.join(cls.Feedback.get_fields_and_field_types())}"))
    result = field_types(cls.Result)
    for name in config.result_reason:
        if name not in result:
            problems.append(MappingError(f"{key}.result_reason", f"{config.type} result has no field {name}; its "
                                         f"fields: {', '.join(cls.Result.get_fields_and_field_types())}"))
    if problems or mapping is None:
        raise MappingError(problems[0].key, problems[0].problem, also=problems[1:])
    return cls, mapping


def action_mapping(kind: str, config: ActionTaskConfig) -> tuple[Any, GoalMapping]:
    """The action class and goal mapping of one kind (a task kind, or a VDA 5050 node or actionType)."""
    return _mapping(kind, config)


def check_actions(config: RobotBridgeConfig) -> list[tuple[str, str]]:
    """(config key, problem) for every task kind whose action type, goal mapping, progress or result fields do
    not fit the installed action type (preflight: before any socket opens)."""
    problems: list[tuple[str, str]] = []
    for kind, action in (config.tasks.actions.items() if config.tasks else ()):
        try:
            _mapping(kind, action)
        except MappingError as exc:
            problems += exc.each
    return problems


def ledger_path(config: RobotBridgeConfig) -> Path:
    """Where the bridge keeps the tasks it holds: beside its spool (`<spool>.tasks.json`)."""
    spool = config.spool.file_for(config.fleet, config.robot_id)
    return spool.with_name(f"{spool.stem}.tasks.json")


class ActionTasks:
    """One robot's task kinds as action clients on the bridge's node, answering TaskCommand with TaskStatus."""

    def __init__(self, node: Node, config: RobotBridgeConfig) -> None:
        from swarm_bridge_msgs.msg import TaskCommand, TaskStatus

        tasks = config.tasks
        if tasks is None:
            raise MappingError("tasks", "no tasks section: nothing to carry out through actions")
        self.robot_id = config.robot_id
        self._node = node
        self._status_msg = TaskStatus
        self._actions: dict[str, str] = {}
        self._clients: dict[str, ActionClient] = {}
        self._types: dict[str, Any] = {}
        self._config = tasks
        mappings: dict[str, GoalMapping] = {}
        for kind, action in tasks.actions.items():
            cls, mappings[kind] = _mapping(kind, action)
            self._types[kind] = cls
            name = robot_topic(action.action, config.robot_id)
            self._actions[kind] = name
            self._clients[kind] = ActionClient(node, cls, name)
        self.work = ActionWork(mappings, progress={k: a.progress.rule for k, a in tasks.actions.items() if a.progress},
                               unmapped=tasks.unmapped, max_hz=tasks.progress_max_hz)
        self.reports: list[Report] = []
        self.dropped: Counter[str] = Counter()
        self._handles: dict[str, ClientGoalHandle] = {}
        self._goal_ids: dict[str, bytes] = {}
        self._command_ids: dict[str, str] = {}  # task -> the command that assigned it (kept on the ledger)
        self._waiting: dict[str, tuple[SendGoal, float]] = {}  # goals whose server has not answered yet
        self._orphans: list[tuple[str, bytes, float]] = []  # goals a dead run left: cancelled once a server answers
        # What each effect of the task logic (swarm_bridge.actions.work) is, on ROS.
        self._effects: dict[type, Callable[[Any], None]] = {Report: self._publish, SendGoal: self._queue_goal,
                                                             CancelGoal: self._cancel_goal}
        reliable = qos_preset("reliable")
        self._status = node.create_publisher(TaskStatus, robot_topic(tasks.status_topic, config.robot_id), reliable)
        self._commands = node.create_subscription(TaskCommand, robot_topic(tasks.command_topic, config.robot_id),
                                                  self._on_command, reliable)
        self._timer = node.create_timer(POLL_S, self._poll)
        self.ledger = GoalLedger(ledger_path(config))
        # The tasks a dead run held and the reports on them, published from the first poll on; on the ledger
        # until then.
        self._left: list[tuple[HeldTask, Report]] = []
        self._started = time.monotonic()
        left = self.ledger.load()
        # the commands of the tasks reported as left: redelivered after the crash (at least once), they are not
        # taken again; the coordinator's next assignment of such a task comes with a new command id
        self._spent = {task.command_id for task in left if task.command_id}
        self._left_behind(left)
        self._sync_ledger()
        log.info("robot %s: tasks through actions: %s", config.robot_id,
                 ", ".join(f"{kind} -> {self._actions[kind]} ({a.type})" for kind, a in tasks.actions.items()))

    # --- from the coordinator ---------------------------------------------------------------------------------

    def _on_command(self, msg: Any) -> None:
        try:
            body = message_to_dict(msg)
            task = task_input(body)
            action = int(body.get("action", 0))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            self._drop("unreadable command", str(exc))
            return
        if body.get("robot_id") and body["robot_id"] != self.robot_id:
            self._drop("for another robot", str(body["robot_id"]))
            return
        if action == msg.ACTION_ASSIGN:
            command_id = str(body.get("command_id") or "")
            if command_id and command_id in self._spent:
                self._drop("a command the last run held, reported at the restart", f"{task.task_id} ({command_id})")
                return
            self._command_ids[task.task_id] = command_id
            self._apply(self.work.assign(task))
        elif action == msg.ACTION_CANCEL:
            self._apply(self.work.cancel(task.task_id))
        else:
            self._drop("pause or resume (ROS 2 actions have neither)", f"task {task.task_id}, action {action}")

    # --- effects ----------------------------------------------------------------------------------------------

    def _apply(self, effects: list[Effect]) -> None:
        """Carry each effect out by its kind (the table in __init__), then bring the ledger up to date."""
        for effect in effects:
            self._effects[type(effect)](effect)
        self._sync_ledger()

    def _queue_goal(self, send: Any) -> None:
        self._waiting[send.task_id] = (send, time.monotonic())
        self._send_ready()

    def _cancel_goal(self, cancel: Any) -> None:
        handle = self._handles.get(cancel.task_id)
        if handle is not None:  # none yet: the cancel goes out once the goal is accepted (actions.work)
            handle.cancel_goal_async()

    def _send_ready(self) -> None:
        """Send the goals whose action server is there; reject those that waited longer than server_timeout_s."""
        now = time.monotonic()
        for task_id, (send, since) in list(self._waiting.items()):
            client = self._clients[send.kind]
            if client.server_is_ready():
                del self._waiting[task_id]
                self._send(send, client)
            elif now - since >= self._config.actions[send.kind].server_timeout_s:
                del self._waiting[task_id]
                timeout = self._config.actions[send.kind].server_timeout_s
                self._apply(self.work.rejected(task_id, f"no action server {self._actions[send.kind]} answered "
                                               f"within {timeout:g} s"))

    def _send(self, send: SendGoal, client: ActionClient) -> None:
        try:
            goal = dict_to_message(self._types[send.kind].Goal, send.goal)
        except MessageFieldError as exc:
            self._apply(self.work.rejected(send.task_id, f"goal not buildable: {exc}"))
            return
        goal_id = uuid.uuid4().bytes
        self._goal_ids[send.task_id] = goal_id
        self._sync_ledger()  # the goal id is on disk before the goal leaves
        from unique_identifier_msgs.msg import UUID

        future = client.send_goal_async(goal, feedback_callback=lambda fb: self._on_feedback(send.task_id, fb),
                                        goal_uuid=UUID(uuid=list(goal_id)))
        future.add_done_callback(lambda f: self._on_goal_response(send.task_id, send.kind, f))

    def _on_goal_response(self, task_id: str, kind: str, future: Any) -> None:
        try:
            handle = future.result()
        except Exception as exc:  # the request failed in rclpy: the task is refused, never lost
            self._goal_ids.pop(task_id, None)
            self._apply(self.work.rejected(task_id, f"sending the goal to {self._actions[kind]} failed: {exc}"))
            return
        if not handle.accepted:
            self._goal_ids.pop(task_id, None)
            self._apply(self.work.rejected(task_id, f"action server {self._actions[kind]} rejected the goal"))
            return
        self._handles[task_id] = handle
        self._apply(self.work.accepted(task_id))
        handle.get_result_async().add_done_callback(lambda f: self._on_result(task_id, kind, f))

    def _on_feedback(self, task_id: str, feedback: Any) -> None:
        try:
            body = message_to_dict(feedback.feedback)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            self._drop("unreadable feedback", str(exc))
            return
        self._apply(self.work.feedback(task_id, body, time.monotonic()))

    def _drop(self, reason: str, detail: str) -> None:
        """Count what cannot be used, by reason; the first of each reason is logged."""
        self.dropped[reason] += 1
        if self.dropped[reason] == 1:
            log.warning("robot %s: tasks through actions: dropped 1 (%s: %s); more are only counted", self.robot_id,
                        reason, detail)

    def _on_result(self, task_id: str, kind: str, future: Any) -> None:
        self._handles.pop(task_id, None)
        self._goal_ids.pop(task_id, None)
        try:
            response = future.result()
            status, result = int(response.status), message_to_dict(response.result)
        except Exception as exc:  # the result could not be had: the goal's end is unknown, the task failed
            status, result = 0, {"error": str(exc)}
        state, reason = outcome(status, result, action=self._actions[kind],
                                reason_fields=self._config.actions[kind].result_reason)
        self._apply(self.work.finished(task_id, state, reason))

    def _publish(self, report: Report) -> None:
        msg = self._status_msg()
        msg.task_id, msg.robot_id, msg.state = report.task_id, self.robot_id, report.state
        msg.reason, msg.progress = report.reason, float(report.progress)
        msg.stamp.sec, msg.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
        self._status.publish(msg)
        self.reports.append(report)
        log.log(logging.DEBUG if report.state == RUNNING else logging.INFO, "robot %s: task %s -> %s%s%s",
                self.robot_id, report.task_id, STATE_NAMES.get(report.state, report.state),
                f" {report.progress:.2f}" if report.state == RUNNING else "",
                f" ({report.reason})" if report.reason else "")

    def _poll(self) -> None:
        if self._left:
            self._publish_left()
        if self._waiting:
            self._send_ready()
        if self._orphans:
            self._cancel_orphans()

    def _publish_left(self, *, force: bool = False) -> None:
        """The reports on a dead run's tasks, once the up route's reader matched the status publisher (or at the
        latest after LEFT_WAIT_S, or at a stop)."""
        matched = self._status.get_subscription_count() > 0
        if force or matched or time.monotonic() - self._started > LEFT_WAIT_S:
            left, self._left = self._left, []
            taken = {task.task_id for task in self.work.held}
            for task, report in left:
                if task.task_id in taken:  # assigned again meanwhile (a new command): the coordinator knows the
                    self._drop("left task assigned again", task.task_id)  # old attempt ended; a report would end
                    continue  # the new one (reports name the task, not the attempt)
                self._publish(report)
            self._sync_ledger()  # reported: off the ledger

    # --- the ledger: held tasks survive a crash of the bridge ---------------------------------------------

    def _sync_ledger(self) -> None:
        held = {t.task_id for t in self.work.held}
        if len(self._command_ids) > len(held):  # the ended tasks' commands: not kept past their end
            self._command_ids = {task: command for task, command in self._command_ids.items() if task in held}
        try:
            self.ledger.sync([*(held for held, _report in self._left),
                              *(HeldTask(t.task_id, t.kind, self._actions.get(t.kind, ""),
                                         self._goal_ids.get(t.task_id, b"").hex(), self._command_ids.get(t.task_id, ""))
                                for t in self.work.held)])
        except OSError as exc:  # the ledger is a safety net for a crash: its loss must not stop the tasks
            self._drop("ledger not written", f"{self.ledger.path}: {exc}")

    def _left_behind(self, left: list[HeldTask]) -> None:
        """Tasks a run that died held: each reported (`left_report`: rejected if never started, failed if its goal
        was sent), and a goal it sent cancelled."""
        for task in left:
            self._left.append((task, left_report(task)))
            if task.goal_id and task.kind in self._clients:
                self._orphans.append((task.kind, bytes.fromhex(task.goal_id), time.monotonic()))

    def _cancel_orphans(self) -> None:
        from unique_identifier_msgs.msg import UUID

        now = time.monotonic()
        for item in list(self._orphans):
            kind, goal_id, since = item
            client = self._clients[kind]
            if client.server_is_ready():
                response = self._types[kind].Impl.SendGoalService.Response(accepted=True)
                ClientGoalHandle(client, UUID(uuid=list(goal_id)), response).cancel_goal_async()
                self._orphans.remove(item)
            elif now - since > self._config.actions[kind].server_timeout_s:
                self._orphans.remove(item)
                log.warning("robot %s: no action server %s to cancel goal %s of the last run", self.robot_id,
                            self._actions[kind], goal_id.hex())

    # --- stopping ---------------------------------------------------------------------------------------------

    def stop(self, spin: Callable[[Callable[[], bool], float], object]) -> None:
        """The bridge stops: queued tasks rejected, the running goal cancelled; `spin(done, timeout_s)` runs the
        node until the server confirmed (the result arrived) or `stop_wait_s`; what still runs is reported
        failed. Every report is published before this returns, for the up route to take."""
        self._apply(self.work.stop())  # first: nothing queued starts from here on
        for task_id in list(self._waiting):  # no server answered yet: the goal never left
            del self._waiting[task_id]
            self._apply(self.work.rejected(task_id, "bridge stopped before the goal was sent"))
        self._publish_left(force=True)
        if self.work.current is not None:
            spin(lambda: self.work.current is None, self._config.stop_wait_s)
        self._apply(self.work.stopped(self._config.stop_wait_s))
        self._sync_ledger()
        counts = Counter(r.state for r in self.reports)
        log.info("robot %s: tasks through actions: %d reports (%s)%s", self.robot_id, len(self.reports),
                 ", ".join(f"{STATE_NAMES.get(state, state)} {n}" for state, n in sorted(counts.items())),
                 f"; dropped: {dict(self.dropped)}" if self.dropped else "")

    def close(self) -> None:
        for client in self._clients.values():
            client.destroy()
        self._node.destroy_timer(self._timer)
