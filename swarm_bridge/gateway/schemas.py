"""The gateway's view of the schema registry: fingerprint -> registry id (up), id -> fingerprint (down), cached.

A robot on MQTT sends the Avro fingerprint and its ROS type, never a registry id. The gateway finds the
schema (derived from the ROS type when the fingerprint matches, else looked up by fingerprint in the
registry), registers it under the subject the config's `subject_name_strategy` names (default
`<kafka topic>-value`) and caches the id. Protobuf records on Kafka: the record's schema derived from its ROS
type, each imported .proto registered as its own subject and referenced (`formats.protobuf.register_proto`).
VDA 5050 messages: the packaged records of `swarm_bridge.vda5050.avro_schemas`, under the same subject naming
(`vda5050`, a `swarm_bridge.vda5050.kafka.VdaKafka`).
"""

from __future__ import annotations

import logging
from typing import Any

from swarm_bridge.codec.avro import avro_schema
from swarm_bridge.codec.errors import CodecError, RegistryError, UnknownSchema
from swarm_bridge.codec.formats.protobuf import register_proto
from swarm_bridge.codec.framing import avro_fingerprint
from swarm_bridge.codec.protobuf_schema import record_message_name
from swarm_bridge.codec.records import RecordCodec, record_codec
from swarm_bridge.codec.registry import RegisteredSchema, Schema, SchemaRegistry, SubjectNameStrategy, topic_name
from swarm_bridge.errors import SwarmBridgeError
from swarm_bridge.vda5050.kafka import VdaKafka

__all__ = ["SchemaBook", "SchemaTrouble"]

log = logging.getLogger(__name__)

_MAX_UNKNOWN = 10_000  # fingerprints remembered as unknown (each asked of the registry once)


class SchemaTrouble(SwarmBridgeError):
    """The registry could not answer now (unreachable, timeout): retry later, the record is not at fault."""


class SchemaBook:
    """Registry ids and record codecs the gateway needs, each looked up once."""

    def __init__(self, registry: SchemaRegistry, *, subject_name: SubjectNameStrategy = topic_name) -> None:
        self.registry = registry
        self._subject_name = subject_name
        self._ids: dict[tuple[str, int], int] = {}
        self._schemas: dict[int, Any] = {}
        self._unknown: dict[int, str] = {}
        self._down: dict[int, tuple[int, str]] = {}
        self._codecs: dict[tuple[str, str], RecordCodec] = {}
        self._proto_ids: dict[tuple[str, str], int] = {}
        self._proto_down: dict[int, str] = {}
        self._vda5050: VdaKafka | None = None

    @property
    def vda5050(self) -> VdaKafka:
        """VDA 5050 messages as Kafka records (Confluent Avro registered here, or JSON); made at first use. A
        registry that cannot answer raises SchemaTrouble; UnknownSchema and IncompatibleSchema pass through."""
        if self._vda5050 is None:
            self._vda5050 = VdaKafka(register=self._register, by_id=self._by_id, subject_name=self._subject_name)
        return self._vda5050

    def _register(self, subject: str, schema: Schema) -> RegisteredSchema:
        try:
            return self.registry.register(subject, schema)
        except RegistryError as exc:
            raise SchemaTrouble(str(exc)) from None

    def _by_id(self, schema_id: int) -> Schema:
        try:
            return self.registry.by_id(schema_id)
        except RegistryError as exc:
            raise SchemaTrouble(str(exc)) from None

    def kafka_id(self, kafka_topic: str, fingerprint: int, ros_type: str) -> int:
        """The registry id of the schema with `fingerprint` under its subject (`<kafka_topic>-value` by default).

        UnknownSchema when neither `ros_type` nor the registry knows the fingerprint; IncompatibleSchema
        when the subject refuses it; SchemaTrouble when the registry cannot answer now."""
        key = (kafka_topic, fingerprint)
        found = self._ids.get(key)
        if found is not None:
            return found
        schema = self._schema(fingerprint, ros_type)
        subject = self._subject_name(kafka_topic, _full_name(schema))
        try:
            schema_id = self.registry.register(subject, Schema.avro(schema)).id
        except RegistryError as exc:
            raise SchemaTrouble(str(exc)) from None
        log.info("schema %#018x (%s) is id %d under %s", fingerprint, ros_type or "?", schema_id, subject)
        self._ids[key] = schema_id
        return schema_id

    def proto_id(self, kafka_topic: str, ros_type: str) -> int:
        """The registry id of the Protobuf record schema of `ros_type` under its subject, its imports registered
        and referenced; IncompatibleSchema when a subject refuses it; SchemaTrouble when the registry cannot answer."""
        key = (kafka_topic, ros_type)
        found = self._proto_ids.get(key)
        if found is not None:
            return found
        subject = self._subject_name(kafka_topic, record_message_name(ros_type))
        try:
            schema_id = register_proto(ros_type, None, subject, self.registry.register).id
        except RegistryError as exc:
            raise SchemaTrouble(str(exc)) from None
        log.info("protobuf %s is id %d under %s", ros_type, schema_id, subject)
        self._proto_ids[key] = schema_id
        return schema_id

    def proto_ros_type(self, schema_id: int) -> str:
        """The ROS type of the Protobuf record schema with registry id `schema_id` (commands going down)."""
        found = self._proto_down.get(schema_id)
        if found is not None:
            return found
        file = self._down_schema(schema_id, "PROTOBUF", "send commands as Protobuf (Confluent), Avro or JSON").parsed()
        full = f"{file.package}.{file.message_type[0].name}" if file.message_type else ""
        if not full.startswith("swarm_bridge.record."):
            raise UnknownSchema(f"schema id {schema_id} is {full or 'no message'}, not a swarm_bridge record",
                                "send commands as swarm_bridge records")
        found = self._proto_down[schema_id] = full.removeprefix("swarm_bridge.record.").replace(".", "/")
        return found

    def _schema(self, fingerprint: int, ros_type: str) -> Any:
        schema = self._schemas.get(fingerprint)
        if schema is not None:
            return schema
        if fingerprint in self._unknown:
            raise UnknownSchema(self._unknown[fingerprint])
        if ros_type:
            try:
                derived = avro_schema(ros_type)
            except CodecError:
                derived = None
            if derived is not None and avro_fingerprint(derived) == fingerprint:
                self._schemas[fingerprint] = derived
                return derived
        try:
            schema = self.registry.by_fingerprint(fingerprint).schema.parsed()
        except UnknownSchema:
            if len(self._unknown) >= _MAX_UNKNOWN:
                self._unknown.clear()
            what = f"Avro fingerprint {fingerprint:#018x} (ros_type {ros_type or 'not given'})"
            self._unknown[fingerprint] = what
            raise UnknownSchema(what, "register the robot's schema, or install its ROS interfaces on the hub") \
                from None
        except RegistryError as exc:
            raise SchemaTrouble(str(exc)) from None
        self._schemas[fingerprint] = schema
        return schema

    def single_object(self, schema_id: int) -> tuple[int, str]:
        """(fingerprint, ros_type) of the Avro schema with registry id `schema_id` (commands going down)."""
        found = self._down.get(schema_id)
        if found is not None:
            return found
        parsed = self._down_schema(schema_id, "AVRO", "send commands as Avro (Confluent) or JSON").parsed()
        full = _full_name(parsed)
        ros_type = full.removeprefix("swarm_bridge.record.").replace(".", "/") if full.startswith(
            "swarm_bridge.record.") else ""
        found = (avro_fingerprint(parsed), ros_type)
        self._down[schema_id] = found
        return found

    def _down_schema(self, schema_id: int, kind: str, fix: str) -> Any:
        """The registry's schema `schema_id` of a command going down, which must be of `kind`; `fix` if it is not."""
        try:
            schema = self.registry.by_id(schema_id)
        except RegistryError as exc:
            raise SchemaTrouble(str(exc)) from None
        if schema.kind != kind:
            raise UnknownSchema(f"schema id {schema_id} is {schema.kind}, not {kind}", fix)
        return schema

    def codec(self, ros_type: str, fmt: str) -> RecordCodec:
        """The record codec of `ros_type` in `fmt` (avro, protobuf, json); UnknownRosType if not installed."""
        key = (ros_type, fmt)
        codec = self._codecs.get(key)
        if codec is None:
            codec = record_codec(ros_type, fmt)  # type: ignore[arg-type]
            self._codecs[key] = codec
        return codec


def _full_name(schema: Any) -> str:
    """The full name (namespace.name) of a parsed Avro record schema; empty for anything else."""
    if not isinstance(schema, dict):
        return ""
    name, namespace = str(schema.get("name", "")), schema.get("namespace", "")
    return name if "." in name or not namespace else f"{namespace}.{name}"
