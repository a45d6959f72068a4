"""The envelope head of a record (robot_id, stream, seq, ros_type) read cheaply, without decoding the body.

Avro records are envelope-first (`swarm_bridge.codec.avro`): robot_id string, stream string, seq long,
stamp_ns long, ros_type string, schema_version int, then the body; Avro writes a long as a zigzag varint
and a string as its length (a long) then UTF-8 bytes, so the head is read from the front of the bytes.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from swarm_bridge.codec.errors import RecordError
from swarm_bridge.codec.json_codec import json_object

__all__ = ["Head", "avro_head", "json_head"]

_MAX_VARINT_BYTES = 10
_VARINT = re.compile(rb"[\x80-\xff]{0,9}[\x00-\x7f]")  # one whole varint (at most 10 bytes)
_TWO_VARINTS = re.compile(rb"([\x80-\xff]{0,9}[\x00-\x7f])[\x80-\xff]{0,9}[\x00-\x7f]")  # seq (group 1), stamp_ns


class Head(NamedTuple):
    """Who sent a record, on which stream, with which seq, of which ROS type."""

    robot_id: str
    stream: str
    seq: int
    ros_type: str


def _long(data: bytes, pos: int, field: str) -> tuple[int, int]:
    """The Avro long at `pos` and the position after it."""
    if pos < len(data) and data[pos] < 0x80:  # one byte: string lengths, small numbers
        raw = data[pos]
        return (raw >> 1) ^ -(raw & 1), pos + 1
    raw = shift = 0
    chunk = data[pos:pos + _MAX_VARINT_BYTES]
    for i, byte in enumerate(chunk):
        raw |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos + i + 1
        shift += 7
    if len(chunk) < _MAX_VARINT_BYTES:
        raise RecordError(f"cut off at byte {max(pos, len(data))} of {len(data)}", field=field)
    raise RecordError(f"varint longer than {_MAX_VARINT_BYTES} bytes at byte {pos}", field=field)


def _skip_long(data: bytes, pos: int, field: str) -> int:
    """The position after the Avro long at `pos`, without decoding it; RecordError as `_long`."""
    match = _VARINT.match(data, pos)
    return match.end() if match is not None else _long(data, pos, field)[1]


def _string(data: bytes, pos: int, field: str) -> tuple[str, int]:
    size, pos = _long(data, pos, field)
    end = pos + size
    if size < 0 or end > len(data):
        raise RecordError(f"string of {size} bytes at byte {pos}, {len(data) - pos} left", field=field)
    try:
        return data[pos:end].decode("utf-8"), end
    except UnicodeDecodeError:
        raise RecordError("not UTF-8", field=field) from None


def avro_head(body: bytes) -> Head:
    """The head of an Avro record body (no framing); RecordError naming the field if it is cut off or bad."""
    # The common case in one pass: robot_id, stream and ros_type shorter than 64 bytes (a one-byte length, even
    # as Avro zigzags it: bits 0 and 7 clear), seq and stamp_ns found by one regex. Anything else, and every
    # error, is left to the field-by-field reader below.
    try:
        size = body[0]
        if not size & 0x81:
            robot_end = 1 + (size >> 1)
            size = body[robot_end]
            if not size & 0x81:
                seq_at = robot_end + 1 + (size >> 1)
                longs = _TWO_VARINTS.match(body, seq_at)
                if longs is not None:
                    type_at = longs.end()
                    size = body[type_at]
                    type_end = type_at + 1 + (size >> 1)
                    if not size & 0x81 and type_end <= len(body):
                        raw = shift = 0
                        for byte in body[seq_at:longs.end(1)]:
                            raw |= (byte & 0x7F) << shift
                            shift += 7
                        return Head(body[1:robot_end].decode(), body[robot_end + 1:seq_at].decode(),
                                    (raw >> 1) ^ -(raw & 1), body[type_at + 1:type_end].decode())
    except (IndexError, UnicodeDecodeError):
        pass
    return _avro_head(body)


def _avro_head(body: bytes) -> Head:
    robot_id, pos = _string(body, 0, "robot_id")
    stream, pos = _string(body, pos, "stream")
    seq, pos = _long(body, pos, "seq")
    pos = _skip_long(body, pos, "stamp_ns")
    ros_type, pos = _string(body, pos, "ros_type")
    return Head(robot_id, stream, seq, ros_type)


def json_head(payload: bytes) -> Head:
    """The head of a JSON record; RecordError naming the missing or bad field."""
    doc = json_object(payload)
    for key, kind in (("robot_id", str), ("stream", str), ("seq", int), ("ros_type", str)):
        if not isinstance(doc.get(key), kind) or isinstance(doc.get(key), bool):
            raise RecordError(f"missing or not a {kind.__name__} (got {doc.get(key)!r})", field=key)
    return Head(doc["robot_id"], doc["stream"], doc["seq"], doc["ros_type"])
