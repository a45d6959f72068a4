"""Helpers the generated CDR code calls on rare paths: wide strings, string sequences, byte conversions."""

from __future__ import annotations

import struct
from typing import Any

from swarm_bridge.codec.errors import RecordError

__all__ = ["ZEROS", "as_bytes", "byte", "fixed_bytes", "helpers"]

ZEROS = tuple(bytes(n) for n in range(8))


def helpers(endian: str) -> dict[str, Any]:
    """Rare-path helpers the generated code calls: wide strings, string sequences, byte conversions."""
    u32 = struct.Struct(endian + "I")
    utf16 = "utf-16-le" if endian == "<" else "utf-16-be"

    def read_wstring(buf: bytes, pos: int) -> tuple[str, int]:
        pos = (pos + 3) & -4
        (count,) = u32.unpack_from(buf, pos)
        units = struct.unpack_from(f"{endian}{count}I", buf, pos + 4)
        return struct.pack(f"{endian}{count}H", *units).decode(utf16), pos + 4 + 4 * count

    def read_strings(buf: bytes, pos: int, count: int) -> tuple[list[str], int]:
        values = []
        for _ in range(count):
            pos = (pos + 3) & -4
            (length,) = u32.unpack_from(buf, pos)
            end = pos + 4 + length
            if not length or buf[end - 1]:
                raise RecordError("string without its NUL terminator")
            values.append(buf[pos + 4 : end - 1].decode())
            pos = end
        return values, pos

    def read_wstrings(buf: bytes, pos: int, count: int) -> tuple[list[str], int]:
        values = []
        for _ in range(count):
            value, pos = read_wstring(buf, pos)
            values.append(value)
        return values, pos

    def write_wstring(out: bytearray, value: str, bound: int) -> None:
        units = struct.unpack(f"{endian}{len(value.encode(utf16)) // 2}H", value.encode(utf16))
        if bound and len(units) > bound:
            raise RecordError(f"wstring longer than {bound} code units")
        if 0 in units:
            raise RecordError("CDR strings cannot contain NUL")
        out += ZEROS[-len(out) & 3]
        out += struct.pack(f"{endian}{len(units) + 1}I", len(units), *units)

    def write_strings(out: bytearray, values: list[str], bound: int) -> None:
        for value in values:
            encoded = value.encode()
            if b"\x00" in encoded or (bound and len(encoded) > bound):
                raise RecordError("string with NUL or over its bound")
            out += ZEROS[-len(out) & 3]
            out += u32.pack(len(encoded) + 1)
            out += encoded
            out += b"\x00"

    def write_wstrings(out: bytearray, values: list[str], bound: int) -> None:
        for value in values:
            write_wstring(out, value, bound)

    return {
        "_read_wstring": read_wstring, "_read_strings": read_strings, "_read_wstrings": read_wstrings,
        "_write_wstring": write_wstring, "_write_strings": write_strings, "_write_wstrings": write_wstrings,
        "_as_bytes": as_bytes, "_fixed_bytes": fixed_bytes, "_byte": byte,
    }


def as_bytes(value: Any) -> bytes:
    """uint8/byte array value -> bytes: from bytes, bytearray, list of ints, or rclpy's list of 1-byte bytes."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if value and isinstance(value[0], bytes):
        joined = b"".join(value)
        if len(joined) != len(value):
            raise RecordError("a byte array item holds more than one byte; give each item as one byte (0..255)")
        return joined
    return bytes(value)


def fixed_bytes(value: Any, size: int) -> bytes:
    data = as_bytes(value)
    if len(data) != size:
        raise RecordError(f"a fixed array of {size} bytes got {len(data)}; give exactly {size}")
    return data


def byte(value: Any) -> int:
    """A `byte` scalar: an int, or rclpy's 1-byte bytes."""
    return value[0] if isinstance(value, bytes) and len(value) == 1 else value
