"""Varints and the other small encoders the generated transcoders call (Avro zigzag, Protobuf tags)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from swarm_bridge.codec.errors import RecordError

__all__ = ["AVRO_HELPERS", "PROTO_HELPERS", "avro_string", "pb_tag", "varint", "zigzag"]

_SMALL = tuple(bytes((i,)) for i in range(128))


def varint(value: int) -> bytes:
    """Unsigned LEB128 of a non-negative int (Protobuf varint; Avro after zigzag); unrolled for common sizes."""
    if value < 0x80:
        return _SMALL[value]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    if value < 0x200000:
        return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14))
    if value < 0x10000000:
        return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14 & 0x7F | 0x80, value >> 21))
    if value < 0x800000000:
        return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14 & 0x7F | 0x80,
                      value >> 21 & 0x7F | 0x80, value >> 28))
    if 1 << 56 <= value < 1 << 63:  # nanosecond stamps since 1970, zigzagged or not
        return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14 & 0x7F | 0x80,
                      value >> 21 & 0x7F | 0x80, value >> 28 & 0x7F | 0x80, value >> 35 & 0x7F | 0x80,
                      value >> 42 & 0x7F | 0x80, value >> 49 & 0x7F | 0x80, value >> 56))
    return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14 & 0x7F | 0x80,
                  value >> 21 & 0x7F | 0x80, value >> 28 & 0x7F | 0x80)) + varint(value >> 35)


def zigzag(value: int) -> bytes:
    """Avro int/long: zigzag, then varint (for values in the int64 range)."""
    return varint((value << 1) ^ (value >> 63))


def signed_varint(value: int) -> bytes:
    """Protobuf int32/int64: a negative value as its 64-bit two's complement."""
    return varint(value if value >= 0 else value + 2**64)


def pb_tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def avro_string(value: str) -> bytes:
    data = value.encode()
    return zigzag(len(data)) + data


def avro_decimal(value: int) -> bytes:
    """uint64 as Avro decimal(20, 0) on bytes: minimal big-endian two's complement, length-prefixed."""
    data = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return zigzag(len(data)) + data


def avro_array(count: int, payload: bytes) -> bytes:
    """One block of `count` items, then the end marker (what fastavro writes)."""
    return zigzag(count) + payload + b"\x00" if count else b"\x00"


def _int64_zigzag(value: int) -> bytes:
    if not isinstance(value, int) or not -(2**63) <= value < 2**63:
        raise RecordError(f"{value!r} is not an int64; give an integer in the int64 range")
    return varint((value << 1) ^ (value >> 63))


def _int32_zigzag(value: int) -> bytes:
    if not isinstance(value, int) or not -(2**31) <= value < 2**31:
        raise RecordError(f"{value!r} is not an int32; give an integer in the int32 range")
    return varint((value << 1) ^ (value >> 63))


def _int64_varint(value: int) -> bytes:
    if not isinstance(value, int) or not -(2**63) <= value < 2**63:
        raise RecordError(f"{value!r} is not an int64; give an integer in the int64 range")
    return varint(value if value >= 0 else value + 2**64)


def _int32_varint(value: int) -> bytes:
    if not isinstance(value, int) or not -(2**31) <= value < 2**31:
        raise RecordError(f"{value!r} is not an int32; give an integer in the int32 range")
    return varint(value if value >= 0 else value + 2**64)


def pb_string(value: str) -> bytes:
    data = value.encode()
    return varint(len(data)) + data


def pb_delimited(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field (packed scalars, bytes); left out when empty, as proto3 does."""
    return tag + varint(len(payload)) + payload if payload else b""


def pb_repeated(tag: bytes, contents: Iterable[bytes]) -> bytes:
    """A repeated message or string field: tag, length, content for each item."""
    return b"".join([tag + varint(len(content)) + content for content in contents])


AVRO_HELPERS: dict[str, Any] = {
    "_zz": zigzag, "_adec": avro_decimal, "_astr": avro_string, "_aarr": avro_array,
    "_zzlong": _int64_zigzag, "_zzint": _int32_zigzag,
}
PROTO_HELPERS: dict[str, Any] = {
    "_pv": varint, "_pvs": signed_varint, "_pstr": pb_string, "_plen": pb_delimited, "_prep": pb_repeated,
    "_utf8": str.encode, "_pvs64": _int64_varint, "_pvs32": _int32_varint,
}
