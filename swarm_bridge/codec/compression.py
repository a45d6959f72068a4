"""Record compression per route: one table of codecs (zstd, lz4 frame), each a compress and a bounded decompress.

A compressed record says so in its properties (MQTT 5 user property `compression`, Kafka header `compression`),
never in its bytes, so a reader that finds no property reads the record as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import lz4.frame
import zstandard

from swarm_bridge.codec.errors import CodecError
from swarm_bridge.codec.framing import split_batch

__all__ = ["COMPRESSIONS", "COMPRESSION_PROPERTY", "Compression", "CompressionError", "compression_of", "decompress",
           "records_of"]

COMPRESSION_PROPERTY = "compression"  # the MQTT 5 user property / Kafka header naming a record's compression
DEFAULT_MAX_RECORD = 64 << 20  # a record never decompresses to more than this (a zip bomb is refused)


class CompressionError(CodecError):
    """A compressed record that cannot be undone (damaged, unknown codec, larger than allowed once undone)."""

    def __init__(self, codec: str, problem: str) -> None:
        self.codec, self.problem = codec, problem
        super().__init__(f"{codec}: {problem}")


@dataclass(frozen=True)
class Compression:
    """One codec: `compress(data, level)` and `decompress(data, max_size)`; `levels` is its valid range."""

    name: str
    compress: Callable[[bytes, int], bytes]
    decompress: Callable[[bytes, int], bytes]
    levels: tuple[int, int]
    default_level: int


def _zstd_compress(data: bytes, level: int) -> bytes:
    return zstandard.ZstdCompressor(level=level).compress(data)


def _zstd_decompress(data: bytes, max_size: int) -> bytes:
    try:
        with zstandard.ZstdDecompressor().stream_reader(data) as reader:  # reads no more than allowed
            out = reader.read(max_size + 1)
    except zstandard.ZstdError as exc:
        raise CompressionError("zstd", str(exc)) from None
    if len(out) > max_size:
        raise CompressionError("zstd", f"record decompresses to more than {max_size} bytes")
    return out


def _lz4_compress(data: bytes, level: int) -> bytes:
    return bytes(lz4.frame.compress(data, compression_level=level, content_checksum=False))


def _lz4_decompress(data: bytes, max_size: int) -> bytes:
    try:
        out = lz4.frame.LZ4FrameDecompressor().decompress(data, max_length=max_size + 1)
    except RuntimeError as exc:
        raise CompressionError("lz4", str(exc)) from None
    if len(out) > max_size:
        raise CompressionError("lz4", f"record decompresses to more than {max_size} bytes")
    return bytes(out)


COMPRESSIONS: dict[str, Compression] = {c.name: c for c in (
    Compression("zstd", _zstd_compress, _zstd_decompress, (1, 22), 3),
    Compression("lz4", _lz4_compress, _lz4_decompress, (0, 16), 0),
)}
"""compression name (route config `compression`) -> its codec."""


def compression_of(properties: Sequence[tuple[str, str]] | None) -> str | None:
    """The compression a record's properties (MQTT user properties or decoded Kafka headers) name, or None."""
    for name, value in properties or ():
        if name == COMPRESSION_PROPERTY:
            return value
    return None


def decompress(name: str | None, data: bytes, *, max_size: int = DEFAULT_MAX_RECORD) -> bytes:
    """`data` as it was before `name` compressed it (as is when `name` is None); CompressionError otherwise."""
    if name is None:
        return data
    codec = COMPRESSIONS.get(name)
    if codec is None:
        raise CompressionError(name, f"unknown compression; known: {', '.join(COMPRESSIONS)}")
    return codec.decompress(data, max_size)


def records_of(payload: bytes, name: str | None, *, max_size: int = DEFAULT_MAX_RECORD) -> list[bytes]:
    """The records of one message whose records `name` compressed: each record of a batch (a compressed route's
    records share a binary record batch) undone on its own; FramingError or CompressionError when damaged."""
    if name is None:
        return [payload]
    return [decompress(name, part, max_size=max_size) for part in split_batch(payload, max_payload=0)]
