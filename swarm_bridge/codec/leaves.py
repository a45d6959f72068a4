"""Copy a message dict with some of its fields converted (uint64 as Decimal, byte arrays as bytes, ...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swarm_bridge.codec.rosdefs import RosField
    from swarm_bridge.codec.rostypes import RosTypes

__all__ = ["Convert", "leaf_mapper"]

Convert = Callable[[Any], Any]


def leaf_mapper(
    types: RosTypes, ros_type: str, leaf: Callable[[RosField], Convert | None]
) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """A function copying a message dict with `leaf(field)` applied to each field it returns a function for
    (to every item of an array field, but to a uint8/byte array as a whole); None when no field of the
    type or its nested types needs one, so callers skip the copy."""
    built: dict[str, Callable[[dict[str, Any]], dict[str, Any]] | None] = {}

    def build(name: str) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        if name in built:
            return built[name]
        steps: list[tuple[str, Convert]] = []
        for f in types.fields(name):
            convert = leaf(f)
            if convert is None and f.is_message:
                convert = build(f.type)
            if convert is None:
                continue
            if f.kind in ("array", "sequence") and not f.is_bytes:
                convert = _each(convert)
            steps.append((f.name, convert))
        built[name] = _apply(steps) if steps else None
        return built[name]

    return build(ros_type)


def _each(convert: Convert) -> Convert:
    return lambda values: [convert(v) for v in values]


def _apply(steps: list[tuple[str, Convert]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def apply(message: dict[str, Any]) -> dict[str, Any]:
        copy = dict(message)
        for name, convert in steps:
            copy[name] = convert(copy[name])
        return copy

    return apply
