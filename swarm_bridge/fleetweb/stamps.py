"""When a robot stamped a record, read from the front of its bytes without decoding it: Avro records are
envelope-first (robot_id string, stream string, seq long, stamp_ns long, ...; `swarm_bridge.codec.avro`), a long
a zigzag varint and a string its length then its bytes. What gives every stream's latency on the page."""

from __future__ import annotations

from swarm_bridge.codec.framing import SINGLE_OBJECT_MAGIC, split_batch

__all__ = ["record_stamp_ns"]

_HEADER = len(SINGLE_OBJECT_MAGIC) + 8  # the marker and the schema fingerprint
_MAX_VARINT = 10


def _long(data: bytes, pos: int) -> tuple[int, int]:
    """The Avro long at `pos` and the position after it; IndexError when the data is cut off, and (0, the end) for
    a varint too long to be one, so that the next read is cut off."""
    raw = shift = 0
    for i in range(_MAX_VARINT):
        byte = data[pos + i]
        raw |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos + i + 1
        shift += 7
    return 0, len(data)


def record_stamp_ns(payload: bytes) -> int:
    """The stamp_ns of an Avro single-object record (of the last record of a batch); 0 for anything else or a
    record too short to hold one."""
    try:
        record = split_batch(payload)[-1] if payload else b""
        if not record.startswith(SINGLE_OBJECT_MAGIC):
            return 0
        pos = _HEADER
        for _string in range(2):  # robot_id, stream
            size, pos = _long(record, pos)
            if size < 0:
                return 0
            pos += size
        _seq, pos = _long(record, pos)
        stamp, _ = _long(record, pos)
    except IndexError:
        return 0
    return stamp if stamp > 0 else 0
