"""MQTT payload -> Kafka records, pure but for the schema registry behind `SchemaBook`.

Every payload is split into its records (`split_batch`: a batch, a JSON array of records, or one record).
Per record, by its first bytes and the MQTT 5 content type (`codec.recognise`, one table of how each format
looks), into the format the rule names for it (`avro_format`, `protobuf_format`, `json_format`):
  Avro single-object (C3 01 ...)  -> Avro: Confluent framing with the registry id of `<kafka topic>-value`;
                                     the body is copied as is (no decode: only its envelope head is read);
                                     or Protobuf: decoded and re-encoded, then framed as below.
  Protobuf (content type)         -> Avro (the default): decoded and re-encoded as Avro, framed as above;
                                     or Protobuf: Confluent's Protobuf framing (00, registry id, message
                                     index 00), the record copied as is; every .proto it imports is a
                                     subject of its own, referenced by the record's.
  JSON ({...})                    -> forwarded as JSON (the wire convention), or as Avro when the rule asks.
A rule's `payload` may also say the payload is not records: `raw` (forwarded unchanged) or `vda5050` (a VDA 5050
JSON message, with a head of (key, stream, headerId run) for duplicate removal, written as Confluent Avro of its
record derived from the official JSON Schema, or unchanged with `vda5050_format: json`).
The head (robot_id, stream, seq) must match the MQTT topic's robot and stream; anything that does not
decode, match or resolve becomes a `DeadLetter` with a reason, never an exception.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from swarm_bridge.codec.avro import avro_schema
from swarm_bridge.codec.envelope import Envelope
from swarm_bridge.codec.errors import CodecError, FramingError, IncompatibleSchema
from swarm_bridge.codec.formats import FORMATS
from swarm_bridge.codec.formats.protobuf import RECORD_INDEXES
from swarm_bridge.codec.framing import (
    BATCH_MAGIC,
    JSON_BATCH_START,
    avro_fingerprint,
    frame_confluent,
    parse_proto_mqtt_properties,
    split_batch,
)
from swarm_bridge.codec.recognise import expected_shape, recognise
from swarm_bridge.gateway.heads import Head, avro_head, json_head
from swarm_bridge.gateway.rules import UpRoute
from swarm_bridge.gateway.schemas import SchemaBook
from swarm_bridge.vda5050.avro_schemas import RECORD_NAMES
from swarm_bridge.vda5050.errors import MessageUnfit
from swarm_bridge.vda5050.headers import HeaderRuns
from swarm_bridge.vda5050.models import UINT32

__all__ = ["DeadLetter", "KafkaRecord", "Translation", "Translator", "unroutable"]

_FINGERPRINT_END = 10  # C3 01 + 8 bytes
_AVRO_MAGIC = b"\xc3\x01"  # what `recognise` calls avro-single-object: the common case, read without asking it


@dataclass(slots=True)
class KafkaRecord:
    """One record for Kafka; `head` identifies it for duplicate removal (None: raw, never deduplicated)."""

    topic: str
    key: bytes
    value: bytes
    head: Head | None = None


@dataclass(frozen=True)
class DeadLetter:
    """What could not be translated: the reason (a short kind and the detail), where from, the payload."""

    reason: str
    detail: str
    mqtt_topic: str
    payload: bytes
    index: int | None = None  # the record's place in its batch, None for the whole payload

    def headers(self, content_type: str | None) -> list[tuple[str, str | bytes | None]]:
        """Kafka headers of the DLQ record."""
        out: list[tuple[str, str | bytes | None]] = [("reason", self.reason.encode()), ("detail", self.detail.encode()),
               ("mqtt_topic", self.mqtt_topic.encode())]
        if content_type:
            out.append(("content_type", content_type.encode()))
        if self.index is not None:
            out.append(("batch_index", str(self.index).encode()))
        return out


@dataclass(slots=True)
class Translation:
    """The records of one MQTT payload, and what went to the dead letters."""

    records: list[KafkaRecord] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


def unroutable(topic: str, payload: bytes) -> Translation:
    """The translation of a payload on a topic no rule takes."""
    return Translation([], [DeadLetter("unroutable", f"no up rule takes MQTT topic {topic!r}", topic, payload)])


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Translator:
    """`translate(route, payload, content_type, user_properties)` -> Translation."""

    def __init__(self, schemas: SchemaBook, *, max_payload: int = 1 << 20) -> None:
        self.schemas = schemas
        self.max_payload = max_payload
        self._prefixes: dict[int, bytes] = {}
        self._proto_prefixes: dict[int, bytes] = {}
        self._framing: dict[tuple[str, int], bytes] = {}  # (kafka topic, fingerprint) -> Confluent header
        self._fingerprints: dict[str, int] = {}
        # What the gateway reads on MQTT, by the shape `recognise` gives a record.
        self._readers: dict[str, Callable[[UpRoute, bytes, str | None, Sequence[tuple[str, str]]], KafkaRecord]] = {
            "avro-single-object": lambda route, part, _ct, props: self._avro(route, part, props),
            "json": lambda route, part, _ct, _props: self._json(route, part),
            "protobuf-mqtt": lambda route, part, ct, props: self._protobuf(route, part, ct or "", props),
        }
        # Payloads that are not records, by the rule's `payload` (records: the readers above).
        self._payloads: dict[str, Callable[[UpRoute, bytes], KafkaRecord]] = {
            "raw": lambda route, payload: KafkaRecord(route.kafka_topic, route.key, payload),
            "vda5050": self._vda5050,
        }
        self._runs = HeaderRuns()

    def translate(self, route: UpRoute, payload: bytes, content_type: str | None = None,
                  user_properties: Sequence[tuple[str, str]] = (), *, limit: int | None = None) -> Translation:
        """The Kafka records of one MQTT message on `route`; SchemaTrouble (retry later) is the only raise.
        `limit`: the largest payload taken (default `max_payload`; a record put together from chunks has its own)."""
        limit = self.max_payload if limit is None else limit
        whole = self._payloads.get(route.payload)
        if whole is not None:
            if len(payload) > limit:
                return Translation([], [DeadLetter("too_large", f"{len(payload)} bytes > max_payload "
                                                   f"{limit}", route.mqtt_topic, payload)])
            try:
                return Translation([whole(route, payload)])
            except _Refused as refused:
                return Translation([], [DeadLetter(refused.reason, refused.detail, route.mqtt_topic, payload)])
        if payload[:2] == _AVRO_MAGIC and len(payload) <= limit:  # one Avro record, not a batch
            try:
                return Translation([self._avro(route, payload, user_properties)], [])
            except _Refused as refused:
                return Translation([], [DeadLetter(refused.reason, refused.detail, route.mqtt_topic, payload)])
        try:
            parts = split_batch(payload, max_payload=limit)
        except FramingError as exc:
            return Translation([], [DeadLetter("malformed_batch", str(exc), route.mqtt_topic, payload)])
        out = Translation()
        batch = len(parts) > 1 or payload[:1] in (BATCH_MAGIC[:1], JSON_BATCH_START)
        for index, part in enumerate(parts):
            try:
                out.records.append(self._record(route, part, content_type, user_properties, limit))
            except _Refused as refused:
                out.dead.append(DeadLetter(refused.reason, refused.detail, route.mqtt_topic, part,
                                           index if batch else None))
        return out

    def avro_record(self, route: UpRoute, payload: bytes) -> KafkaRecord | None:
        """The common case in one step: a payload that is one Avro single-object record, on a record route that
        keeps Avro, of a schema this topic already registered, whose head matches the topic. None for anything
        else, refused or not: `translate` then handles it (and names what is wrong)."""
        if payload[:2] != _AVRO_MAGIC or route.payload != "record" or route.avro_format != "avro" \
                or not _FINGERPRINT_END < len(payload) <= self.max_payload:
            return None
        prefix = self._framing.get((route.kafka_topic, int.from_bytes(payload[2:_FINGERPRINT_END], "little")))
        if prefix is None:
            return None  # its schema's first record on this topic: registered by `translate`
        body = payload[_FINGERPRINT_END:]
        try:
            head = avro_head(body)
        except CodecError:
            return None
        if head.robot_id != route.robot_id or (route.stream is not None and head.stream != route.stream):
            return None
        return KafkaRecord(route.kafka_topic, route.key, prefix + body, head)

    def _record(self, route: UpRoute, part: bytes, content_type: str | None,
                user_properties: Sequence[tuple[str, str]], limit: int) -> KafkaRecord:
        if len(part) > limit:
            raise _Refused("too_large", f"record of {len(part)} bytes > max_payload {limit}")
        if part[:2] == _AVRO_MAGIC:
            return self._avro(route, part, user_properties)
        shape = recognise(part, content_type, unwrap=False)
        read = None if shape is None else self._readers.get(shape.name)
        if read is None:
            what = (f"it is {shape}, the form {shape.format or 'a container'} takes on {'/'.join(shape.transports)}"
                    if shape is not None else f"it starts {part[:4].hex(' ') or '(empty)'}")
            readable = ", ".join(str(s) for fmt in FORMATS if (s := expected_shape(fmt, "mqtt")) is not None)
            raise _Refused("unknown_framing", f"record with content type {content_type!r}: {what}; on MQTT the "
                           f"gateway reads {readable}")
        return read(route, part, content_type, user_properties)

    def _avro(self, route: UpRoute, part: bytes, user_properties: Sequence[tuple[str, str]]) -> KafkaRecord:
        if len(part) < _FINGERPRINT_END:
            raise _Refused("bad_record", f"Avro single-object record of {len(part)} bytes has no fingerprint")
        fingerprint = int.from_bytes(part[2:_FINGERPRINT_END], "little")
        body = part[_FINGERPRINT_END:]
        head = self._head(route, avro_head, body)
        if route.avro_format == "protobuf":
            return self._as_protobuf(route, head, body, "avro")
        prefix = self._framing.get((route.kafka_topic, fingerprint))
        if prefix is None:
            ros_type = head.ros_type or dict(user_properties).get("ros_type", "")
            prefix = self._framing[(route.kafka_topic, fingerprint)] = self._confluent(route, fingerprint, ros_type)
        return KafkaRecord(route.kafka_topic, route.key, prefix + body, head)

    def _json(self, route: UpRoute, part: bytes) -> KafkaRecord:
        head = self._head(route, json_head, part)
        if route.json_format == "passthrough":
            return KafkaRecord(route.kafka_topic, route.key, part, head)
        return self._as_avro(route, head, part, "json")

    def _protobuf(self, route: UpRoute, part: bytes, content_type: str,
                  user_properties: Sequence[tuple[str, str]]) -> KafkaRecord:
        try:
            meta = parse_proto_mqtt_properties(content_type, list(user_properties))
        except FramingError as exc:
            raise _Refused("bad_record", str(exc)) from None
        ros_type = meta.extra.get("ros_type")
        if not ros_type:
            raise _Refused("bad_record", "Protobuf record without the ros_type user property")
        envelope = self._decode(ros_type, "protobuf", part)
        head = Head(envelope.robot_id, envelope.stream, envelope.seq, envelope.ros_type)
        self._check(route, head)
        if route.protobuf_format == "protobuf":
            return KafkaRecord(route.kafka_topic, route.key, self._proto_header(route, ros_type) + part, head)
        return self._as_avro(route, head, part, "protobuf")

    def _as_protobuf(self, route: UpRoute, head: Head, part: bytes, fmt: str) -> KafkaRecord:
        envelope = self._decode(head.ros_type, fmt, part)
        try:
            body = self.schemas.codec(head.ros_type, "protobuf").encode(envelope)
        except CodecError as exc:
            raise _Refused("bad_record", f"{fmt} record does not fit Protobuf {head.ros_type}: {exc}") from None
        return KafkaRecord(route.kafka_topic, route.key, self._proto_header(route, head.ros_type) + body, head)

    def _proto_header(self, route: UpRoute, ros_type: str) -> bytes:
        """Confluent's Protobuf header (magic 0, registry id big-endian, message index 00) of `ros_type`'s record."""
        try:
            schema_id = self.schemas.proto_id(route.kafka_topic, ros_type)
        except IncompatibleSchema as exc:
            raise _Refused("incompatible_schema", str(exc)) from None
        except CodecError as exc:
            raise _Refused("unknown_schema", str(exc)) from None
        prefix = self._proto_prefixes.get(schema_id)
        if prefix is None:
            prefix = self._proto_prefixes[schema_id] = frame_confluent(schema_id, b"", message_indexes=RECORD_INDEXES)
        return prefix

    def _as_avro(self, route: UpRoute, head: Head, part: bytes, fmt: str) -> KafkaRecord:
        envelope = self._decode(head.ros_type, fmt, part)
        try:
            avro = self.schemas.codec(head.ros_type, "avro")
            body = avro.encode(envelope)
            fingerprint = self._fingerprints.get(head.ros_type)
            if fingerprint is None:
                fingerprint = self._fingerprints[head.ros_type] = avro_fingerprint(avro_schema(head.ros_type))
        except CodecError as exc:
            raise _Refused("bad_record", f"{fmt} record does not fit Avro {head.ros_type}: {exc}") from None
        return KafkaRecord(route.kafka_topic, route.key, self._confluent(route, fingerprint, head.ros_type) + body,
                           head)

    def _vda5050(self, route: UpRoute, payload: bytes) -> KafkaRecord:
        """A VDA 5050 message as it came, its head (key, stream, headerId with resets counted as runs); refused
        when it is no JSON object with a uint32 headerId, a timestamp and the topic's serialNumber."""
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _Refused("bad_record", f"VDA 5050 message is not UTF-8 JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise _Refused("bad_record", f"VDA 5050 message is not a JSON object but {type(doc).__name__}")
        header_id, stamp, serial = doc.get("headerId"), doc.get("timestamp"), doc.get("serialNumber")
        if isinstance(header_id, bool) or not isinstance(header_id, int) or not 0 <= header_id <= UINT32:
            raise _Refused("bad_record", f"VDA 5050 message: headerId must be a uint32 (got {header_id!r})")
        if not isinstance(stamp, str):
            raise _Refused("bad_record", f"VDA 5050 message: timestamp must be a string (got {stamp!r})")
        if serial != route.robot_id:
            raise _Refused("envelope_mismatch", f"VDA 5050 message of serialNumber {serial!r} on the topic of "
                           f"{route.robot_id!r}")
        vehicle = route.key.decode()
        stream = route.stream or route.mqtt_topic.rsplit("/", 1)[-1]
        if route.vda5050_format == "json":
            value = payload
        elif stream not in RECORD_NAMES:
            raise _Refused("bad_record", f"VDA 5050 message on topic {stream!r}, which has no Avro record; topics: "
                           f"{', '.join(RECORD_NAMES)} (or vda5050_format: json)")
        else:
            value = self._vda5050_avro(route, stream, doc)
        head = Head(vehicle, stream, self._runs.seq(vehicle, stream, header_id, stamp), f"vda5050/{stream}")
        return KafkaRecord(route.kafka_topic, route.key, value, head)

    def _vda5050_avro(self, route: UpRoute, stream: str, doc: dict[str, object]) -> bytes:
        """A VDA 5050 message as Confluent Avro of its record; a message that does not fit is refused by its
        reason (`vda5050_wrong_type`, ...: UNFIT_REASONS), a subject refusing the schema as incompatible."""
        try:
            return self.schemas.vda5050.avro(route.kafka_topic, stream, doc)
        except MessageUnfit as exc:
            raise _Refused(f"vda5050_{exc.reason}", str(exc)) from None
        except IncompatibleSchema as exc:
            raise _Refused("incompatible_schema", str(exc)) from None
        except CodecError as exc:
            raise _Refused("unknown_schema", str(exc)) from None

    def _decode(self, ros_type: str, fmt: str, part: bytes) -> Envelope:
        try:
            return self.schemas.codec(ros_type, fmt).decode(part)
        except CodecError as exc:
            raise _Refused("bad_record", f"{fmt} record of {ros_type}: {exc}") from None
        except Exception as exc:  # a decoder fed garbage may raise anything; the gateway must not
            raise _Refused("bad_record", f"{fmt} record of {ros_type}: {type(exc).__name__}: {exc}") from None

    def _head(self, route: UpRoute, read: Callable[[bytes], Head], data: bytes) -> Head:
        try:
            head = read(data)
        except CodecError as exc:
            raise _Refused("bad_record", f"envelope: {exc}") from None
        self._check(route, head)
        return head

    @staticmethod
    def _check(route: UpRoute, head: Head) -> None:
        if head.robot_id != route.robot_id or (route.stream is not None and head.stream != route.stream):
            raise _Refused("envelope_mismatch", f"record of robot {head.robot_id!r} stream {head.stream!r} on the "
                           f"topic of robot {route.robot_id!r} stream {route.stream!r}")

    def _confluent(self, route: UpRoute, fingerprint: int, ros_type: str) -> bytes:
        """The Confluent header (magic 0, registry id big-endian) of the schema with `fingerprint`."""
        try:
            schema_id = self.schemas.kafka_id(route.kafka_topic, fingerprint, ros_type)
        except IncompatibleSchema as exc:
            raise _Refused("incompatible_schema", str(exc)) from None
        except CodecError as exc:
            raise _Refused("unknown_schema", str(exc)) from None
        prefix = self._prefixes.get(schema_id)
        if prefix is None:
            prefix = self._prefixes[schema_id] = b"\x00" + schema_id.to_bytes(4, "big")
        return prefix

