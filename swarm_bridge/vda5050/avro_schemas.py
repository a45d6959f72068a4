"""Avro record schemas derived from the official VDA 5050 JSON Schemas, one per topic (never written by hand).

The rules, one table (`_TYPES`) and three cases:
  object with properties  -> a record (named from its `title`, else its property; items of an array by the
                             array's name without its plural `s`), fields in the schema's order;
  array                   -> an Avro array of its items (without `items`: of strings when the array lists a
                             string enum, as factsheet's `blockingTypes` does, else of free-form values);
  string, number, integer, boolean -> string, double, long, boolean; `format: date-time` stays a string (the
                             text as sent, so it round-trips);
  enum                    -> a string, its values listed in the field's doc: an Avro enum is closed, and a reader
                             whose enum lacks a symbol a newer writer uses (2.0 -> 2.1 added some) fails on the
                             record, while a string reads whatever a later minor version adds;
  optional (not in `required`) -> ["null", T] with default null (absent in JSON, null in Avro);
  properties the schema does not name (JSON Schema allows them) -> the record's last field `_extra`, the JSON
                             text of an object of them, null when there are none (`EXTRA`);
  free-form values (a type list such as actionParameters' value, an object without properties) -> a union of
                             the scalars the list allows (boolean, long for integral numbers, double, string) and
                             the record `vda5050.v2.Json` whose one field `json` is the compact JSON text of an
                             array, an object or an integer beyond 64 bits: every JSON value comes back exactly
                             (`swarm_bridge.vda5050.avro`).
Records of topic `t` live in namespace `vda5050.v2.t`, the topic's own record is `vda5050.v2.<Topic>`
(`RECORD_NAMES`); a named type seen again with the same shape is referenced by name.

The schemas the package ships are `swarm_bridge/vda5050/avro/<topic>.avsc`, written by `write_packaged` from a
folder of JSON Schemas (`python -m swarm_bridge.vda5050.avro_schemas [FOLDER]`, default $SWARM_BRIDGE_VDA5050 or
../shared/data/vda5050 beside the repository, `json_schemas/` inside); a unit test derives them again and compares.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from swarm_bridge.vda5050.errors import DerivationError, SchemasMissing
from swarm_bridge.vda5050.topics import TOPICS

__all__ = [
    "EXTRA",
    "JSON_NAME",
    "JSON_RECORD",
    "NAMESPACE",
    "PACKAGED",
    "RECORD_NAMES",
    "avsc_text",
    "default_source",
    "derive",
    "derive_folder",
    "packaged",
    "write_packaged",
]

NAMESPACE = "vda5050.v2"
RECORD_NAMES = {"order": "Order", "instantActions": "InstantActions", "state": "State",
                "visualization": "Visualization", "connection": "Connection", "factsheet": "Factsheet"}
"""VDA 5050 topic -> the name of its Avro record (full name `vda5050.v2.<name>`)."""
JSON_RECORD = f"{NAMESPACE}.Json"
EXTRA = "_extra"
"""The last field of every record: the properties of the JSON object its schema does not name (JSON Schema allows
them; vehicles send them, e.g. an order's nodePosition.allowedDeviationXY copied into a state's nodeStates), as the
compact JSON text of an object of them; null when there are none."""
_EXTRA_DOC = ("Properties of this JSON object that the VDA 5050 2.1 schema does not name, as the compact JSON text of "
              "an object of them; null when there are none")
JSON_NAME = "jsonName"
"""A field's attribute naming its JSON property when that is no Avro name (`order.nodes` -> field `order_nodes`)."""
PACKAGED = Path(__file__).resolve().parent / "avro"
_JSON_DOC = ("A free-form JSON value the union's other branches cannot carry exactly (an array, an object, an "
             "integer beyond 64 bits), as its compact JSON text (UTF-8)")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# JSON Schema scalar type -> its Avro type.
_TYPES = {"string": "string", "number": "double", "integer": "long", "boolean": "boolean"}
# JSON Schema types of a free-form value -> the union branches that carry them (in this order).
_FREE_BRANCHES = {"boolean": ("boolean",), "integer": ("long",), "number": ("long", "double"), "string": ("string",),
                  "array": (JSON_RECORD,), "object": (JSON_RECORD,), "null": ("null",)}


class _Derivation:
    """One topic's derivation into an inline tree (every record written out where it is used); `_share` then
    keeps the first of each named record and refers to it by name."""

    def __init__(self, source: str, topic: str, definitions: Mapping[str, Any]) -> None:
        self.source, self.topic = source, topic
        self.namespace = f"{NAMESPACE}.{topic}"
        self.definitions = definitions

    def record(self, node: Mapping[str, Any], name: str, path: str) -> dict[str, Any]:
        """The record of an object with properties."""
        required = node.get("required", [])
        fields = []
        taken: set[str] = set()
        for prop, sub in node["properties"].items():
            field_name = _field_name(prop)
            if not _NAME.match(field_name) or field_name in taken:
                raise DerivationError(self.source, f"{path}.{prop}", f"property name has no Avro name of its own "
                                      f"({field_name!r}: [A-Za-z_][A-Za-z0-9_]*, once per record)")
            taken.add(field_name)
            kind = self.type(sub, prop, f"{path}.{prop}")
            field: dict[str, Any] = {"name": field_name}
            if field_name != prop:
                field[JSON_NAME] = prop
            doc = _doc(sub)
            if doc:
                field["doc"] = doc
            if prop in required:
                field["type"] = kind
            else:
                field["type"] = ["null", *kind] if isinstance(kind, list) else ["null", kind]
                field["default"] = None
            fields.append(field)
        if EXTRA in taken:
            raise DerivationError(self.source, f"{path}.{EXTRA}", f"a property named {EXTRA}, the field that carries "
                                  "the properties a schema does not name")
        fields.append({"name": EXTRA, "doc": _EXTRA_DOC, "type": ["null", "string"], "default": None})
        unknown = sorted(set(required) - set(node["properties"]))
        if unknown:
            raise DerivationError(self.source, path, f"required {unknown} are not among its properties")
        body: dict[str, Any] = {"type": "record", "name": name, "namespace": self.namespace}
        doc = _doc(node)
        if doc:
            body["doc"] = doc
        body["fields"] = fields
        return body

    def type(self, node: Mapping[str, Any], prop: str, path: str) -> Any:
        """The Avro type of one JSON Schema node (a property's or an array's items)."""
        ref = node.get("$ref")
        if ref is not None:
            key = str(ref).removeprefix("#/definitions/")
            target = self.definitions.get(key)
            if target is None:
                raise DerivationError(self.source, path, f"$ref {ref!r} names no entry of definitions")
            return self.type(target, key, f"#/definitions/{key}")
        kind = node.get("type")
        if isinstance(kind, list):
            return self.free_form([str(k) for k in kind], path)
        if kind == "object":
            if "properties" not in node:
                return self.free_form(["object"], path)
            return self.record(node, _pascal(str(node.get("title") or prop)), path)
        if kind == "array":
            items = node.get("items")
            if items is None:  # factsheet's blockingTypes lists its items' enum on the array itself
                items = {"type": "string"} if all(isinstance(v, str) for v in node.get("enum", [1])) else {
                    "type": list(_FREE_BRANCHES)}
            if not isinstance(items, Mapping):
                raise DerivationError(self.source, path, "an array without one schema for its items")
            item_name = str(items.get("title") or (prop[:-1] if prop.endswith("s") else f"{prop}Item"))
            return {"type": "array", "items": self.type(items, item_name, f"{path}[]")}
        if kind in _TYPES:
            return _TYPES[str(kind)]
        raise DerivationError(self.source, path, f"type {kind!r} has no Avro form; handled: "
                              f"{', '.join([*_TYPES, 'object', 'array'])} and type lists")

    def free_form(self, kinds: list[str], path: str) -> Any:
        """A free-form value: the union of the branches `kinds` need (the Json record for arrays and objects)."""
        unknown = [k for k in kinds if k not in _FREE_BRANCHES]
        if unknown:
            raise DerivationError(self.source, path, f"type {unknown[0]!r} in a type list has no Avro form")
        branches = list(dict.fromkeys(b for k in sorted(kinds, key=list(_FREE_BRANCHES).index)
                                      for b in _FREE_BRANCHES[k]))
        out: list[Any] = [dict(_JSON_BODY) if branch == JSON_RECORD else branch for branch in branches]
        return out if len(out) > 1 else out[0]


_JSON_BODY = {"type": "record", "name": "Json", "namespace": NAMESPACE, "doc": _JSON_DOC,
              "fields": [{"name": "json", "type": "string"}]}


def _share(node: Any, named: dict[str, Any], parent: str) -> Any:
    """The inline tree with each named record defined once, at its first use (as Avro wants it), and referred to
    by full name after; a different record of a name already taken takes its parent's name in front."""
    if isinstance(node, list):
        return [_share(n, named, parent) for n in node]
    if not isinstance(node, dict):
        return node
    if node["type"] == "array":
        return {**node, "items": _share(node["items"], named, parent)}
    name = node["name"]
    while True:
        full = f"{node['namespace']}.{name}"
        seen = named.get(full)
        if seen is None:
            break
        if seen == node:
            return full
        name = f"{parent}{name}"
    named[full] = node
    return {**node, "name": name, "fields": [{**f, "type": _share(f["type"], named, name)} for f in node["fields"]]}


def _field_name(prop: str) -> str:
    """A property's Avro field name: its JSON name, a '.' (factsheet's `order.nodes`) becoming '_'."""
    return prop.replace(".", "_")


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def _doc(node: Mapping[str, Any]) -> str:
    """A field's doc: the schema's description, the values of an enum, the unit."""
    parts = [" ".join(str(node.get("description", "")).split())]
    if "enum" in node:
        parts.append("One of: " + ", ".join(str(v) for v in node["enum"]) + " (an Avro string, so later values "
                     "read too).")
    if "unit" in node:
        parts.append(f"Unit: {node['unit']}.")
    return " ".join(p for p in parts if p)


def derive(topic: str, schema: Mapping[str, Any], *, source: str = "") -> dict[str, Any]:
    """The Avro record schema of `topic` from its official JSON Schema (a parsed `<topic>.schema`)."""
    if topic not in RECORD_NAMES:
        raise DerivationError(source or topic, "", f"{topic!r} is no VDA 5050 topic; topics: {', '.join(RECORD_NAMES)}")
    if schema.get("type") != "object" or "properties" not in schema:
        raise DerivationError(source or topic, "", "the message schema is not an object with properties")
    run = _Derivation(source or f"{topic}.schema", topic, schema.get("definitions", {}))
    top = {**run.record(schema, RECORD_NAMES[topic], ""), "namespace": NAMESPACE}
    return dict(_share(top, {}, RECORD_NAMES[topic]))


def derive_folder(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Every topic's Avro schema from the folder of the official JSON Schemas (`order.schema`, ...)."""
    folder = Path(folder).expanduser()
    out: dict[str, dict[str, Any]] = {}
    for spec in TOPICS.values():
        path = folder / spec.schema_file
        if not path.is_file():
            raise SchemasMissing(f"{path}: no such file; name the json_schemas folder of the VDA 5050 2.1 release")
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DerivationError(str(path), "", f"not a JSON file: {exc}") from None
        out[spec.name] = derive(spec.name, schema, source=str(path))
    return out


def avsc_text(schema: Mapping[str, Any]) -> str:
    """How an .avsc file of the package is written (indented, a newline at the end)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def packaged(topic: str) -> dict[str, Any]:
    """The Avro schema of `topic` the package ships (`avro/<topic>.avsc`)."""
    return dict(json.loads((PACKAGED / f"{topic}.avsc").read_text(encoding="utf-8")))


def write_packaged(folder: str | Path, out: Path = PACKAGED) -> list[Path]:
    """Derive every topic's schema from the JSON Schemas in `folder` and write `out/<topic>.avsc`."""
    schemas = derive_folder(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for topic, schema in schemas.items():
        path = out / f"{topic}.avsc"
        path.write_text(avsc_text(schema), encoding="utf-8")
        written.append(path)
    return written


def default_source(repo: Path | None = None) -> Path:
    """The json_schemas folder: $SWARM_BRIDGE_VDA5050 (the folder holding json_schemas/, relative to the
    repository) else ../shared/data/vda5050 beside it, as the tests read it."""
    repo = repo or Path(__file__).resolve().parents[2]
    value = os.environ.get("SWARM_BRIDGE_VDA5050")
    return (repo / value if value else repo.parent / "shared" / "data" / "vda5050") / "json_schemas"


def main(argv: list[str] | None = None) -> int:
    """`python -m swarm_bridge.vda5050.avro_schemas [JSON_SCHEMAS_FOLDER]`: regenerate the packaged .avsc files."""
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else default_source()
    try:
        written = write_packaged(folder)
    except (SchemasMissing, DerivationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
