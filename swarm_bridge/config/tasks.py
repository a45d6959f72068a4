"""The robot bridge's `tasks` section: task kinds carried out through ROS 2 actions, each goal built from the task
by a declared mapping (goal field <- task source), its feedback read as progress, its result as the task's end."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from swarm_bridge.config.common import Strict
from swarm_bridge.config.errors import ConfigValueError

__all__ = ["SOURCES", "ActionTaskConfig", "GoalValue", "ProgressConfig", "TasksConfig", "parse_source"]

ACTION_TYPE = r"^[A-Za-z0-9_]+/action/[A-Za-z0-9_]+$"
ROS_NAME = r"^/[A-Za-z0-9_/~{}]*$"
FIELD_PATH = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
KIND = r"^[a-z0-9_]+$"

# What a goal field may be filled from: the TaskCommand's target pose, one of its parameters, or the task itself.
# `target.yaw` is the heading (rad) of target_pose; given to a Quaternion field it becomes that rotation about z.
SOURCES: dict[str, str] = {
    "target.x": "target_pose.pose.position.x",
    "target.y": "target_pose.pose.position.y",
    "target.z": "target_pose.pose.position.z",
    "target.yaw": "the heading of target_pose (rad), from its orientation",
    "target.frame": "target_pose.header.frame_id",
    "task.id": "the task id",
    "task.kind": "the task kind",
    "task.priority": "the task's priority (0..255)",
    "param.<name>": "the task parameter <name> (a string, converted to the goal field's type)",
}
_PARAM = re.compile(r"^param\.([A-Za-z0-9_.-]+)$")


def parse_source(text: str) -> tuple[str, str]:
    """`target.x` -> ("target.x", ""), `param.yaw` -> ("param", "yaw"); ConfigValueError naming the known ones."""
    if text in SOURCES and not text.startswith("param."):
        return text, ""
    found = _PARAM.match(text)
    if found:
        return "param", found.group(1)
    raise ConfigValueError(f"unknown source {text!r}; known: {', '.join(SOURCES)}")


class GoalValue(Strict):
    """A goal field's value: `from` a source (with a `default` when a parameter may be missing), or a constant
    `value`. A plain string in the mapping is the same as {from: <string>}."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True, validate_by_name=True)

    from_: str | None = Field(default=None, alias="from", description="a source, e.g. target.x or param.yaw")
    default: str | float | int | bool | None = Field(default=None, description="used when the task lacks the "
                                                     "parameter (param.<name> sources only)")
    value: str | float | int | bool | None = Field(default=None, description="a constant instead of a source")

    @model_validator(mode="after")
    def _one_of(self) -> GoalValue:
        if (self.from_ is None) == (self.value is None):
            raise ConfigValueError("give either from (a source) or value (a constant), exactly one")
        if self.from_ is not None:
            kind, _name = parse_source(self.from_)
            if self.default is not None and kind != "param":
                raise ConfigValueError(f"default applies to param.<name> sources only ({self.from_} is always there)")
        return self

    @property
    def source(self) -> tuple[str, str] | None:
        """(kind, parameter name) of `from`, None for a constant."""
        return parse_source(self.from_) if self.from_ is not None else None


class ProgressConfig(Strict):
    """How a feedback message becomes progress 0..1: one feedback field, read by one rule."""

    remaining: str | None = Field(default=None, description="a field counting down to 0 (e.g. "
                                  "distance_remaining): progress = 1 - value / the largest value seen")
    fraction: str | None = Field(default=None, description="a field already 0..1")
    percent: str | None = Field(default=None, description="a field 0..100")

    @model_validator(mode="after")
    def _one_rule(self) -> ProgressConfig:
        given = [name for name in ("remaining", "fraction", "percent") if getattr(self, name) is not None]
        if len(given) != 1:
            got = ", ".join(given) or "none"
            raise ConfigValueError(f"give exactly one of remaining, fraction, percent (got {got})")
        if not FIELD_PATH.match(str(getattr(self, given[0]))):
            raise ConfigValueError(f"{given[0]}: a feedback field path like distance_remaining or a.b "
                                   f"(got {getattr(self, given[0])!r})")
        return self

    @property
    def rule(self) -> tuple[str, str]:
        """(rule name, feedback field path)."""
        for name in ("remaining", "fraction", "percent"):
            value = getattr(self, name)
            if value is not None:
                return name, value
        raise ConfigValueError("no progress rule")  # unreachable: the validator wants one


class ActionTaskConfig(Strict):
    """One task kind carried out by a ROS 2 action: which action server, which type, how its goal is built."""

    action: str = Field(pattern=ROS_NAME, description="the action server's name; {robot_id} stands for the "
                        "robot's ROS namespace, e.g. /{robot_id}/navigate_to_pose")
    type: str = Field(pattern=ACTION_TYPE, description="the action type, e.g. nav2_msgs/action/NavigateToPose")
    goal: dict[str, GoalValue] = Field(default_factory=dict, description="goal field path -> source, e.g. "
                                       "pose.pose.position.x: target.x (a plain string is {from: <string>})")
    progress: ProgressConfig | None = Field(default=None, description="feedback -> progress; none: progress "
                                            "is reported 0 until the result")
    result_reason: list[str] = Field(default_factory=list, description="result fields named in the reason "
                                     "of a failed task, e.g. [error_code, error_msg]")
    server_timeout_s: float = Field(default=5.0, gt=0, description="no action server within this long: the "
                                    "task is rejected (the coordinator gives it to another robot)")

    @field_validator("goal", mode="before")
    @classmethod
    def _plain_sources(cls, value: Any) -> Any:
        """`path: target.x` is `path: {from: target.x}`; every path a goal field path."""
        if not isinstance(value, dict):
            return value
        for path in value:
            if not isinstance(path, str) or not FIELD_PATH.match(path):
                raise ConfigValueError(f"{path!r}: a goal field path is lower-case names joined by '.', e.g. "
                                       "pose.pose.position.x")
        return {path: {"from": v} if isinstance(v, str) else v for path, v in value.items()}

    @field_validator("result_reason")
    @classmethod
    def _fields(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not FIELD_PATH.match(name)]
        if bad:
            raise ConfigValueError(f"not a result field path: {', '.join(map(repr, bad))} (e.g. error_msg)")
        return value


class TasksConfig(Strict):
    """Tasks carried out by this bridge through ROS 2 actions: the TaskCommand topic it answers (a down route
    publishes there), the TaskStatus topic it reports on (an up route carries it) and one action per task kind."""

    command_topic: str = Field(default="/{robot_id}/task_command", pattern=ROS_NAME,
                               description="where a down route publishes TaskCommand")
    status_topic: str = Field(default="/{robot_id}/task_status", pattern=ROS_NAME,
                              description="where TaskStatus is published for an up route")
    actions: dict[str, ActionTaskConfig] = Field(min_length=1, description="task kind -> its action")
    unmapped: Literal["reject", "ignore"] = Field(default="reject", description="a task of a kind not listed: "
                                                  "reject it, or ignore it (another executor on the topic answers)")
    progress_max_hz: float = Field(default=2.0, gt=0, description="at most this many RUNNING reports a second "
                                   "per task from feedback")
    stop_wait_s: float = Field(default=3.0, ge=0, description="when the bridge stops: how long it waits for the "
                               "action servers to confirm the cancel of goals still running")

    @field_validator("actions")
    @classmethod
    def _kinds(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [kind for kind in value if not re.match(KIND, kind)]
        if bad:
            raise ConfigValueError(f"task kinds are lower-case letters, digits and '_' (got {', '.join(bad)})")
        return value
