"""Protobuf records: on MQTT the serialized record, the MQTT 5 content type and user properties naming its message;
on Kafka Confluent's Protobuf wire format (00, 4-byte registry id, message indexes, record), every imported
.proto registered as its own subject and referenced; batched in a record batch frame."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from swarm_bridge.codec.errors import CodecError, SchemaMismatch, UnknownSchema
from swarm_bridge.codec.formats.base import (
    Encoding,
    Framing,
    IdLookup,
    SchemaLookup,
    WireFormat,
    WireShape,
    content_type_is,
    same,
)
from swarm_bridge.codec.framing import (
    PROTOBUF_CONTENT_TYPE,
    frame_batch,
    frame_confluent,
    parse_confluent,
    proto_mqtt_properties,
)

if TYPE_CHECKING:
    from swarm_bridge.codec.records import RecordCodec
    from swarm_bridge.codec.registry import RegisteredSchema
    from swarm_bridge.codec.rostypes import RosTypes

__all__ = ["PROTOBUF", "RECORD_INDEXES", "register_proto"]

RECORD_INDEXES = [0]
"""The record's place in its .proto file (its only message): Confluent's message-index array, written as 00."""


def _codec(ros_type: str, types: RosTypes) -> RecordCodec:
    from swarm_bridge.codec.protobuf import ProtoRecordCodec

    return ProtoRecordCodec(ros_type, types)


def _mqtt_encoder(ros_type: str, _types: RosTypes | None, _subject: str, _register: IdLookup | None) -> Encoding:
    """Nothing is registered: what a Protobuf record becomes on Kafka is the gateway's choice (`protobuf_format`,
    Avro by default), and the gateway registers that."""
    props = proto_mqtt_properties(f"swarm_bridge.record.{ros_type.replace('/', '.')}", 1, ros_type=ros_type)
    return Encoding(same, props.content_type, tuple(props.user_properties))


def _mqtt_decoder(_ros_type: str, _types: RosTypes | None, _subject: str,
                  _lookup: SchemaLookup | None) -> Callable[[bytes], bytes]:
    return same


def register_proto(ros_type: str, types: RosTypes | None, subject: str, ids: IdLookup) -> RegisteredSchema:
    """Register the record schema of `ros_type` under `subject`: first each file it imports, under a subject named
    by the file (`ros/<pkg>/msg/<Name>.proto`, Confluent's default for references), then the record's file with
    a reference (import name, subject, version) per import; each file as a base64 FileDescriptorProto."""
    from swarm_bridge.codec.protobuf_schema import file_descriptors
    from swarm_bridge.codec.registry import Schema, SchemaReference

    files = file_descriptors(ros_type, types)
    versions: dict[str, int] = {}
    found = None
    for file in files:
        refs = [SchemaReference(name, name, versions[name]) for name in file.dependency]
        found = ids(subject if file is files[-1] else file.name, Schema.protobuf(file, references=refs))
        versions[file.name] = found.version
    assert found is not None  # file_descriptors always ends with the record's file
    return found


def _registered(ros_type: str, types: RosTypes | None, subject: str, ids: IdLookup | None, what: str) -> int:
    if ids is None:
        raise CodecError(f"{ros_type}: Protobuf on Kafka needs a schema registry to {what} subject {subject}")
    return register_proto(ros_type, types, subject, ids).id


def _kafka_encoder(ros_type: str, types: RosTypes | None, subject: str, register: IdLookup | None) -> Encoding:
    schema_id = _registered(ros_type, types, subject, register, "register")
    header = frame_confluent(schema_id, b"", message_indexes=RECORD_INDEXES)
    return Encoding(lambda body: header + body, PROTOBUF_CONTENT_TYPE)


def _kafka_decoder(ros_type: str, types: RosTypes | None, subject: str,
                   lookup: SchemaLookup | None) -> Callable[[bytes], bytes]:
    """Records of another version of the same record message are read as they are: Protobuf readers skip fields
    they do not know and default the ones missing (the registry's rules keep numbers and types permanent)."""
    from swarm_bridge.codec.protobuf_schema import record_message_name

    schema_id = _registered(ros_type, types, subject, lookup, "look up")
    record = record_message_name(ros_type)
    versions = {schema_id}

    def confluent(payload: bytes) -> bytes:
        frame = parse_confluent(payload, message_indexes=True)
        if frame.message_indexes != RECORD_INDEXES:
            raise SchemaMismatch(subject, f"message {RECORD_INDEXES} of its file", f"{frame.message_indexes}")
        if frame.schema_id not in versions:
            assert lookup is not None  # _registered refused a decoder without one
            try:
                writer = lookup.by_id(frame.schema_id)
            except UnknownSchema:
                raise SchemaMismatch(subject, f"a version of {record}", f"schema id {frame.schema_id}, unknown to "
                                     "the registry") from None
            file = writer.parsed() if writer.kind == "PROTOBUF" else None
            name = f"{file.package}.{file.message_type[0].name}" if file is not None and file.message_type else ""
            if name != record:
                raise SchemaMismatch(subject, f"a version of {record}", f"schema id {frame.schema_id}: "
                                     f"{name or writer.kind}")
            if len(versions) < 256:
                versions.add(frame.schema_id)
        return bytes(frame.payload)

    return confluent


SHAPE = WireShape("protobuf-mqtt", "protobuf", ("mqtt",), f"MQTT 5 content type {PROTOBUF_CONTENT_TYPE}",
                  content_type_is(PROTOBUF_CONTENT_TYPE), by_content_type=True)
CONFLUENT = WireShape("protobuf-confluent", "protobuf", ("kafka",),
                      "starts 00, then a 4-byte schema id, then message indexes (00 for the record)",
                      lambda data, _ct: data[:1] == b"\x00" and data[5:6] == b"\x00")

PROTOBUF = WireFormat("protobuf", _codec, PROTOBUF_CONTENT_TYPE, {
    "mqtt": Framing(SHAPE, _mqtt_encoder, _mqtt_decoder),
    "kafka": Framing(CONFLUENT, _kafka_encoder, _kafka_decoder),
}, frame_batch)
