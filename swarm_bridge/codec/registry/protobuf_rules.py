"""Protobuf schema evolution, on FileDescriptorProto values (the wire carries field numbers, not names).

- a field number keeps its wire type group: varint (int32, int64, uint32, uint64, bool, enum),
  zigzag (sint32, sint64), fixed32 (fixed32, sfixed32), fixed64 (fixed64, sfixed64), float,
  double, length (string, bytes), a message (same type name), group;
- a field number keeps its label (repeated or not) and its oneof;
- numbers and their types are permanent: a field number of ANY earlier version (not only the
  compared one) must not come back with another type, and a number reserved earlier is not reused;
- a message of the earlier version must still exist under the same name (no renames/removals);
- proto2 `required`: adding one breaks BACKWARD, removing one breaks FORWARD;
- the package may not change, except for its last component when that is a version
  (`swarm_bridge.fleet.v1` -> `swarm_bridge.fleet.v2`): the fleet's twins version their
  package so that both generations load in one process.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from swarm_bridge.codec.registry.violation import Direction, Violation

__all__ = ["history_violation", "protobuf_evolution", "protobuf_violation"]

_WIRE_GROUPS = {
    1: "double",
    2: "float",
    3: "varint",
    4: "varint",
    5: "varint",
    6: "fixed64",
    7: "fixed32",
    8: "varint",
    9: "length",
    10: "group",
    11: "message",
    12: "length",
    13: "varint",
    14: "varint",
    15: "fixed32",
    16: "fixed64",
    17: "zigzag",
    18: "zigzag",
}
_TYPE_NAMES = {
    1: "double",
    2: "float",
    3: "int64",
    4: "uint64",
    5: "int32",
    6: "fixed64",
    7: "fixed32",
    8: "bool",
    9: "string",
    10: "group",
    11: "message",
    12: "bytes",
    13: "uint32",
    14: "enum",
    15: "sfixed32",
    16: "sfixed64",
    17: "sint32",
    18: "sint64",
}
_LABEL_REQUIRED = 2
_LABEL_REPEATED = 3
_VERSION_COMPONENT = re.compile(r"v\d+")


def _relative(type_name: str, package: str) -> str:
    name = type_name.lstrip(".")
    prefix = f"{package}." if package else ""
    return name[len(prefix) :] if prefix and name.startswith(prefix) else name


def _messages(fdp: Any) -> Iterator[tuple[str, Any]]:
    def walk(prefix: str, messages: Any) -> Iterator[tuple[str, Any]]:
        for message in messages:
            name = f"{prefix}{message.name}"
            yield name, message
            yield from walk(f"{name}.", message.nested_type)

    yield from walk("", fdp.message_type)


def _field_type(field: Any, package: str) -> str:
    type_name = _TYPE_NAMES.get(field.type, str(field.type))
    if field.type in (11, 14, 10):
        return f"{type_name} {_relative(field.type_name, package)}"
    return type_name


def _oneof(message: Any, field: Any) -> str | None:
    """The real oneof a field belongs to (proto3 `optional` makes a synthetic one: ignored)."""
    if not field.HasField("oneof_index") or field.proto3_optional:
        return None
    return str(message.oneof_decl[field.oneof_index].name)


def _package_violation(new: Any, old: Any) -> Violation | None:
    if new.package == old.package:
        return None
    new_head, _, new_last = new.package.rpartition(".")
    old_head, _, old_last = old.package.rpartition(".")
    if new_head == old_head and _VERSION_COMPONENT.fullmatch(new_last) and _VERSION_COMPONENT.fullmatch(old_last):
        return None
    return Violation(
        "<package>",
        "package changed",
        f"package {old.package!r} became {new.package!r}: every message is renamed",
    )


def _number_violation(message_name: str, new_message: Any, old_message: Any, new: Any, old: Any) -> Violation | None:
    """Field numbers present in both: same wire type group, same named type, same label, same oneof."""
    old_fields = {field.number: field for field in old_message.field}
    for field in new_message.field:
        before = old_fields.get(field.number)
        if before is None:
            continue
        where = f"{message_name}.{field.name}"
        if before.name != field.name:
            where += f" (was {before.name})"
        group_new, group_old = _WIRE_GROUPS.get(field.type), _WIRE_GROUPS.get(before.type)
        type_new, type_old = _field_type(field, new.package), _field_type(before, old.package)
        if group_new != group_old:
            return Violation(
                where,
                "field type changed",
                f"field number {field.number} was {type_old}, now {type_new} (wire types {group_old} and "
                f"{group_new} are incompatible)",
            )
        both_named = field.type == before.type and field.type in (10, 11, 14)
        if both_named and type_new != type_old:
            return Violation(
                where, "named type changed", f"field number {field.number} was {type_old}, now {type_new}"
            )
        if (field.label == _LABEL_REPEATED) != (before.label == _LABEL_REPEATED):
            was = "repeated" if before.label == _LABEL_REPEATED else "singular"
            now = "repeated" if field.label == _LABEL_REPEATED else "singular"
            return Violation(where, "label changed", f"field number {field.number} was {was}, now {now}")
        if _oneof(new_message, field) != _oneof(old_message, before):
            return Violation(
                where,
                "oneof changed",
                f"field number {field.number} moved from oneof {_oneof(old_message, before)} to "
                f"{_oneof(new_message, field)}",
            )
    return None


def _reserved_violation(message_name: str, new_message: Any, old_message: Any) -> Violation | None:
    for field in new_message.field:
        for reserved in old_message.reserved_range:
            if reserved.start <= field.number < reserved.end:  # end is exclusive in descriptors
                return Violation(
                    f"{message_name}.{field.name}",
                    "reserved number reused",
                    f"field number {field.number} was reserved in the earlier version",
                )
    return None


def protobuf_violation(new: Any, old: Any, *, direction: Direction) -> Violation | None:
    """The first Protobuf rule `new` breaks against `old` (FileDescriptorProto each), or None.

    `direction="BACKWARD"`: readers of `new` read `old` data; `"FORWARD"`: readers of `old` read
    `new` data. Only `required` fields depend on the direction; the other rules hold both ways.
    """
    found = _package_violation(new, old)
    if found is not None:
        return found
    new_messages = dict(_messages(new))
    for name, old_message in _messages(old):
        new_message = new_messages.get(name)
        if new_message is None:
            return Violation(name, "message removed or renamed", f"message {name} of the earlier version is gone")
        found = _number_violation(name, new_message, old_message, new, old) or _reserved_violation(
            name, new_message, old_message
        )
        if found is not None:
            return found
        old_numbers = {field.number: field for field in old_message.field}
        new_numbers = {field.number: field for field in new_message.field}
        # BACKWARD: new readers must not require what earlier data lacks; else earlier readers what new data lacks
        readers, writers, event, reader_side = (
            (new_numbers, old_numbers, "added", "new") if direction == "BACKWARD"
            else (old_numbers, new_numbers, "removed", "earlier"))
        for number, field in readers.items():
            if field.label == _LABEL_REQUIRED and (
                number not in writers or writers[number].label != _LABEL_REQUIRED
            ):
                data_side = "earlier" if reader_side == "new" else "new"
                return Violation(
                    f"{name}.{field.name}",
                    f"required field {event}",
                    f"{reader_side} readers require field number {number}, which {data_side} data may lack",
                )
    return None


def history_violation(new: Any, old: Any) -> Violation | None:
    """Number reuse against any earlier version: a number never changes its type, wherever it was."""
    if _package_violation(new, old) is not None:
        return None  # a renamed package is reported against the compared version
    new_messages = dict(_messages(new))
    for name, old_message in _messages(old):
        new_message = new_messages.get(name)
        if new_message is not None:
            found = _number_violation(name, new_message, old_message, new, old)
            if found is not None:
                return found
    return None


def protobuf_evolution(new: Any, old: Any, direction: Direction) -> Violation | None:
    """`protobuf_violation` in the signature every format's rules share (compatibility.FORMAT_RULES)."""
    return protobuf_violation(new, old, direction=direction)
