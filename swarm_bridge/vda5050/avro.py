"""VDA 5050 JSON messages <-> Avro bodies of the records the package ships (`avro_schemas`), exactly both ways.

JSON -> Avro: each property becomes its field (`jsonName` fields by their JSON name); an optional property that
is absent becomes null; properties the schema does not name go, as one JSON object's text, to the record's `_extra`;
a free-form value goes to the union branch of its JSON type: true/false -> boolean, an integral number -> long (one
beyond 64 bits -> Json), any other number -> double, a string -> string, an array or an object -> the record
`vda5050.v2.Json` holding its compact JSON text. Avro -> JSON reverses it: null fields are left out, `_extra`'s
properties put back, Json parsed back. A message that does not fit (a required property missing, an explicit null,
a value of another type, an integer beyond 64 bits, or one a double cannot hold exactly in a `number` field) is
a MessageUnfit naming the field and its reason (`UNFIT_REASONS`); numbers of `number` fields come back as doubles
(2 -> 2.0, equal as JSON).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from swarm_bridge.vda5050.avro_schemas import EXTRA, JSON_NAME, JSON_RECORD, NAMESPACE, RECORD_NAMES, packaged
from swarm_bridge.vda5050.errors import MessageInvalid, MessageUnfit

__all__ = ["VdaAvro", "full_name"]

_INT64 = (-(1 << 63), (1 << 63) - 1)


def full_name(topic: str) -> str:
    """The full name of `topic`'s Avro record, e.g. `vda5050.v2.Order`."""
    return f"{NAMESPACE}.{RECORD_NAMES[topic]}"


@dataclass(frozen=True)
class _Field:
    name: str  # the Avro field
    json_name: str  # the JSON property
    shape: Any
    optional: bool


@dataclass(frozen=True)
class _Record:
    fields: tuple[_Field, ...]
    by_json: Mapping[str, _Field]
    extra: bool  # has the `_extra` field


@dataclass(frozen=True)
class _Array:
    items: Any


@dataclass(frozen=True)
class _Scalar:
    kind: str  # string | long | double | boolean


@dataclass(frozen=True)
class _Free:
    branches: frozenset[str]  # of boolean, long, double, string, Json (JSON_RECORD), null


def _compile(node: Any, named: dict[str, Any]) -> Any:
    """The converter tree of an Avro type (its named records resolved)."""
    if isinstance(node, str):
        if node in named:
            return named[node]
        return _Free(frozenset({JSON_RECORD})) if node == JSON_RECORD else _Scalar(node)
    if isinstance(node, list):
        rest = [b for b in node if b != "null"]
        if len(rest) == 1 and "null" not in node:
            return _compile(rest[0], named)
        return _Free(frozenset(b if isinstance(b, str) else f"{b['namespace']}.{b['name']}" for b in node))
    if node["type"] == "array":
        return _Array(_compile(node["items"], named))
    full = f"{node['namespace']}.{node['name']}"
    if full == JSON_RECORD:
        named[full] = free = _Free(frozenset({JSON_RECORD}))
        return free
    fields: list[_Field] = []
    record = _Record((), {}, False)
    named[full] = record  # (no VDA 5050 record contains itself)
    extra = False
    for field in node["fields"]:
        if field["name"] == EXTRA:
            extra = True
            continue
        kind = field["type"]
        optional = isinstance(kind, list) and "null" in kind and "default" in field and field["default"] is None
        if optional:
            rest = [b for b in kind if b != "null"]
            kind = rest[0] if len(rest) == 1 else rest
        shape = _compile(kind, named)
        fields.append(_Field(field["name"], field.get(JSON_NAME, field["name"]), shape, optional))
    found = _Record(tuple(fields), {f.json_name: f for f in fields}, extra)
    named[full] = found
    return found


class VdaAvro:
    """The packaged Avro records of the VDA 5050 topics: `datum`/`document` convert, `encode`/`decode` add the
    Avro binary (schemaless bodies; framing is the caller's)."""

    def __init__(self, schemas: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """`schemas`: topic -> Avro schema (default: the packaged ones)."""
        import fastavro  # deferred: only VDA 5050 on Kafka needs it

        self._fastavro = fastavro
        self.schemas = {topic: dict(schemas[topic]) if schemas else packaged(topic) for topic in RECORD_NAMES}
        self._parsed = {topic: fastavro.parse_schema(schema) for topic, schema in self.schemas.items()}
        self._trees = {topic: _compile(schema, {}) for topic, schema in self.schemas.items()}

    def datum(self, topic: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The Avro datum of JSON message `doc` of `topic`; MessageUnfit when it does not fit."""
        return dict(_to_datum(topic, self._tree(topic), doc, ""))

    def document(self, topic: str, datum: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON message of an Avro datum of `topic` (as the reader returns it)."""
        return dict(_to_json(topic, self._tree(topic), datum, ""))

    def encode(self, topic: str, doc: Mapping[str, Any]) -> bytes:
        """The Avro binary body of `doc`; MessageUnfit when it does not fit."""
        datum = self.datum(topic, doc)
        out = io.BytesIO()
        try:
            self._fastavro.schemaless_writer(out, self._parsed[topic], datum)
        except Exception as exc:  # what the datum check lets pass and Avro cannot write (a lone UTF-16 surrogate)
            raise _unfit(topic, "", "wrong_type", f"Avro cannot write it: {type(exc).__name__}: {exc}") from None
        return out.getvalue()

    def decode(self, topic: str, body: bytes, writer: Any = None) -> dict[str, Any]:
        """The JSON message of an Avro body of `topic`, written with `writer` (a parsed schema; default the
        packaged one) and read as the packaged one; MessageInvalid when it does not read."""
        reader = self._parsed[topic]
        try:
            datum = self._fastavro.schemaless_reader(io.BytesIO(body), writer or reader,
                                                     None if writer is None else reader)
        except Exception as exc:  # fastavro on garbage raises anything (EOFError, UnicodeDecodeError, ...)
            raise MessageInvalid(topic, "", f"Avro body of {full_name(topic)} does not read: "
                                 f"{type(exc).__name__}: {exc}") from None
        if not isinstance(datum, dict):
            raise MessageInvalid(topic, "", f"Avro body of {full_name(topic)} is no record")
        return self.document(topic, datum)

    def parse_writer(self, schema: Any) -> Any:
        """A writer's schema (JSON, from the registry) parsed for `decode`."""
        return self._fastavro.parse_schema(schema)

    def _tree(self, topic: str) -> Any:
        tree = self._trees.get(topic)
        if tree is None:
            raise MessageInvalid(topic, "", f"no VDA 5050 topic; topics: {', '.join(RECORD_NAMES)}")
        return tree


def _unfit(topic: str, path: str, reason: str, problem: str) -> MessageUnfit:
    return MessageUnfit(topic, path, reason, problem)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _to_datum(topic: str, shape: Any, value: Any, path: str) -> Any:
    if isinstance(shape, _Record):
        if not isinstance(value, Mapping):
            raise _unfit(topic, path, "wrong_type", f"expected an object, got {_kind(value)}")
        out: dict[str, Any] = {}
        extra = {k: v for k, v in value.items() if k not in shape.by_json}
        if extra and not shape.extra:
            raise _unfit(topic, _join(path, str(next(iter(extra)))), "wrong_type", "not a property of this record")
        if shape.extra:
            out[EXTRA] = _json_text(topic, extra, path) if extra else None
        for field in shape.fields:
            where = _join(path, field.json_name)
            if field.json_name not in value:
                if not field.optional:
                    raise _unfit(topic, where, "missing_field", "required by the schema, missing")
                out[field.name] = None
                continue
            item = value[field.json_name]
            if item is None and not (isinstance(field.shape, _Free) and "null" in field.shape.branches):
                raise _unfit(topic, where, "wrong_type", "null; leave an optional property out instead")
            out[field.name] = _to_datum(topic, field.shape, item, where)
        return out
    if isinstance(shape, _Array):
        if not isinstance(value, list):
            raise _unfit(topic, path, "wrong_type", f"expected an array, got {_kind(value)}")
        return [_to_datum(topic, shape.items, item, f"{path}[{n}]") for n, item in enumerate(value)]
    if isinstance(shape, _Scalar):
        return _scalar(topic, shape.kind, value, path)
    return _free(topic, shape, value, path)


def _scalar(topic: str, kind: str, value: Any, path: str) -> Any:
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "double" and isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, int) and float(value) != value:
            raise _unfit(topic, path, "out_of_range", f"{value} has no exact double (beyond 2**53)")
        return float(value)
    if kind == "long" and not isinstance(value, bool):
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 3.0 is an integer to JSON Schema
        if isinstance(value, int):
            if not _INT64[0] <= value <= _INT64[1]:
                raise _unfit(topic, path, "out_of_range", f"{value} does not fit a 64-bit integer")
            return value
    what = {"string": "a string", "boolean": "true or false", "double": "a number", "long": "an integer"}[kind]
    raise _unfit(topic, path, "wrong_type", f"expected {what}, got {_kind(value)}")


def _free(topic: str, shape: _Free, value: Any, path: str) -> Any:
    """A free-form value as (union branch, value): fastavro's tuple notation picks the branch, not a guess."""
    allowed = shape.branches
    if value is None and "null" in allowed:
        return None
    if isinstance(value, bool):
        branch = "boolean"
    elif isinstance(value, int):
        branch = "long" if _INT64[0] <= value <= _INT64[1] else JSON_RECORD
        if branch == JSON_RECORD and JSON_RECORD not in allowed:
            raise _unfit(topic, path, "out_of_range", f"{value} does not fit a 64-bit integer")
    elif isinstance(value, float):
        branch = "double"
    elif isinstance(value, str):
        branch = "string"
    elif isinstance(value, list | dict):
        branch = JSON_RECORD
    else:
        branch = ""
    if branch not in allowed:
        raise _unfit(topic, path, "wrong_type", f"{_kind(value)} is not one of the value's types "
                     f"({', '.join(sorted(b.rsplit('.', 1)[-1] for b in allowed))})")
    if branch == JSON_RECORD:
        text = _json_text(topic, value, path)
        return {"json": text} if allowed == {JSON_RECORD} else (JSON_RECORD, {"json": text})
    return value if len(allowed) == 1 else (branch, value)


def _json_text(topic: str, value: Any, path: str) -> str:
    """Compact JSON text of a free-form value; MessageUnfit for what JSON cannot hold (NaN, Infinity)."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise _unfit(topic, path, "wrong_type", f"not JSON: {exc}") from None


def _to_json(topic: str, shape: Any, datum: Any, path: str) -> Any:
    if isinstance(shape, _Record):
        out: dict[str, Any] = {}
        for field in shape.fields:
            item = datum.get(field.name)
            if item is None and field.optional:
                continue
            out[field.json_name] = _to_json(topic, field.shape, item, _join(path, field.json_name))
        text = datum.get(EXTRA)
        if text is not None:
            try:
                extra = json.loads(text)
            except (TypeError, json.JSONDecodeError) as exc:
                raise MessageInvalid(topic, _join(path, EXTRA), f"holds no JSON text: {exc}") from None
            if not isinstance(extra, dict):
                raise MessageInvalid(topic, _join(path, EXTRA), "holds no JSON object")
            for key, value in extra.items():
                out.setdefault(key, value)
        return out
    if isinstance(shape, _Array):
        return [_to_json(topic, shape.items, item, path) for item in datum]
    if isinstance(shape, _Free) and isinstance(datum, dict):
        try:
            return json.loads(datum["json"])
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise MessageInvalid(topic, path, f"{JSON_RECORD} holds no JSON text: {exc}") from None
    return datum


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
             dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)
