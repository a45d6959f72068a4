"""Record compression per route: each codec round-trips, refuses damaged input and bombs with a CompressionError,
and the config's level ranges are the codec table's."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm_bridge.codec.compression import COMPRESSIONS, CompressionError, compression_of, decompress
from swarm_bridge.config.robot import COMPRESSION_LEVELS


@pytest.mark.parametrize("name", sorted(COMPRESSIONS))
@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=50_000))
def test_every_codec_round_trips(name: str, data: bytes) -> None:
    codec = COMPRESSIONS[name]
    for level in codec.levels:
        assert decompress(name, codec.compress(data, level)) == data


@pytest.mark.parametrize("name", sorted(COMPRESSIONS))
def test_damaged_input_and_bombs_are_refused(name: str) -> None:
    codec = COMPRESSIONS[name]
    with pytest.raises(CompressionError, match=name):
        decompress(name, b"not compressed at all")
    with pytest.raises(CompressionError, match="more than 1000 bytes"):
        decompress(name, codec.compress(bytes(1_000_000), codec.default_level), max_size=1000)


def test_the_config_names_the_codec_table() -> None:
    assert {name: (*c.levels, c.default_level) for name, c in COMPRESSIONS.items()} == COMPRESSION_LEVELS


def test_properties_name_the_compression() -> None:
    assert compression_of([("ros_type", "x"), ("compression", "zstd")]) == "zstd"
    assert compression_of(None) is None and decompress(None, b"as is") == b"as is"
    with pytest.raises(CompressionError, match="known: zstd, lz4"):
        decompress("brotli", b"x")
