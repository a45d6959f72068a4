"""Avro records: on MQTT single-object encoding (C3 01, 8-byte schema fingerprint, body: no registry round trip),
on Kafka the Confluent wire format (00, 4-byte registry id, body); batched in a record batch frame."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from swarm_bridge.codec.errors import CodecError, SchemaMismatch
from swarm_bridge.codec.formats.base import Encoding, Framing, IdLookup, WireFormat, WireShape
from swarm_bridge.codec.framing import (
    SINGLE_OBJECT_MAGIC,
    avro_fingerprint,
    frame_batch,
    frame_confluent,
    frame_single_object,
    parse_confluent,
    parse_single_object,
)

if TYPE_CHECKING:
    from swarm_bridge.codec.records import RecordCodec
    from swarm_bridge.codec.rostypes import RosTypes

__all__ = ["AVRO", "CONTENT_TYPE"]

CONTENT_TYPE = "avro/binary; encoding=single-object"


def _codec(ros_type: str, types: RosTypes) -> RecordCodec:
    from swarm_bridge.codec.avro import AvroRecordCodec

    return AvroRecordCodec(ros_type, types)


def _schema(ros_type: str, types: RosTypes | None) -> object:
    from swarm_bridge.codec.avro import avro_schema

    return avro_schema(ros_type, types)


def _mqtt_encoder(ros_type: str, types: RosTypes | None, _subject: str, _register: IdLookup | None) -> Encoding:
    fingerprint = avro_fingerprint(_schema(ros_type, types))
    return Encoding(lambda body: frame_single_object(fingerprint, body), CONTENT_TYPE, (("ros_type", ros_type),))


def _mqtt_decoder(ros_type: str, types: RosTypes | None, subject: str,
                  _lookup: IdLookup | None) -> Callable[[bytes], bytes]:
    fingerprint = avro_fingerprint(_schema(ros_type, types))

    def single_object(payload: bytes) -> bytes:
        frame = parse_single_object(payload)
        if frame.fingerprint != fingerprint:
            raise SchemaMismatch(subject, f"fingerprint {fingerprint:#018x}", f"{frame.fingerprint:#018x}")
        return bytes(frame.payload)

    return single_object


def _registered(ros_type: str, types: RosTypes | None, subject: str, ids: IdLookup | None, what: str) -> int:
    if ids is None:
        raise CodecError(f"{ros_type}: Avro on Kafka needs a schema registry to {what} subject {subject}")
    from swarm_bridge.codec.registry import Schema

    return ids(subject, Schema.avro(_schema(ros_type, types))).id


def _kafka_encoder(ros_type: str, types: RosTypes | None, subject: str, register: IdLookup | None) -> Encoding:
    schema_id = _registered(ros_type, types, subject, register, "register")
    return Encoding(lambda body: frame_confluent(schema_id, body), CONTENT_TYPE)


def _kafka_decoder(ros_type: str, types: RosTypes | None, subject: str,
                   lookup: IdLookup | None) -> Callable[[bytes], bytes]:
    schema_id = _registered(ros_type, types, subject, lookup, "look up")

    def confluent(payload: bytes) -> bytes:
        frame = parse_confluent(payload)
        if frame.schema_id != schema_id:
            raise SchemaMismatch(subject, f"schema id {schema_id}", f"schema id {frame.schema_id}")
        return bytes(frame.payload)

    return confluent


SINGLE_OBJECT = WireShape("avro-single-object", "avro", ("mqtt",), "starts C3 01, then an 8-byte schema fingerprint",
                          lambda data, _ct: data.startswith(SINGLE_OBJECT_MAGIC))
# A record's Avro body starts with its robot id's length (a non-empty string: never 00); 00 there is Protobuf's
# message index of the record (`formats.protobuf.CONFLUENT`).
CONFLUENT = WireShape("avro-confluent", "avro", ("kafka",), "starts 00, then a 4-byte schema id, then not 00",
                      lambda data, _ct: data[:1] == b"\x00" and len(data) >= 6 and data[5] != 0)

AVRO = WireFormat("avro", _codec, CONTENT_TYPE, {
    "mqtt": Framing(SINGLE_OBJECT, _mqtt_encoder, _mqtt_decoder),
    "kafka": Framing(CONFLUENT, _kafka_encoder, _kafka_decoder),
}, frame_batch)
