"""Schema evolution rules: BACKWARD, FORWARD, FULL, their *_TRANSITIVE forms and NONE, for Avro and Protobuf.

Levels (as in the Confluent registry; "new" is the schema being registered):
  BACKWARD  a reader of the new schema reads data written with the latest earlier version;
  FORWARD   a reader of the latest earlier version reads data written with the new schema;
  FULL      both; *_TRANSITIVE: against every earlier version, not only the latest; NONE: no check.

Avro: the specification's schema resolution (reader vs writer): named types match by unqualified
name or a reader alias; int -> long -> float -> double and string <-> bytes promote; a reader
field missing from the writer needs a default; writer enum symbols must be in the reader's enum
unless it has a default; fixed sizes equal; every branch of a writer union must resolve in the reader.

Protobuf (on FileDescriptorProto; the wire carries field numbers, not names):
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
A violation raises `IncompatibleSchema(subject, rule=<level>, field=<path>, problem)`; the
problem names the rule of the format that was broken.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from swarm_bridge.codec.errors import IncompatibleSchema, RegistryError, SchemaParseError, avro_json

__all__ = [
    "DEFAULT_COMPATIBILITY",
    "LEVELS",
    "Violation",
    "avro_violation",
    "check_compatibility",
    "normalize_level",
    "protobuf_violation",
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

Direction = Literal["BACKWARD", "FORWARD"]


@dataclass(frozen=True)
class Violation:
    """The first place where one schema cannot read another: field path, the format's rule, and why."""

    field: str
    rule: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.rule}: {self.problem}"


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


# --- Avro ----------------------------------------------------------------------------------------

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
_NAMED = frozenset({"record", "error", "enum", "fixed"})


def _parse_avro(schema: Any, named: dict[str, Any]) -> Any:
    import fastavro

    schema = avro_json(schema)
    try:
        return fastavro.parse_schema(schema, named_schemas=named, _write_hint=False)
    except Exception as exc:  # fastavro raises several types for a bad schema
        raise SchemaParseError("avro schema", f"{type(exc).__name__}: {exc}") from None


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        kind = schema["type"]
        return "record" if kind == "error" else str(kind)
    return str(schema)


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _describe(schema: Any) -> str:
    kind = _kind(schema)
    if kind == "union":
        return "[" + ", ".join(_describe(branch) for branch in schema) + "]"
    if kind in _NAMED:
        return f"{kind} {schema['name']}"
    if kind in ("array", "map"):
        inner = schema["items"] if kind == "array" else schema["values"]
        return f"{kind}<{_describe(inner)}>"
    return kind


class _AvroResolver:
    """Walks a reader and a writer schema together, as a reader would resolve the writer's data."""

    def __init__(self, reader_names: dict[str, Any], writer_names: dict[str, Any]) -> None:
        self.reader_names = reader_names
        self.writer_names = writer_names
        self._seen: set[tuple[str, str]] = set()

    def _deref(self, schema: Any, names: dict[str, Any]) -> Any:
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            return names[schema]
        return schema

    def _names_match(self, reader: Any, writer: Any) -> bool:
        aliases = reader.get("aliases") or []
        return _short(reader["name"]) == _short(writer["name"]) or writer["name"] in aliases or (
            _short(writer["name"]) in [_short(alias) for alias in aliases]
        )

    def matches(self, reader: Any, writer: Any) -> bool:
        """The spec's shallow match, used to pick a reader union branch for a writer type."""
        reader = self._deref(reader, self.reader_names)
        writer = self._deref(writer, self.writer_names)
        r_kind, w_kind = _kind(reader), _kind(writer)
        if "union" in (r_kind, w_kind):
            return False
        if r_kind == w_kind:
            if r_kind in _NAMED:
                same_size = r_kind != "fixed" or reader["size"] == writer["size"]
                return same_size and self._names_match(reader, writer)
            if r_kind == "array":
                return self.matches(reader["items"], writer["items"])
            if r_kind == "map":
                return self.matches(reader["values"], writer["values"])
            return True
        return r_kind in _PROMOTIONS.get(w_kind, ())

    def resolve(self, reader: Any, writer: Any, path: str) -> Violation | None:
        reader = self._deref(reader, self.reader_names)
        writer = self._deref(writer, self.writer_names)
        r_kind, w_kind = _kind(reader), _kind(writer)
        if w_kind == "union":
            for branch in writer:
                found = self._resolve_writer_branch(reader, branch, path)
                if found is not None:
                    return found
            return None
        if r_kind == "union":
            return self._resolve_writer_branch(reader, writer, path)
        if r_kind != w_kind:
            if r_kind in _PROMOTIONS.get(w_kind, ()):
                return None
            return Violation(
                path,
                "type mismatch",
                f"reader expects {_describe(reader)}, writer wrote {_describe(writer)} (no Avro promotion from "
                f"{w_kind} to {r_kind})",
            )
        if r_kind in _NAMED and not self._names_match(reader, writer):
            return Violation(
                path,
                "name mismatch",
                f"reader {r_kind} {reader['name']} does not match writer {w_kind} {writer['name']} (names differ "
                "and the reader has no such alias)",
            )
        if r_kind == "record":
            return self._resolve_record(reader, writer, path)
        if r_kind == "enum":
            missing = [symbol for symbol in writer["symbols"] if symbol not in reader["symbols"]]
            if missing and "default" not in reader:
                return Violation(
                    path,
                    "enum symbol",
                    f"writer symbols {missing} are not in the reader enum {reader['name']}, which has no default",
                )
            return None
        if r_kind == "fixed" and reader["size"] != writer["size"]:
            return Violation(
                path, "fixed size", f"reader fixed {reader['name']} has size {reader['size']}, writer {writer['size']}"
            )
        if r_kind == "array":
            return self.resolve(reader["items"], writer["items"], f"{path}[]")
        if r_kind == "map":
            return self.resolve(reader["values"], writer["values"], f"{path}{{}}")
        return None

    def _resolve_writer_branch(self, reader: Any, writer: Any, path: str) -> Violation | None:
        if _kind(reader) != "union":
            return self.resolve(reader, writer, path)
        for branch in reader:
            if self.matches(branch, writer):
                return self.resolve(branch, writer, path)
        return Violation(
            path,
            "union branch",
            f"writer type {_describe(self._deref(writer, self.writer_names))} matches no branch of the reader "
            f"union {_describe(reader)}",
        )

    def _resolve_record(self, reader: Any, writer: Any, path: str) -> Violation | None:
        key = (reader["name"], writer["name"])
        if key in self._seen:  # recursive types: already being resolved further up
            return None
        self._seen.add(key)
        try:
            by_name = {field["name"]: field for field in writer["fields"]}
            for field in reader["fields"]:
                candidates = [field["name"], *(field.get("aliases") or [])]
                written = next((by_name[name] for name in candidates if name in by_name), None)
                where = f"{path}.{field['name']}"
                if written is None:
                    if "default" not in field:
                        return Violation(
                            where,
                            "missing default",
                            "the reader field is not in the writer's record and has no default",
                        )
                    continue
                found = self.resolve(field["type"], written["type"], where)
                if found is not None:
                    return found
            return None
        finally:
            self._seen.discard(key)


def avro_violation(reader: Any, writer: Any) -> Violation | None:
    """The first reason a reader of `reader` cannot read data written with `writer`, or None.

    Both are Avro schemas as parsed JSON (dict, list, name) or JSON text; SchemaParseError if either
    does not parse. Field paths start at the top-level type's short name, e.g. `RobotState.pose.x`.
    """
    reader_names: dict[str, Any] = {}
    writer_names: dict[str, Any] = {}
    parsed_reader = _parse_avro(reader, reader_names)
    parsed_writer = _parse_avro(writer, writer_names)
    root = _root_name(parsed_reader)
    return _AvroResolver(reader_names, writer_names).resolve(parsed_reader, parsed_writer, root)


def _root_name(schema: Any) -> str:
    return _short(schema["name"]) if isinstance(schema, dict) and "name" in schema else "<root>"


# --- Protobuf ------------------------------------------------------------------------------------

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
        if direction == "BACKWARD":
            for number, field in new_numbers.items():
                if field.label == _LABEL_REQUIRED and (
                    number not in old_numbers or old_numbers[number].label != _LABEL_REQUIRED
                ):
                    return Violation(
                        f"{name}.{field.name}",
                        "required field added",
                        f"new readers require field number {number}, which earlier data may lack",
                    )
        else:
            for number, field in old_numbers.items():
                if field.label == _LABEL_REQUIRED and (
                    number not in new_numbers or new_numbers[number].label != _LABEL_REQUIRED
                ):
                    return Violation(
                        f"{name}.{field.name}",
                        "required field removed",
                        f"earlier readers require field number {number}, which new data may lack",
                    )
    return None


def _history_violation(new: Any, old: Any) -> Violation | None:
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


# --- levels --------------------------------------------------------------------------------------


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
            found = _violation(kind, new, old, direction)
            if found is not None:
                if direction == "BACKWARD":
                    problem = f"the new schema cannot read data of version {version}"
                else:
                    problem = f"readers of version {version} cannot read data of the new schema"
                raise IncompatibleSchema(subject, rule, found.field, f"{problem}: {found.rule}: {found.problem}")
    if kind == "PROTOBUF":
        for version, old in pairs:
            found = _history_violation(new, old)
            if found is not None:
                raise IncompatibleSchema(
                    subject, rule, found.field, f"field numbers are permanent (version {version}): {found.problem}"
                )


def _violation(kind: str, new: Any, old: Any, direction: Direction) -> Violation | None:
    if kind == "AVRO":
        return avro_violation(new, old) if direction == "BACKWARD" else avro_violation(old, new)
    if kind == "PROTOBUF":
        return protobuf_violation(new, old, direction=direction)
    raise RegistryError("compatibility", f"schema kind {kind!r} is not valid. Valid options are: AVRO, PROTOBUF")
