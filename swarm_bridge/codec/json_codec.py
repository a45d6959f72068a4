"""JSON records, for humans and for the first smoke runs; Avro and Protobuf come with the codec issue.

Wire: one UTF-8 JSON object `{"robot_id", "stream", "seq", "stamp_ns", "ros_type", "schema_version",
"body"}`; non-finite floats as the literals NaN, Infinity, -Infinity (as Python and JavaScript write
them); bytes as lists of ints.
"""

from __future__ import annotations

import json
from typing import Any

from swarm_bridge.codec.envelope import Envelope
from swarm_bridge.codec.errors import RecordError, RecordTypeError

__all__ = ["RecordError", "decode_json", "encode_json", "json_object"]

_ENVELOPE_KEYS = ("robot_id", "stream", "seq", "stamp_ns", "ros_type", "schema_version", "body")


def encode_json(envelope: Envelope) -> bytes:
    """Envelope -> compact UTF-8 JSON bytes."""
    doc = {key: getattr(envelope, key) for key in _ENVELOPE_KEYS}
    return json.dumps(doc, separators=(",", ":"), allow_nan=True, default=_plain).encode("utf-8")


def json_object(payload: bytes) -> dict[str, Any]:
    """The JSON object a record's UTF-8 bytes hold; RecordError when they are not JSON or not an object."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"not a JSON record: {exc}") from None
    if not isinstance(doc, dict):
        raise RecordError(f"expected a JSON object, got {type(doc).__name__}")
    return doc


def decode_json(payload: bytes) -> Envelope:
    """UTF-8 JSON bytes -> Envelope; raises RecordError naming the missing or bad field."""
    doc = json_object(payload)
    for key in _ENVELOPE_KEYS:
        if key not in doc:
            raise RecordError("missing", field=key)
    for key in ("seq", "stamp_ns", "schema_version"):
        if not isinstance(doc[key], int):
            raise RecordError(f"must be an integer, got {doc[key]!r}", field=key)
    if not isinstance(doc["body"], dict):
        raise RecordError("must be an object", field="body")
    return Envelope(
        robot_id=str(doc["robot_id"]),
        stream=str(doc["stream"]),
        seq=doc["seq"],
        stamp_ns=doc["stamp_ns"],
        ros_type=str(doc["ros_type"]),
        body=doc["body"],
        schema_version=doc["schema_version"],
    )


def _plain(value: Any) -> Any:
    """What json cannot write itself: bytes as lists of ints, tuples never reach here."""
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    raise RecordTypeError(f"cannot write a {type(value).__name__} as JSON; give the body as plain values (dict, "
                          "list, str, int, float, bool, None, bytes)")
