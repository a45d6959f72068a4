"""Chunks of large records, pure: split and put together again; a chunk lost, repeated, flipped or late drops the
whole record with a counted reason and never yields a corrupt one; memory bounded, partial records expire."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm_bridge.codec.chunks import CHUNK_OVERHEAD, Reassembler, is_chunk, parse_chunk, split_record
from swarm_bridge.codec.errors import FramingError

TOPIC = "swarm/f/r1/telemetry/camera"


def _split(record: bytes, seq: int = 7, size: int = 1024) -> list[bytes]:
    return split_record(record, robot_id="r1", stream="camera", seq=seq, chunk_bytes=size)


def _feed(reassembler: Reassembler[int], chunks: list[bytes], now: float = 0.0) -> list[bytes]:
    out = []
    for index, chunk in enumerate(chunks):
        out += [s.record for s in reassembler.add(TOPIC, chunk, index, now) if s.record is not None]
    return out


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=20_000), st.integers(min_value=CHUNK_OVERHEAD + 1, max_value=5000))
def test_any_record_comes_back_whole(record: bytes, size: int) -> None:
    chunks = _split(record, size=size)
    assert all(len(c) <= size and is_chunk(c) for c in chunks)
    reassembler: Reassembler[int] = Reassembler()
    assert _feed(reassembler, chunks) == [record]
    assert reassembler.held == 0 and reassembler.pending() == 0 and not reassembler.drops


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=3000, max_size=12_000), st.data())
def test_a_lost_chunk_drops_the_record_counted_and_the_next_arrives(record: bytes, data: st.DataObject) -> None:
    chunks = _split(record, seq=1)
    lost = data.draw(st.integers(0, len(chunks) - 1))
    reassembler: Reassembler[int] = Reassembler()
    got = _feed(reassembler, chunks[:lost] + chunks[lost + 1:])
    nxt = _feed(reassembler, _split(b"next" * 500, seq=2))
    assert got == [] and nxt == [b"next" * 500]
    assert sum(reassembler.drops.values()) == 1 and reassembler.drops["chunk lost"] == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=2000, max_size=8000), st.data())
def test_a_flipped_byte_anywhere_never_yields_a_corrupt_record(record: bytes, data: st.DataObject) -> None:
    chunks = _split(record, seq=3)
    which = data.draw(st.integers(0, len(chunks) - 1))
    at = data.draw(st.integers(0, len(chunks[which]) - 1))
    bit = data.draw(st.integers(0, 7))
    damaged = bytearray(chunks[which])
    damaged[at] ^= 1 << bit
    chunks[which] = bytes(damaged)
    reassembler: Reassembler[int] = Reassembler(max_age_s=1.0)
    got = _feed(reassembler, chunks)
    got += [s.record for s in reassembler.expire(10.0) if s.record is not None]
    assert got == [] or got == [record]  # a flip in an unused header bit is harmless; a different record never
    if not got:
        assert sum(reassembler.drops.values()) >= 1
    assert _feed(reassembler, _split(b"x" * 3000, seq=4), now=11.0) == [b"x" * 3000]


def test_every_chunk_is_handed_back_once_with_its_record() -> None:
    reassembler: Reassembler[int] = Reassembler()
    chunks = _split(os.urandom(5000))
    settled = [s for i, c in enumerate(chunks) for s in reassembler.add(TOPIC, c, i, 0.0)]
    assert len(settled) == 1 and settled[0].tags == list(range(len(chunks))) and settled[0].ident == ("r1", "camera", 7)


def test_a_resent_chunk_is_a_duplicate_not_a_drop() -> None:
    reassembler: Reassembler[int] = Reassembler()
    record = os.urandom(5000)
    chunks = _split(record)
    assert _feed(reassembler, [*chunks[:2], chunks[1], *chunks[2:]]) == [record]
    assert reassembler.duplicates == 1 and not reassembler.drops


def test_the_rest_of_a_dropped_record_is_counted_once() -> None:
    reassembler: Reassembler[int] = Reassembler()
    chunks = _split(os.urandom(8000))
    assert _feed(reassembler, chunks[1:]) == []  # began mid-record (a reader that started late)
    assert dict(reassembler.drops) == {"chunk lost": 1}


def test_memory_is_bounded_and_the_cap_counted() -> None:
    reassembler: Reassembler[int] = Reassembler(max_bytes=6000)
    first, second = _split(os.urandom(5000), seq=1), _split(os.urandom(5000), seq=1)
    for index, chunk in enumerate(first[:-1]):
        reassembler.add("a", chunk, index, 0.0)
    for index, chunk in enumerate(second[:-1]):
        reassembler.add("b", chunk, index, 1.0)
    assert reassembler.held <= 6000 and reassembler.drops["reassembly full"] == 1
    assert reassembler.pending() == 1


def test_a_record_announced_too_large_is_refused_at_its_first_chunk() -> None:
    reassembler: Reassembler[int] = Reassembler(max_record_bytes=4000)
    assert _feed(reassembler, _split(os.urandom(5000))) == []
    assert reassembler.drops["record too large"] == 1 and reassembler.held == 0


def test_partial_records_expire() -> None:
    reassembler: Reassembler[int] = Reassembler(max_age_s=5.0)
    chunks = _split(os.urandom(5000))
    reassembler.add(TOPIC, chunks[0], 0, 0.0)
    assert reassembler.expire(4.0) == []
    [gone] = reassembler.expire(6.0)
    assert gone.reason == "expired" and gone.tags == [0] and reassembler.held == 0


def test_a_chunk_size_without_room_for_data_is_refused_with_the_fix() -> None:
    with pytest.raises(FramingError, match="chunk_bytes 30 leaves no room"):
        _split(b"abc", size=30)
    with pytest.raises(FramingError, match="does not match its CRC-32"):
        parse_chunk(_split(b"abc")[0][:-1] + b"d")
