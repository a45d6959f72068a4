"""Protobuf records: on MQTT the serialized record, the MQTT 5 content type and user properties naming its message;
not on Kafka yet; batched in a record batch frame."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from swarm_bridge.codec.formats.base import Encoding, Framing, IdLookup, WireFormat, WireShape, content_type_is, same
from swarm_bridge.codec.framing import PROTOBUF_CONTENT_TYPE, frame_batch, proto_mqtt_properties

if TYPE_CHECKING:
    from swarm_bridge.codec.records import RecordCodec
    from swarm_bridge.codec.rostypes import RosTypes

__all__ = ["PROTOBUF"]


def _codec(ros_type: str, types: RosTypes) -> RecordCodec:
    from swarm_bridge.codec.protobuf import ProtoRecordCodec

    return ProtoRecordCodec(ros_type, types)


def _mqtt_encoder(ros_type: str, _types: RosTypes | None, _subject: str, _register: IdLookup | None) -> Encoding:
    props = proto_mqtt_properties(f"swarm_bridge.record.{ros_type.replace('/', '.')}", 1, ros_type=ros_type)
    return Encoding(same, props.content_type, tuple(props.user_properties))


def _mqtt_decoder(_ros_type: str, _types: RosTypes | None, _subject: str,
                  _lookup: IdLookup | None) -> Callable[[bytes], bytes]:
    return same


SHAPE = WireShape("protobuf-mqtt", "protobuf", ("mqtt",), f"MQTT 5 content type {PROTOBUF_CONTENT_TYPE}",
                  content_type_is(PROTOBUF_CONTENT_TYPE), by_content_type=True)

PROTOBUF = WireFormat(
    "protobuf", _codec, PROTOBUF_CONTENT_TYPE, {"mqtt": Framing(SHAPE, _mqtt_encoder, _mqtt_decoder)}, frame_batch,
    refusals={"kafka": "format protobuf on a Kafka uplink is not supported yet (the record's .proto imports other "
                       "files, which the registries need as references); use avro or json on Kafka"})
