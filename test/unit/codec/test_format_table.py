"""Wire formats as one table (`codec.formats.FORMATS`): the config's view of it, the shapes readers recognise, the
codecs, content types and batching all come from it."""

from __future__ import annotations

from typing import get_args

import pytest

from swarm_bridge.codec import CodecError
from swarm_bridge.codec.formats import FORMATS, wire_format
from swarm_bridge.codec.framing import frame_batch, frame_json_batch
from swarm_bridge.codec.recognise import SHAPES, expected_shape
from swarm_bridge.codec.records import RecordFormat, record_codec
from swarm_bridge.codec.wire import wire_encoder
from swarm_bridge.config.common import ROUTE_FORMATS, RecordFormatName


def test_the_config_names_the_formats_of_the_table_and_where_they_travel() -> None:
    assert set(get_args(RecordFormatName)) == set(get_args(RecordFormat)) == set(FORMATS)
    assert {name: set(kinds) for name, kinds in ROUTE_FORMATS.items()} == {
        name: set(wire.framings) for name, wire in FORMATS.items()}


def test_every_framing_shape_is_recognised_and_expected() -> None:
    for name, wire in FORMATS.items():
        for transport, framing in wire.framings.items():
            assert framing.shape in SHAPES and framing.shape.format == name
            assert transport in framing.shape.transports
            assert expected_shape(name, transport) is framing.shape


def test_an_entry_gives_codec_content_type_and_batching() -> None:
    assert (FORMATS["json"].batch, FORMATS["avro"].batch) == (frame_json_batch, frame_batch)
    assert type(record_codec("std_msgs/msg/String", "json")).__name__ == "JsonRecordCodec"
    encoder = wire_encoder("std_msgs/msg/String", "avro", "mqtt", subject="s")
    assert encoder.content_type == FORMATS["avro"].content_type


def test_an_unknown_format_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(CodecError, match="Valid options are: avro, protobuf, json"):
        wire_format("xml")


def test_a_framing_that_carries_a_registry_id_needs_a_registry() -> None:
    with pytest.raises(CodecError, match="Protobuf on Kafka needs a schema registry to register subject s"):
        wire_encoder("std_msgs/msg/String", "protobuf", "kafka", subject="s")
