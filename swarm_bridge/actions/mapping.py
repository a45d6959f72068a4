"""A task as an action goal: the declared mapping (goal field path <- task source) applied to a TaskCommand,
each value converted to its goal field's type; checked against the goal type's fields once, at start."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from swarm_bridge.actions.errors import GoalError, MappingError, ValueMismatch
from swarm_bridge.config.tasks import ActionTaskConfig, GoalValue

__all__ = ["CONVERSIONS", "GoalMapping", "TaskInput", "quaternion_of", "task_input", "yaw_of"]

QUATERNION = "geometry_msgs/Quaternion"
_INTS = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "octet", "char")


@dataclass(frozen=True)
class TaskInput:
    """What a TaskCommand gives a goal: the task, its target pose (heading as yaw) and its parameters."""

    task_id: str
    kind: str
    priority: int = 0
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    yaw: float = 0.0
    frame: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict)


def yaw_of(qx: float, qy: float, qz: float, qw: float) -> float:
    """The heading (rotation about z, rad) of a quaternion."""
    return math.atan2(2.0 * (qw * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz))


def quaternion_of(yaw: float) -> dict[str, float]:
    """A rotation of `yaw` rad about z as a geometry_msgs/Quaternion dict."""
    return {"x": 0.0, "y": 0.0, "z": math.sin(yaw / 2.0), "w": math.cos(yaw / 2.0)}


def task_input(body: Mapping[str, Any]) -> TaskInput:
    """A TaskCommand as a dict (ros.convert.message_to_dict) -> TaskInput."""
    pose = body.get("target_pose") or {}
    position = (pose.get("pose") or {}).get("position") or {}
    q = (pose.get("pose") or {}).get("orientation") or {}
    return TaskInput(
        task_id=str(body.get("task_id", "")), kind=str(body.get("kind", "")), priority=int(body.get("priority", 0)),
        x=float(position.get("x", 0.0)), y=float(position.get("y", 0.0)), z=float(position.get("z", 0.0)),
        yaw=yaw_of(float(q.get("x", 0.0)), float(q.get("y", 0.0)), float(q.get("z", 0.0)), float(q.get("w", 1.0))),
        frame=str((pose.get("header") or {}).get("frame_id", "")),
        parameters={str(p.get("key")): str(p.get("value")) for p in body.get("parameters") or []})


# Where each source's value comes from.
_SOURCES: dict[str, Callable[[TaskInput], Any]] = {
    "target.x": lambda t: t.x, "target.y": lambda t: t.y, "target.z": lambda t: t.z,
    "target.yaw": lambda t: t.yaw, "target.frame": lambda t: t.frame,
    "task.id": lambda t: t.task_id, "task.kind": lambda t: t.kind, "task.priority": lambda t: t.priority,
}


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueMismatch("a true/false, not a number")
    return float(value)


def _integer(value: Any) -> int:
    number = _number(value)
    if not number.is_integer():
        raise ValueMismatch("not a whole number")
    return int(number)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueMismatch("not true or false")


def _text(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueMismatch("a number, not a string")
    return str(value)


# Goal field type (as rosidl names it) -> how a source value becomes that field's value. A Quaternion takes a
# heading (rad), so `target.yaw` or a yaw parameter fills an orientation.
CONVERSIONS: dict[str, Callable[[Any], Any]] = {
    "double": _number, "float": _number, **dict.fromkeys(_INTS, _integer), "boolean": _boolean, "string": _text,
    QUATERNION: lambda value: quaternion_of(_number(value)),
}
_STRING_SOURCES = ("target.frame", "task.id", "task.kind")


@dataclass(frozen=True)
class _Rule:
    path: str
    value: GoalValue
    convert: Callable[[Any], Any]
    field_type: str


class GoalMapping:
    """One task kind's goal: built from a TaskInput by the config's mapping, against the goal type's fields
    (`field_types`: every field path of the goal, nested ones too, -> its rosidl type)."""

    def __init__(self, kind: str, config: ActionTaskConfig, field_types: Mapping[str, str]) -> None:
        self.kind = kind
        problems: list[MappingError] = []
        self._rules: list[_Rule] = []
        key = f"tasks.actions.{kind}.goal"
        for path, value in config.goal.items():
            field_type = field_types.get(path)
            if field_type is None:
                top = sorted(p for p in field_types if "." not in p)
                near = sorted(p for p in field_types if p.split(".")[-1] == path.split(".")[-1])
                hint = f"did you mean {', '.join(near)}?" if near else f"goal fields: {', '.join(top)}"
                problems.append(MappingError(f"{key}.{path}", f"{config.type} has no goal field {path}; {hint}"))
                continue
            convert = CONVERSIONS.get(field_type)
            if convert is None:
                problems.append(MappingError(f"{key}.{path}", f"a {field_type} field cannot be filled from one value; "
                                             "map its fields one by one (e.g. " + f"{path}.x)"))
                continue
            source = value.source
            if source is not None and source[0] in _STRING_SOURCES and field_type != "string":
                problems.append(MappingError(f"{key}.{path}", f"{value.from_} is a string, the field is {field_type}"))
                continue
            if source is None or value.default is not None:
                constant = value.value if source is None else value.default
                try:
                    convert(constant)
                except (TypeError, ValueError) as exc:
                    which = "value" if source is None else "default"
                    problems.append(MappingError(f"{key}.{path}.{which}", f"{constant!r} does not fit the "
                                                 f"{field_type} field: {exc}"))
                    continue
            self._rules.append(_Rule(path, value, convert, field_type))
        if problems:
            first = problems[0]
            raise MappingError(first.key, first.problem, also=problems[1:])

    def goal(self, task: TaskInput) -> dict[str, Any]:
        """The goal as a nested dict (for ros.convert.dict_to_message); GoalError for a missing or ill-formed
        parameter, naming it and the fix."""
        out: dict[str, Any] = {}
        for rule in self._rules:
            raw = self._raw(rule, task)
            try:
                value = rule.convert(raw)
            except (TypeError, ValueError) as exc:
                raise GoalError(self.kind, rule.path, f"{rule.value.from_ or 'value'} = {raw!r} does not fit the "
                                f"{rule.field_type} field ({exc})") from None
            _put(out, rule.path.split("."), value)
        return out

    def _raw(self, rule: _Rule, task: TaskInput) -> Any:
        source = rule.value.source
        if source is None:
            return rule.value.value
        kind, name = source
        if kind != "param":
            return _SOURCES[kind](task)
        if name in task.parameters:
            return task.parameters[name]
        if rule.value.default is not None:
            return rule.value.default
        raise GoalError(self.kind, rule.path, f"the task has no parameter '{name}' (it has: "
                        f"{', '.join(sorted(task.parameters)) or 'none'}); give it in the task's parameters or a "
                        f"default in the bridge config (tasks.actions.{self.kind}.goal.{rule.path}.default)")


def _put(out: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        out = out.setdefault(part, {})
    if isinstance(value, dict) and isinstance(out.get(parts[-1]), dict):
        out[parts[-1]].update(value)
    else:
        out[parts[-1]] = value
