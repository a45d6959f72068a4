"""Avro records: on MQTT single-object encoding (C3 01, 8-byte schema fingerprint, body: no registry round trip),
on Kafka the Confluent wire format (00, 4-byte registry id, body); batched in a record batch frame.

A decoder given a registry reads records of another version of its record (another fingerprint or id): the
writer's schema comes from the registry, the record is resolved to the reader's schema (Avro schema resolution:
fields added with defaults, fields removed), once per writer schema; anything else is a SchemaMismatch."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from swarm_bridge.codec.errors import CodecError, RecordError, SchemaMismatch, UnknownSchema
from swarm_bridge.codec.formats.base import Encoding, Framing, IdLookup, SchemaLookup, WireFormat, WireShape
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
    from swarm_bridge.codec.registry import RegisteredSchema, Schema
    from swarm_bridge.codec.rostypes import RosTypes

__all__ = ["AVRO", "CONTENT_TYPE"]

CONTENT_TYPE = "avro/binary; encoding=single-object"


def _codec(ros_type: str, types: RosTypes) -> RecordCodec:
    from swarm_bridge.codec.avro import AvroRecordCodec

    return AvroRecordCodec(ros_type, types)


def _schema(ros_type: str, types: RosTypes | None) -> dict[str, Any]:
    from swarm_bridge.codec.avro import avro_schema

    return avro_schema(ros_type, types)


def _mqtt_encoder(ros_type: str, types: RosTypes | None, subject: str, register: IdLookup | None) -> Encoding:
    """With `register`, the schema is registered under `subject` first (a robot with a registry configured: refused
    at its start if the subject's level forbids it; readers then find it by its fingerprint)."""
    if register is not None:
        _registered(ros_type, types, subject, register, "register")
    fingerprint = avro_fingerprint(_schema(ros_type, types))
    # no size limit here: the robot sends a record above its uplink's chunk_bytes as chunks (codec/chunks.py)
    return Encoding(lambda body: frame_single_object(fingerprint, body, max_payload=0), CONTENT_TYPE,
                    (("ros_type", ros_type),))


_MAX_WRITERS = 256  # writer schemas a decoder keeps resolved (versions of one record: a handful)


def _resolver(reader: dict[str, Any], subject: str, what: str, writer: Schema) -> Callable[[bytes], bytes]:
    """Avro body of `writer` -> the same record as Avro body of `reader`; SchemaMismatch if it is another record."""
    import io

    from fastavro import parse_schema, schemaless_reader, schemaless_writer

    parsed_writer = writer.parsed() if writer.kind == "AVRO" else None
    if not isinstance(parsed_writer, dict) or _full_name(parsed_writer) != _full_name(reader):
        name = _full_name(parsed_writer) if isinstance(parsed_writer, dict) else writer.kind
        raise SchemaMismatch(subject, f"a version of {_full_name(reader)}", f"{what}: {name}")
    read_as, write_as = parse_schema(parsed_writer), parse_schema(reader)

    def resolve(body: bytes) -> bytes:
        try:
            record = schemaless_reader(io.BytesIO(body), read_as, write_as)
        except Exception as exc:  # fastavro raises many kinds on garbage or unresolvable schemas
            raise RecordError(f"{what}: cannot resolve to the reader's schema: {type(exc).__name__}: {exc}") from None
        out = io.BytesIO()
        schemaless_writer(out, write_as, record)
        return out.getvalue()

    return resolve


def _full_name(schema: dict[str, Any]) -> str:
    name, namespace = str(schema.get("name", "")), schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


class _Writers:
    """Resolvers of the writer schemas a decoder met, by fingerprint or id (bounded: cleared when full)."""

    def __init__(self, reader: dict[str, Any], subject: str) -> None:
        self.reader, self.subject = reader, subject
        self._found: dict[int, Callable[[bytes], bytes]] = {}

    def body(self, key: int, what: str, writer: Callable[[], Schema], body: bytes) -> bytes:
        resolve = self._found.get(key)
        if resolve is None:
            if len(self._found) >= _MAX_WRITERS:
                self._found.clear()
            try:
                schema = writer()
            except UnknownSchema:  # no version of this record the registry knows: a record of another schema
                raise SchemaMismatch(self.subject, f"a version of {_full_name(self.reader)}",
                                     f"{what}, unknown to the registry") from None
            resolve = self._found[key] = _resolver(self.reader, self.subject, what, schema)
        return resolve(body)


def _mqtt_decoder(ros_type: str, types: RosTypes | None, subject: str,
                  lookup: SchemaLookup | None) -> Callable[[bytes], bytes]:
    schema = _schema(ros_type, types)
    fingerprint = avro_fingerprint(schema)
    writers = _Writers(schema, subject)

    def single_object(payload: bytes) -> bytes:
        frame = parse_single_object(payload)
        if frame.fingerprint == fingerprint:
            return bytes(frame.payload)
        if lookup is None:
            raise SchemaMismatch(subject, f"fingerprint {fingerprint:#018x}", f"{frame.fingerprint:#018x}")
        return writers.body(frame.fingerprint, f"fingerprint {frame.fingerprint:#018x}",
                            lambda: lookup.by_fingerprint(frame.fingerprint).schema, bytes(frame.payload))

    return single_object


def _registered(ros_type: str, types: RosTypes | None, subject: str, ids: IdLookup | None, what: str) -> int:
    if ids is None:
        raise CodecError(f"{ros_type}: Avro on Kafka needs a schema registry to {what} subject {subject}")
    from swarm_bridge.codec.registry import Schema

    return ids(subject, Schema.avro(_schema(ros_type, types))).id


def _kafka_encoder(ros_type: str, types: RosTypes | None, subject: str, register: IdLookup | None) -> Encoding:
    schema_id = _registered(ros_type, types, subject, register, "register")
    return Encoding(lambda body: frame_confluent(schema_id, body, max_payload=0), CONTENT_TYPE)


def _kafka_decoder(ros_type: str, types: RosTypes | None, subject: str,
                   lookup: SchemaLookup | None) -> Callable[[bytes], bytes]:
    schema_id = _registered(ros_type, types, subject, lookup, "look up")
    writers = _Writers(_schema(ros_type, types), subject)

    def confluent(payload: bytes) -> bytes:
        frame = parse_confluent(payload)
        if frame.schema_id == schema_id:
            return bytes(frame.payload)
        assert lookup is not None  # _registered refused a decoder without one
        return writers.body(frame.schema_id, f"schema id {frame.schema_id}", lambda: lookup.by_id(frame.schema_id),
                            bytes(frame.payload))

    return confluent


SINGLE_OBJECT = WireShape("avro-single-object", "avro", ("mqtt",), "starts C3 01, then an 8-byte schema fingerprint",
                          lambda data, _ct: data.startswith(SINGLE_OBJECT_MAGIC))
# A record's Avro body starts with its robot id's length (a non-empty string: never 00); 00 there is Protobuf's
# message index of the record (`formats.protobuf.CONFLUENT`).
CONFLUENT = WireShape("avro-confluent", "avro", ("kafka",), "starts 00, then a 4-byte schema id, then not 00",
                      lambda data, _ct: data[:1] == b"\x00" and len(data) >= 6 and data[5] != 0)

def _pinned(ros_type: str, types: RosTypes | None, transport: str,
            pinned: RegisteredSchema) -> Callable[[bytes], bytes]:
    """Records of the route's own schema resolved to the pinned version, framed with its id (Kafka) or
    fingerprint (MQTT): robots on a newer message keep writing the version their readers expect."""
    from swarm_bridge.codec.registry import Schema

    reader = pinned.schema.parsed() if pinned.schema.kind == "AVRO" else None
    if not isinstance(reader, dict):
        raise SchemaMismatch(pinned.subject, "an Avro record schema", f"version {pinned.version}: "
                             f"{pinned.schema.kind}")
    resolve = _resolver(reader, pinned.subject, f"pinned version {pinned.version}",
                        Schema.avro(_schema(ros_type, types)))
    header = {"kafka": lambda: frame_confluent(pinned.id, b""), "mqtt": lambda: frame_single_object(
        avro_fingerprint(reader), b"")}[transport]()
    return lambda body: header + resolve(body)


AVRO = WireFormat("avro", _codec, CONTENT_TYPE, {
    "mqtt": Framing(SINGLE_OBJECT, _mqtt_encoder, _mqtt_decoder),
    "kafka": Framing(CONFLUENT, _kafka_encoder, _kafka_decoder),
}, frame_batch, pin=_pinned)
