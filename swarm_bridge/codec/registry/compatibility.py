"""Compatibility levels and the check a registry runs at registration: BACKWARD, FORWARD, FULL, *_TRANSITIVE, NONE.

Levels (as in the Confluent registry; "new" is the schema being registered):
  BACKWARD  a reader of the new schema reads data written with the latest earlier version;
  FORWARD   a reader of the latest earlier version reads data written with the new schema;
  FULL      both; *_TRANSITIVE: against every earlier version, not only the latest; NONE: no check.
The rules of each format are in `avro_rules` and `protobuf_rules`, one `FORMAT_RULES` entry each.
A violation raises `IncompatibleSchema(subject, rule=<level>, field=<path>, problem)`; the
problem names the rule of the format that was broken.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from swarm_bridge.codec.errors import IncompatibleSchema, RegistryError
from swarm_bridge.codec.registry.avro_rules import avro_evolution
from swarm_bridge.codec.registry.protobuf_rules import history_violation, protobuf_evolution
from swarm_bridge.codec.registry.violation import Direction, Violation

__all__ = [
    "DEFAULT_COMPATIBILITY",
    "FORMAT_RULES",
    "LEVELS",
    "FormatRules",
    "check_compatibility",
    "normalize_level",
]

LEVELS = (
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
)
DEFAULT_COMPATIBILITY = "BACKWARD"


@dataclass(frozen=True)
class FormatRules:
    """One format's evolution rules: `evolution` compares the new schema with one earlier version in one
    direction; `permanent` (or None), named `permanent_rule`, holds against every earlier version whatever
    the level."""

    evolution: Callable[[Any, Any, Direction], Violation | None]
    permanent: Callable[[Any, Any], Violation | None] | None = None
    permanent_rule: str = ""


# Schema kind -> its rules. AVRO: schemas as parsed JSON or JSON text; PROTOBUF: FileDescriptorProto values.
FORMAT_RULES: Mapping[str, FormatRules] = {
    "AVRO": FormatRules(avro_evolution),
    "PROTOBUF": FormatRules(
        protobuf_evolution, permanent=history_violation, permanent_rule="field numbers are permanent"
    ),
}


def normalize_level(level: str, *, backend: str = "registry") -> str:
    """The level in upper case; RegistryError naming the valid options for anything else."""
    text = level.upper() if isinstance(level, str) else level
    if text not in LEVELS:
        raise RegistryError(
            backend,
            f"compatibility level {level!r} is not valid. Valid options are: {', '.join(LEVELS)}",
            "choose one of those",
        )
    return str(text)


def check_compatibility(
    subject: str,
    level: str,
    kind: str,
    new: Any,
    previous: Sequence[Any],
    *,
    versions: Sequence[int] | None = None,
) -> None:
    """Raise IncompatibleSchema if `new` may not follow `previous` (oldest first) under `level`.

    `kind` "AVRO": schemas as parsed JSON or JSON text; "PROTOBUF": FileDescriptorProto values.
    `versions`: the version numbers of `previous`, for the messages (default 1, 2, ...).
    """
    rule = normalize_level(level)
    if rule == "NONE" or not previous:
        return
    rules = FORMAT_RULES.get(kind)
    if rules is None:
        raise RegistryError(
            "compatibility", f"schema kind {kind!r} is not valid. Valid options are: {', '.join(FORMAT_RULES)}"
        )
    numbers = list(versions) if versions is not None else list(range(1, len(previous) + 1))
    pairs = list(zip(numbers, previous, strict=True))
    against = pairs if rule.endswith("_TRANSITIVE") else pairs[-1:]
    directions: list[Direction] = []
    if rule.startswith(("BACKWARD", "FULL")):
        directions.append("BACKWARD")
    if rule.startswith(("FORWARD", "FULL")):
        directions.append("FORWARD")
    for version, old in reversed(against):
        for direction in directions:
            found = rules.evolution(new, old, direction)
            if found is not None:
                if direction == "BACKWARD":
                    problem = f"the new schema cannot read data of version {version}"
                else:
                    problem = f"readers of version {version} cannot read data of the new schema"
                raise IncompatibleSchema(subject, rule, found.field, f"{problem}: {found.rule}: {found.problem}")
    if rules.permanent is not None:
        for version, old in pairs:
            found = rules.permanent(new, old)
            if found is not None:
                raise IncompatibleSchema(
                    subject, rule, found.field, f"{rules.permanent_rule} (version {version}): {found.problem}"
                )
