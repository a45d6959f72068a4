"""VDA 5050 messages to and from MQTT payloads: UTF-8 JSON objects, read into the models of `models`; anything else
is a MessageInvalid naming the topic and the field."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import ValidationError

from swarm_bridge.vda5050.errors import MessageInvalid
from swarm_bridge.vda5050.models import Message
from swarm_bridge.vda5050.schemas import OfficialSchemas

__all__ = ["decode", "decode_object", "encode"]

M = TypeVar("M", bound=Message)


def encode(message: Message) -> bytes:
    """The message as compact UTF-8 JSON, camelCase, optional fields that are None left out."""
    return json.dumps(message.wire(), separators=(",", ":")).encode()


def decode_object(topic: str, payload: bytes) -> dict[str, Any]:
    """One payload of `topic` as its JSON object; MessageInvalid when it is not UTF-8 JSON or no object."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageInvalid(topic, "", f"not UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MessageInvalid(topic, "", f"expected a JSON object, got {type(doc).__name__}")
    return doc


def decode(topic: str, payload: bytes, model: type[M], schemas: OfficialSchemas | None = None) -> M:
    """One payload of `topic` as `model`; checked against the official schema first when `schemas` is given."""
    doc = decode_object(topic, payload)
    if schemas is not None:
        schemas.check(topic, doc)
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise MessageInvalid(topic, field, f"{first['msg']}{more}") from None
