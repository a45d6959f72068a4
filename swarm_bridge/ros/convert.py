"""ROS message objects -> plain dicts of Python values (lists for arrays), for the codecs."""

from __future__ import annotations

from typing import Any

__all__ = ["message_to_dict", "source_stamp_ns"]


def message_to_dict(msg: Any) -> dict[str, Any]:
    """Every field of `msg`, recursively, as plain Python values; field order kept."""
    return {name: _plain(getattr(msg, name)) for name in msg.get_fields_and_field_types()}


def source_stamp_ns(msg: Any, fallback_ns: int) -> int:
    """The message's own `header.stamp` or `stamp` in ns when it has one, else `fallback_ns`."""
    stamp = getattr(getattr(msg, "header", None), "stamp", None) or getattr(msg, "stamp", None)
    if stamp is None or not hasattr(stamp, "sec"):
        return fallback_ns
    ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    return ns if ns > 0 else fallback_ns


def _plain(value: Any) -> Any:
    if hasattr(value, "get_fields_and_field_types"):
        return message_to_dict(value)
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and array.array
    if callable(tolist):
        return tolist()
    return value
