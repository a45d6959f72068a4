"""Records larger than a transport takes, split into chunks that travel in order and are put together by the reader.

Pure: bytes in, bytes out, no clocks of its own (callers pass `now`). A chunk lost, out of order or corrupted drops
its whole record with a counted reason; a reassembled record is returned only when its length and CRC-32 match
what the first chunk announced, so a reader never sees a corrupt record. The memory of records being put together
is bounded (`max_bytes`, counted when hit) and partial records expire (`max_age_s`).
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from swarm_bridge.codec.errors import FramingError

__all__ = [
    "CHUNK",
    "CHUNK_MAGIC",
    "CHUNK_OVERHEAD",
    "Chunk",
    "Reassembler",
    "Settled",
    "is_chunk",
    "joined",
    "parse_chunk",
    "split_record",
]

CHUNK = "record-chunk"  # the framing's name in FramingError
# NUL first, like the record batch (00 53 42 01): no record starts so; the third byte tells them apart.
CHUNK_MAGIC = b"\x00SC\x01"
_HEAD = struct.Struct(">4sQIIQIIBB")  # magic, seq, index, count, total, record crc, chunk crc, robot len, stream len
CHUNK_OVERHEAD = _HEAD.size + 2 * 255  # the most a chunk's header takes (names of 255 bytes at most)
_MAX_CHUNKS = 1 << 20

# Reasons a whole record is dropped, as counted.
LOST = "chunk lost"
CORRUPT = "chunk corrupt"
MISMATCH = "checksum mismatch"
FULL = "reassembly full"
EXPIRED = "expired"
TOO_LARGE = "record too large"


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a record: the record's identity (robot, stream, seq), its place (index of count), the whole
    record's length and CRC-32, and this piece's bytes."""

    robot_id: str
    stream: str
    seq: int
    index: int
    count: int
    total: int
    crc: int
    data: bytes


def is_chunk(data: bytes | bytearray | memoryview) -> bool:
    """Whether `data` is a chunk (starts with CHUNK_MAGIC)."""
    return bytes(data[:4]) == CHUNK_MAGIC


def split_record(record: bytes, *, robot_id: str, stream: str, seq: int, chunk_bytes: int) -> list[bytes]:
    """The chunks of `record`, each at most `chunk_bytes` long with its header.

    Layout (big-endian): magic 00 53 43 01 | seq u64 | index u32 | count u32 | total length u64 | CRC-32 of the
    whole record u32 | CRC-32 of this chunk's data u32 | robot id length u8 | stream length u8 | robot id |
    stream | data. A record of zero bytes is one chunk with no data."""
    names = robot_id.encode(), stream.encode()
    if max(len(names[0]), len(names[1])) > 255:
        raise FramingError(CHUNK, "robot id and stream must be at most 255 bytes each")
    room = chunk_bytes - _HEAD.size - len(names[0]) - len(names[1])
    if room <= 0:
        raise FramingError(CHUNK, f"chunk_bytes {chunk_bytes} leaves no room for data after the "
                           f"{chunk_bytes - room}-byte header; give at least {CHUNK_OVERHEAD + 1}")
    count = max(1, -(-len(record) // room))
    if count > _MAX_CHUNKS:
        raise FramingError(CHUNK, f"record of {len(record)} bytes needs {count} chunks of {chunk_bytes} bytes "
                           f"(at most {_MAX_CHUNKS}); give a larger chunk_bytes")
    crc = zlib.crc32(record)
    view = memoryview(record)
    out = []
    for index in range(count):
        piece = view[index * room:(index + 1) * room]
        out.append(b"".join((_HEAD.pack(CHUNK_MAGIC, seq, index, count, len(record), crc, zlib.crc32(piece),
                                        len(names[0]), len(names[1])), *names, piece)))
    return out


def parse_chunk(data: bytes | bytearray | memoryview) -> Chunk:
    """The chunk in `data`; FramingError if its header is malformed or its data does not match its CRC-32."""
    raw = bytes(data)
    if len(raw) < _HEAD.size or raw[:4] != CHUNK_MAGIC:
        raise FramingError(CHUNK, f"not a chunk ({len(raw)} bytes, starts {raw[:4].hex(' ') or '(empty)'})")
    _magic, seq, index, count, total, crc, chunk_crc, robot_len, stream_len = _HEAD.unpack_from(raw)
    start = _HEAD.size + robot_len + stream_len
    if len(raw) < start:
        raise FramingError(CHUNK, f"chunk of {len(raw)} bytes is shorter than its header ({start} bytes)")
    if not 0 <= index < count or count > _MAX_CHUNKS:
        raise FramingError(CHUNK, f"chunk index {index} of {count}")
    body = raw[start:]
    if zlib.crc32(body) != chunk_crc:
        raise FramingError(CHUNK, f"chunk {index} of {count} (seq {seq}): data does not match its CRC-32")
    try:
        robot_id = raw[_HEAD.size:_HEAD.size + robot_len].decode()
        stream = raw[_HEAD.size + robot_len:start].decode()
    except UnicodeDecodeError:
        raise FramingError(CHUNK, "robot id or stream is not UTF-8") from None
    return Chunk(robot_id, stream, seq, index, count, total, crc, body)


T = TypeVar("T")


@dataclass
class Settled(Generic[T]):
    """What became of a record's chunks: `record` is the whole record, or None when it was dropped for `reason`;
    `tags` are what the caller handed in with each of its chunks (e.g. the MQTT messages to ack)."""

    ident: tuple[str, str, int]  # (robot_id, stream, seq)
    record: bytes | None
    reason: str | None
    tags: list[T]


@dataclass
class _Partial(Generic[T]):
    first: Chunk
    pieces: list[bytes]
    tags: list[T]
    size: int
    touched: float


@dataclass
class Reassembler(Generic[T]):
    """Chunks in, whole records out, per (source, robot, stream): chunks of one record arrive in order.

    `max_bytes`: chunk data held at most (beyond it the oldest partial record is dropped, reason FULL);
    `max_record_bytes`: a record announced larger is refused at its first chunk; `max_age_s`: a partial record
    with no new chunk for this long is dropped by `expire`. `drops` counts dropped records by reason,
    `duplicates` chunks seen again (a broker's resend), `chunks` every chunk taken."""

    max_bytes: int = 256 << 20
    max_record_bytes: int = 64 << 20
    max_age_s: float = 30.0
    drops: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    chunks: int = 0
    completed: int = 0
    held: int = 0  # chunk bytes held now
    _partials: dict[tuple[str, str, str], _Partial[T]] = field(default_factory=dict)
    _refused: dict[tuple[str, str, str], int] = field(default_factory=dict)  # key -> seq of a record dropped

    def add(self, source: str, data: bytes, tag: T, now: float) -> list[Settled[T]]:
        """Take one chunk (from `source`, e.g. its MQTT topic); returns the records it settled: none while its
        record is incomplete; the record when complete; drops, with their reasons, otherwise."""
        self.chunks += 1
        try:
            chunk = parse_chunk(data)
        except FramingError:
            return self._unreadable(source, data, tag)
        key = (source, chunk.robot_id, chunk.stream)
        ident = (chunk.robot_id, chunk.stream, chunk.seq)
        out: list[Settled[T]] = []
        partial = self._partials.get(key)
        if partial is not None and partial.first.seq == chunk.seq:
            got = len(partial.pieces)
            if chunk.index < got:
                self.duplicates += 1
                return [Settled(ident, None, None, [tag])]
            first = partial.first
            if chunk.index > got or (chunk.count, chunk.total, chunk.crc) != (first.count, first.total, first.crc):
                out.append(self._drop(key, LOST if chunk.index > got else CORRUPT))
                self._refused[key] = chunk.seq
                return [*out, Settled(ident, None, None, [tag])]
        else:
            if partial is not None:
                out.append(self._drop(key, LOST))  # the next record began before this one was complete
            if self._refused.get(key) == chunk.seq:  # the rest of a record already dropped (and counted)
                return [*out, Settled(ident, None, None, [tag])]
            self._refused.pop(key, None)
            if chunk.index != 0:
                self.drops[LOST] += 1
                self._refused[key] = chunk.seq
                return [*out, Settled(ident, None, LOST, [tag])]
            if chunk.total > self.max_record_bytes:
                self.drops[TOO_LARGE] += 1
                self._refused[key] = chunk.seq
                return [*out, Settled(ident, None, TOO_LARGE, [tag])]
            partial = self._partials[key] = _Partial(chunk, [], [], 0, now)
        out.extend(self._make_room(key, len(chunk.data)))
        if key not in self._partials:  # no room even alone
            self._refused[key] = chunk.seq
            return [*out, Settled(ident, None, FULL, [tag])]
        partial.pieces.append(chunk.data)
        partial.tags.append(tag)
        partial.size += len(chunk.data)
        partial.touched = now
        self.held += len(chunk.data)
        if len(partial.pieces) < chunk.count:
            return out
        del self._partials[key]
        self.held -= partial.size
        record = b"".join(partial.pieces)
        if len(record) != chunk.total or zlib.crc32(record) != chunk.crc:
            self.drops[MISMATCH] += 1
            return [*out, Settled(ident, None, MISMATCH, partial.tags)]
        self.completed += 1
        return [*out, Settled(ident, record, None, partial.tags)]

    def expire(self, now: float) -> list[Settled[T]]:
        """Drop the partial records that got no chunk for `max_age_s` (reason EXPIRED)."""
        stale = [key for key, partial in self._partials.items() if now - partial.touched > self.max_age_s]
        return [self._drop(key, EXPIRED) for key in stale]

    def forget(self) -> None:
        """Drop every partial record without counting it: their chunks come again (a reader's new session)."""
        self._partials.clear()
        self._refused.clear()
        self.held = 0

    def pending(self) -> int:
        """Records being put together now."""
        return len(self._partials)

    def _make_room(self, key: tuple[str, str, str], size: int) -> list[Settled[T]]:
        """Drop the oldest partial records (this one last) until `size` more bytes fit in `max_bytes`."""
        out: list[Settled[T]] = []
        while self.held + size > self.max_bytes and self._partials:
            oldest = min(self._partials, key=lambda k: (k == key, self._partials[k].touched))
            out.append(self._drop(oldest, FULL))
        return out

    def _drop(self, key: tuple[str, str, str], reason: str) -> Settled[T]:
        partial = self._partials.pop(key)
        self.held -= partial.size
        self.drops[reason] += 1
        first = partial.first
        return Settled((first.robot_id, first.stream, first.seq), None, reason, partial.tags)

    def _unreadable(self, source: str, data: bytes, tag: T) -> list[Settled[T]]:
        """A chunk whose header or data is damaged: the record it belongs to (the one in progress on `source`
        when the header still names it) is dropped with it, counted once (CORRUPT)."""
        for key in [k for k in self._partials if k[0] == source]:
            first = self._partials[key].first
            if _same_record(data, first):
                dropped = self._drop(key, CORRUPT)
                self._refused[key] = first.seq
                dropped.tags.append(tag)
                return [dropped]
        self.drops[CORRUPT] += 1  # a record of its own, or one whose next chunk will tell (chunk lost)
        return [Settled((source, "", -1), None, CORRUPT, [tag])]


def _same_record(data: bytes, first: Chunk) -> bool:
    """Whether a damaged chunk's header still names the record `first` began (its seq and names intact)."""
    if len(data) < _HEAD.size:
        return False
    seq = int.from_bytes(data[4:12], "big")
    names = f"{first.robot_id}{first.stream}".encode()
    return seq == first.seq and data[_HEAD.size:_HEAD.size + len(names)] == names


def joined(settled: Sequence[Settled[T]]) -> list[bytes]:
    """The whole records among `settled`."""
    return [s.record for s in settled if s.record is not None]
