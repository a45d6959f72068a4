"""ROS message objects <-> plain dicts of Python values (lists for arrays), for the codecs."""

from __future__ import annotations

import re
from typing import Any

from swarm_bridge.ros.errors import MessageFieldError

__all__ = ["dict_to_message", "message_to_dict"]


def message_to_dict(msg: Any) -> dict[str, Any]:
    """Every field of `msg`, recursively, as plain Python values; field order kept. `byte` (octet) fields
    become ints and octet arrays lists of ints, as the codecs carry them."""
    types = msg.get_fields_and_field_types()
    return {name: _plain(getattr(msg, name), types[name]) for name in types}


def _plain(value: Any, field_type: str = "") -> Any:
    if hasattr(value, "get_fields_and_field_types"):
        return message_to_dict(value)
    if field_type == "octet" and isinstance(value, (bytes, bytearray)):
        return value[0] if value else 0
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    if isinstance(value, (list, tuple)):
        element = "octet" if field_type.startswith(("sequence<octet", "octet[")) else ""
        return [_plain(v, element) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and array.array
    if callable(tolist):
        return tolist()
    return value


_ELEMENT = re.compile(r"^(?:sequence<)?([a-z0-9_]+)/([A-Za-z0-9_]+)(?:, *\d+>|>|\[\d*\])?$")


def dict_to_message(cls: Any, data: dict[str, Any]) -> Any:
    """A `cls` message filled from `data` (as message_to_dict makes it); unknown or ill-typed fields raise
    MessageFieldError (a ValueError) naming the field."""
    msg = cls()
    types = cls.get_fields_and_field_types()
    for name, value in data.items():
        if name not in types:
            raise MessageFieldError(f"{_type_name(cls)} has no field '{name}'; its fields: {', '.join(types)}")
        try:
            setattr(msg, name, _ros_value(types[name], getattr(msg, name), value))
        except (AssertionError, TypeError, ValueError) as exc:
            raise MessageFieldError(f"{_type_name(cls)}.{name}: {exc or 'value of the wrong type or range'}") \
                from None
    return msg


def _ros_value(field_type: str, current: Any, value: Any) -> Any:
    if hasattr(current, "get_fields_and_field_types"):  # nested message
        if not isinstance(value, dict):
            raise MessageFieldError(f"expected an object, got {type(value).__name__}")
        return dict_to_message(type(current), value)
    element = _ELEMENT.match(field_type)
    if element is not None and ("sequence<" in field_type or "[" in field_type):
        from swarm_bridge.ros.types import message_class  # a sequence of messages

        element_cls = message_class(f"{element.group(1)}/msg/{element.group(2)}")
        if not isinstance(value, list):
            raise MessageFieldError(f"expected a list, got {type(value).__name__}")
        return [dict_to_message(element_cls, item) for item in value]
    if field_type in ("octet", "uint8", "byte") or field_type.startswith(("sequence<octet", "sequence<uint8")):
        return bytes(value) if isinstance(value, list) and field_type.startswith("sequence") else value
    return value


def _type_name(cls: Any) -> str:
    module = cls.__module__.split(".")[0]
    return f"{module}/msg/{cls.__name__}"
