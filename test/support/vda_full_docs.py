"""VDA 5050 messages with every property filled, built from the official JSON Schemas alone (not from
swarm_bridge.vda5050): each optional property present, each array with two items, each enum's values taken in
turn, and free-form values (actionParameters' value) of every JSON type in turn."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

# Values of a free-form property (actionParameters' value may be array, boolean, number, string, object).
FREE_VALUES: list[Any] = [103.2, 7, -3, 2**70, True, False, "left", "", "Grüße ✓", ["arrays", "are", "also", "valid"],
                          [], {}, {"nested": {"list": [1, 2.5, None, True, "x"], "deep": [[{}]]}}, 0.1, 1e300]


class Filler:
    """Fills a JSON Schema: `document(schema)` is one message with every property of it."""

    def __init__(self, definitions: Mapping[str, Any], *, start: int = 0) -> None:
        self.definitions = definitions
        self._counter = itertools.count(start)
        self._free: Iterator[Any] = itertools.cycle(FREE_VALUES[start % len(FREE_VALUES):] + FREE_VALUES)

    def document(self, node: Mapping[str, Any], name: str = "") -> Any:
        ref = node.get("$ref")
        if ref is not None:
            return self.document(self.definitions[str(ref).split("/")[-1]], name)
        kind = node.get("type")
        n = next(self._counter)
        if isinstance(kind, list):
            return next(self._free)
        if "enum" in node and kind != "array":
            values = node["enum"]
            return values[n % len(values)]
        if kind == "object":
            if "properties" not in node:
                return {"free": next(self._free), "n": n}
            return {prop: self.document(sub, prop) for prop, sub in node["properties"].items()}
        if kind == "array":
            items = node.get("items")
            if items is None:
                return [v for v in node.get("enum", [])][:2]
            return [self.document(items, name), self.document(items, name)]
        if kind == "string":
            return "2026-12-06T10:00:00.12Z" if node.get("format") == "date-time" else f"{name}-{n}"
        if kind == "integer":
            return n + int(node.get("minimum", 0))
        if kind == "number":
            low, high = float(node.get("minimum", -1e6)), float(node.get("maximum", 1e6))
            return low + (high - low) * ((n % 7) + 0.5) / 8
        if kind == "boolean":
            return n % 2 == 0
        raise ValueError(f"{name}: type {kind!r} not filled")


def full_document(schema: Mapping[str, Any], *, start: int = 0) -> dict[str, Any]:
    """One message of `schema` with every property present (header fields as a real message has them)."""
    doc = Filler(schema.get("definitions", {}), start=start).document(schema)
    assert isinstance(doc, dict)
    return doc


def required_only(schema: Mapping[str, Any], definitions: Mapping[str, Any] | None = None) -> Any:
    """The message with only the required properties (arrays empty), as small as the schema allows."""
    definitions = schema.get("definitions", {}) if definitions is None else definitions
    ref = schema.get("$ref")
    if ref is not None:
        return required_only(definitions[str(ref).split("/")[-1]], definitions)
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        return {prop: required_only(schema["properties"][prop], definitions) for prop in schema.get("required", [])}
    return Filler(definitions).document(schema) if kind != "array" else []
