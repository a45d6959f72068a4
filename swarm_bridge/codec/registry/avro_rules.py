"""Avro schema evolution: can a reader of one schema read data written with another (the specification's resolution).

Named types match by unqualified name or a reader alias; int -> long -> float -> double and string <-> bytes
promote; a reader field missing from the writer needs a default; writer enum symbols must be in the reader's
enum unless it has a default; fixed sizes equal; every branch of a writer union must resolve in the reader.
"""

from __future__ import annotations

from typing import Any

from swarm_bridge.codec.errors import SchemaParseError, avro_json
from swarm_bridge.codec.registry.violation import Direction, Violation

__all__ = ["avro_evolution", "avro_violation"]

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


def avro_evolution(new: Any, old: Any, direction: Direction) -> Violation | None:
    """BACKWARD: readers of `new` read `old` data; FORWARD: readers of `old` read `new` data."""
    return avro_violation(new, old) if direction == "BACKWARD" else avro_violation(old, new)
