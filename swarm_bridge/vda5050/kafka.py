"""VDA 5050 messages as Kafka record values: Confluent-framed Avro of the packaged records (magic 0, the registry
id of the record's schema under its subject, big-endian, then the Avro body), or the JSON message as it is.

The subject is the fleet's `subject_name_strategy` of (Kafka topic, record full name): `vda5050.state-value` by
default, `vda5050.v2.State` with record_name. The registry is the caller's: `register(subject, schema)` and
`by_id(id)` (a gateway's SchemaBook, a coordinator's RegistryIds); their errors pass through. A record is read by
its first byte (0: Avro, `{`: JSON); an Avro record's writer schema comes from the registry by id and must be one
of the VDA 5050 records, read as the packaged one (Avro schema resolution: a later minor version's fields are
left out, missing ones take their defaults).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from swarm_bridge.codec.errors import FramingError
from swarm_bridge.codec.framing import avro_fingerprint, frame_confluent, parse_confluent
from swarm_bridge.codec.registry import RegisteredSchema, Schema, SubjectNameStrategy, topic_name
from swarm_bridge.vda5050.avro import VdaAvro, full_name
from swarm_bridge.vda5050.avro_schemas import RECORD_NAMES
from swarm_bridge.vda5050.errors import MessageInvalid

__all__ = ["KAFKA_FORMATS", "VdaKafka", "json_value"]

KAFKA_FORMATS = ("avro", "json")
"""How VDA 5050 messages may be written on Kafka: avro (the default) or json (the message as is)."""


def json_value(doc: Mapping[str, Any]) -> bytes:
    """A VDA 5050 message as compact UTF-8 JSON (what goes on MQTT)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


class VdaKafka:
    """Writes and reads VDA 5050 messages as Kafka record values, the registry ids and writer schemas cached."""

    def __init__(self, *, register: Callable[[str, Schema], RegisteredSchema], by_id: Callable[[int], Schema],
                 subject_name: SubjectNameStrategy = topic_name, codec: VdaAvro | None = None) -> None:
        self.codec = codec or VdaAvro()
        self._register, self._by_id, self._subject_name = register, by_id, subject_name
        self._ids: dict[tuple[str, str], int] = {}
        self._writers: dict[int, tuple[str, Any]] = {}  # id -> (topic, parsed writer or None: the packaged one)
        self._names = {full_name(topic): topic for topic in RECORD_NAMES}
        self._packaged = {topic: avro_fingerprint(self.codec.schemas[topic]) for topic in RECORD_NAMES}
        self._formats: dict[str, Callable[[str, str, Mapping[str, Any]], bytes]] = {
            "avro": self.avro, "json": lambda _kafka_topic, _topic, doc: json_value(doc)}

    def subject(self, kafka_topic: str, topic: str) -> str:
        """The registry subject of `topic`'s records on `kafka_topic`."""
        return self._subject_name(kafka_topic, full_name(topic))

    def schema_id(self, kafka_topic: str, topic: str) -> int:
        """The registry id of `topic`'s packaged record under its subject, registered at first use."""
        key = (kafka_topic, topic)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = self._register(self.subject(kafka_topic, topic),
                                                    Schema.avro(self.codec.schemas[topic])).id
            self._writers.setdefault(found, (topic, None))
        return found

    def write(self, fmt: str, kafka_topic: str, topic: str, doc: Mapping[str, Any]) -> bytes:
        """`doc` as a record value in `fmt` (KAFKA_FORMATS); MessageUnfit when it does not fit Avro."""
        try:
            return self._formats[fmt](kafka_topic, topic, doc)
        except KeyError:
            raise MessageInvalid(topic, "", f"format {fmt!r} is not valid. Valid options are: "
                                 f"{', '.join(KAFKA_FORMATS)}") from None

    def avro(self, kafka_topic: str, topic: str, doc: Mapping[str, Any]) -> bytes:
        """`doc` as Confluent-framed Avro (its body first: a message that does not fit registers nothing)."""
        body = self.codec.encode(topic, doc)
        return frame_confluent(self.schema_id(kafka_topic, topic), body)

    def read(self, value: bytes, expected: str | None = None) -> tuple[str, dict[str, Any]]:
        """(topic, message) of a record value, Avro or JSON; `expected`: the topic it must be (a JSON message does
        not say; an Avro one names it by its schema). MessageInvalid when it is neither or not that topic."""
        if value[:1] == b"\x00":
            topic, doc = self._read_avro(value)
            if expected is not None and topic != expected:
                raise MessageInvalid(expected, "", f"record of {full_name(topic)} where a {expected} is expected")
            return topic, doc
        if value[:1] == b"{":
            try:
                doc = json.loads(value)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise MessageInvalid(expected or "", "", f"not UTF-8 JSON: {exc}") from None
            if not isinstance(doc, dict):
                raise MessageInvalid(expected or "", "", f"expected a JSON object, got {type(doc).__name__}")
            return expected or "", doc
        raise MessageInvalid(expected or "", "", f"record starts {value[:4].hex(' ') or '(empty)'}: neither "
                             "Confluent Avro (00) nor a JSON object ({)")

    def _read_avro(self, value: bytes) -> tuple[str, dict[str, Any]]:
        try:
            frame = parse_confluent(value)
        except FramingError as exc:
            raise MessageInvalid("", "", str(exc)) from None
        topic, writer = self._writer(frame.schema_id)
        return topic, self.codec.decode(topic, frame.payload, writer)

    def _writer(self, schema_id: int) -> tuple[str, Any]:
        found = self._writers.get(schema_id)
        if found is not None:
            return found
        schema = self._by_id(schema_id)
        if schema.kind != "AVRO":
            raise MessageInvalid("", "", f"schema id {schema_id} is {schema.kind}, not an Avro VDA 5050 record")
        parsed = schema.parsed()
        name = _full_name(parsed)
        topic = self._names.get(name)
        if topic is None:
            raise MessageInvalid("", "", f"schema id {schema_id} is {name or 'no record'}, not a VDA 5050 record "
                                 f"({', '.join(self._names)}); if the writer registered it elsewhere, point the "
                                 "gateway and the coordinator at the same schema registry (key registry)")
        same = avro_fingerprint(parsed) == self._packaged[topic]
        found = self._writers[schema_id] = (topic, None if same else self.codec.parse_writer(parsed))
        return found


def _full_name(schema: Any) -> str:
    if not isinstance(schema, dict):
        return ""
    name, namespace = str(schema.get("name", "")), schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"
