"""Wire framing of encoded records: Confluent (Kafka), Avro single-object and Protobuf over MQTT 5.

Pure functions on bytes; every malformed input raises `FramingError(framing, problem)`, never
another exception. The layout of each framing is written in its encoder's docstring.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from swarm_bridge.codec.errors import FramingError, SchemaParseError, avro_json

__all__ = [
    "BATCH",
    "BATCH_MAGIC",
    "CONFLUENT",
    "DEFAULT_MAX_PAYLOAD",
    "JSON_BATCH_START",
    "PROTOBUF_CONTENT_TYPE",
    "PROTO_MQTT",
    "SINGLE_OBJECT",
    "SINGLE_OBJECT_MAGIC",
    "ConfluentFrame",
    "MqttProperties",
    "ProtoMqttMeta",
    "SingleObjectFrame",
    "avro_fingerprint",
    "check_size",
    "frame_batch",
    "frame_confluent",
    "frame_json_batch",
    "frame_single_object",
    "parse_confluent",
    "parse_proto_mqtt_properties",
    "parse_single_object",
    "proto_mqtt_properties",
    "split_batch",
    "zigzag_varint",
]

# Framing names, as they appear in FramingError.framing.
CONFLUENT = "confluent"
SINGLE_OBJECT = "avro-single-object"
PROTO_MQTT = "protobuf-mqtt"
BATCH = "record-batch"

# Largest framed record accepted by default: Kafka's own default message.max.bytes (1 MiB + overhead).
# Every function takes `max_payload=` to change it; 0 or less means no limit.
DEFAULT_MAX_PAYLOAD = 1 << 20

# What the functions take as bytes.
Buffer = bytes | bytearray | memoryview

_CONFLUENT_MAGIC = 0
_CONFLUENT_GUID_MAGIC = 1
_MAX_SCHEMA_ID = 0x7FFF_FFFF  # Confluent ids are Java ints, never negative
_MAX_INDEX = 0x7FFF_FFFF
_MAX_INDEX_DEPTH = 64  # nesting depth of a message in its .proto file; real files stay far below
_VARINT_MAX_BYTES = 5  # a zigzag varint of a 32-bit int

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_FINGERPRINT_BYTES = 8

PROTOBUF_CONTENT_TYPE = "application/x-protobuf"

# A record batch starts with a NUL byte, which no record can: Avro single-object starts C3 01, JSON with
# `{`, and a Protobuf message never starts with a 0 tag (field number 0 is invalid). A JSON batch is a JSON
# array, `[`: no record starts so (for Protobuf, 0x5B would open a group, which proto3 records never have).
BATCH_MAGIC = b"\x00SB\x01"
JSON_BATCH_START = b"["
_BATCH_LENGTH = struct.Struct(">I")
_SCHEMA_VERSION_KEY = "schema-version"
_FULL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class ConfluentFrame(NamedTuple):
    """A parsed Confluent frame: schema id, Protobuf message indexes (None for Avro/JSON), payload."""

    schema_id: int
    message_indexes: list[int] | None
    payload: bytes


class SingleObjectFrame(NamedTuple):
    """A parsed Avro single-object frame: the writer schema's CRC-64-AVRO fingerprint and the Avro body."""

    fingerprint: int
    payload: bytes


class MqttProperties(NamedTuple):
    """MQTT 5 properties that describe a Protobuf payload: content type and user properties."""

    content_type: str
    user_properties: list[tuple[str, str]]


class ProtoMqttMeta(NamedTuple):
    """What the MQTT 5 properties of a Protobuf payload say: message full name, schema version, the rest."""

    full_name: str
    version: int
    extra: dict[str, str]


def check_size(framing: str, data: Buffer, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
    """Raise FramingError if `data` is longer than `max_payload` bytes (no limit when max_payload <= 0)."""
    if max_payload > 0 and len(data) > max_payload:
        raise FramingError(
            framing, f"payload of {len(data)} bytes exceeds the limit of {max_payload} bytes (max_payload)"
        )


def _as_bytes(framing: str, data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise FramingError(framing, f"expected bytes, got {type(data).__name__}")


# --- Confluent wire format (Kafka) -------------------------------------------------------------


def zigzag_varint(value: int) -> bytes:
    """A zigzag varint, 7 bits a byte, low first: an Avro long, and Confluent's message-index varint (like Java's
    ByteUtils.writeVarint)."""
    encoded = ((value << 1) ^ (value >> 63)) & 0xFFFF_FFFF_FFFF_FFFF
    out = bytearray()
    while encoded > 0x7F:
        out.append((encoded & 0x7F) | 0x80)
        encoded >>= 7
    out.append(encoded)
    return bytes(out)


def _read_zigzag_varint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    """The zigzag varint at `pos` and the position after it; a 32-bit value (at most 5 bytes)."""
    raw = 0
    for i in range(_VARINT_MAX_BYTES):
        if pos + i >= len(data):
            raise FramingError(CONFLUENT, f"truncated varint in the {what} at byte {pos + i}")
        byte = data[pos + i]
        raw |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos + i + 1
    raise FramingError(CONFLUENT, f"varint in the {what} at byte {pos} is longer than {_VARINT_MAX_BYTES} bytes")


def frame_confluent(
    schema_id: int,
    payload: Buffer,
    *,
    message_indexes: Sequence[int] | None = None,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
) -> bytes:
    """Frame an encoded record for Kafka in the Confluent wire format.

    Layout: byte 0 = magic 0x00; bytes 1-4 = schema id, big-endian unsigned (0 .. 2^31-1); then,
    for Protobuf only (`message_indexes` given), the path of the message in its .proto file as a
    list of zigzag varints: the count, then each index; the common `[0]` (first top-level message)
    is written as the single byte 0x00 (count 0 means `[0]`); then the payload unchanged.
    """
    if isinstance(schema_id, bool) or not isinstance(schema_id, int) or not 0 <= schema_id <= _MAX_SCHEMA_ID:
        raise FramingError(CONFLUENT, f"schema id must be an integer in 0..{_MAX_SCHEMA_ID} (got {schema_id!r})")
    body = _as_bytes(CONFLUENT, payload)
    header = bytearray(struct.pack(">bI", _CONFLUENT_MAGIC, schema_id))
    if message_indexes is not None:
        indexes = list(message_indexes)
        if not indexes:
            raise FramingError(CONFLUENT, "message_indexes must not be empty (use [0] for the first message)")
        for index in indexes:
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= _MAX_INDEX:
                raise FramingError(CONFLUENT, f"message index must be an integer in 0..{_MAX_INDEX} (got {index!r})")
        if len(indexes) > _MAX_INDEX_DEPTH:
            raise FramingError(CONFLUENT, f"{len(indexes)} message indexes exceed the limit of {_MAX_INDEX_DEPTH}")
        if indexes == [0]:
            header.append(0)
        else:
            header += zigzag_varint(len(indexes))
            for index in indexes:
                header += zigzag_varint(index)
    framed = bytes(header) + body
    check_size(CONFLUENT, framed, max_payload)
    return framed


def parse_confluent(
    data: Buffer, *, message_indexes: bool = False, max_payload: int = DEFAULT_MAX_PAYLOAD
) -> ConfluentFrame:
    """Split a Confluent-framed record into (schema_id, message_indexes, payload); see `frame_confluent`.

    `message_indexes=True` for Protobuf subjects: the index list is read (else returned as None).
    """
    raw = _as_bytes(CONFLUENT, data)
    check_size(CONFLUENT, raw, max_payload)
    if len(raw) < 5:
        raise FramingError(CONFLUENT, f"too short: {len(raw)} bytes, need at least 5 (magic byte + schema id)")
    if raw[0] != _CONFLUENT_MAGIC:
        if raw[0] == _CONFLUENT_GUID_MAGIC:
            raise FramingError(CONFLUENT, "magic byte 0x01 (schema GUID framing) is not supported; expected 0x00")
        raise FramingError(CONFLUENT, f"wrong magic byte 0x{raw[0]:02x}, expected 0x00")
    (schema_id,) = struct.unpack_from(">I", raw, 1)
    if schema_id > _MAX_SCHEMA_ID:
        raise FramingError(CONFLUENT, f"schema id {schema_id} out of range 0..{_MAX_SCHEMA_ID}")
    if not message_indexes:
        return ConfluentFrame(schema_id, None, raw[5:])
    count, pos = _read_zigzag_varint(raw, 5, "message index count")
    if count == 0:
        return ConfluentFrame(schema_id, [0], raw[pos:])
    if not 0 < count <= _MAX_INDEX_DEPTH:
        raise FramingError(CONFLUENT, f"message index count {count} out of range 1..{_MAX_INDEX_DEPTH}")
    indexes = []
    for i in range(count):
        index, pos = _read_zigzag_varint(raw, pos, f"message index {i}")
        if not 0 <= index <= _MAX_INDEX:
            raise FramingError(CONFLUENT, f"message index {i} out of range 0..{_MAX_INDEX} ({index})")
        indexes.append(index)
    return ConfluentFrame(schema_id, indexes, raw[pos:])


# --- Avro single-object encoding (MQTT) ---------------------------------------------------------


def avro_fingerprint(schema: Any) -> int:
    """The CRC-64-AVRO (Rabin) fingerprint of an Avro schema's Parsing Canonical Form, as an unsigned int.

    `schema`: a parsed schema (dict, list or str name) or its JSON text. Uses fastavro's own
    canonical form and fingerprint. E.g. `avro_fingerprint("int") == 0x7275D51A3F395C8F`.
    Raises SchemaParseError for a schema fastavro cannot parse.
    """
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    schema = avro_json(schema)
    try:
        canonical = to_parsing_canonical_form(schema)
    except Exception as exc:  # fastavro raises several types for a bad schema
        raise SchemaParseError("avro schema", f"{type(exc).__name__}: {exc}") from None
    # fastavro returns the 8 fingerprint bytes in little-endian order, as hex (the Java API's byte[] form).
    return int.from_bytes(bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")), "little")


def frame_single_object(fingerprint: int, payload: Buffer, *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> bytes:
    """Frame an Avro body in the Avro single-object encoding (used on MQTT: no registry round trip).

    Layout: bytes 0-1 = marker C3 01; bytes 2-9 = the writer schema's CRC-64-AVRO fingerprint
    (`avro_fingerprint`), 8 bytes little-endian; then the Avro binary body.
    """
    if isinstance(fingerprint, bool) or not isinstance(fingerprint, int) or not 0 <= fingerprint < 1 << 64:
        raise FramingError(SINGLE_OBJECT, f"fingerprint must be an unsigned 64-bit integer (got {fingerprint!r})")
    body = _as_bytes(SINGLE_OBJECT, payload)
    framed = SINGLE_OBJECT_MAGIC + fingerprint.to_bytes(_FINGERPRINT_BYTES, "little") + body
    check_size(SINGLE_OBJECT, framed, max_payload)
    return framed


def parse_single_object(data: Buffer, *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> SingleObjectFrame:
    """Split an Avro single-object frame into (fingerprint, payload); see `frame_single_object`."""
    raw = _as_bytes(SINGLE_OBJECT, data)
    check_size(SINGLE_OBJECT, raw, max_payload)
    header = len(SINGLE_OBJECT_MAGIC) + _FINGERPRINT_BYTES
    if raw[:2] != SINGLE_OBJECT_MAGIC and not SINGLE_OBJECT_MAGIC.startswith(raw):
        raise FramingError(SINGLE_OBJECT, f"wrong marker {raw[:2].hex(' ') or '(empty)'}, expected c3 01")
    if len(raw) < header:
        raise FramingError(SINGLE_OBJECT, f"too short: {len(raw)} bytes, need at least {header} (marker + fingerprint)")
    return SingleObjectFrame(int.from_bytes(raw[2:header], "little"), raw[header:])


# --- Protobuf over MQTT 5 -----------------------------------------------------------------------


def proto_mqtt_properties(full_name: str, version: int, **extra: str | int) -> MqttProperties:
    """MQTT 5 properties for a Protobuf payload (the payload itself is the serialized message, unframed).

    Content type: `application/x-protobuf; messageType=<full name>`, e.g.
    `application/x-protobuf; messageType=swarm_bridge.fleet.v1.TaskCommand`.
    User properties, in this order: `("schema-version", "<version>")`, then each `extra` item
    sorted by key (e.g. `subject="fleet.commands-value"`, `ros_type="swarm_bridge_msgs/msg/TaskCommand"`).
    """
    if not isinstance(full_name, str) or not _FULL_NAME.fullmatch(full_name):
        raise FramingError(PROTO_MQTT, f"message type must be a dotted Protobuf full name (got {full_name!r})")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise FramingError(PROTO_MQTT, f"schema version must be an integer >= 1 (got {version!r})")
    properties = [(_SCHEMA_VERSION_KEY, str(version))]
    for key in sorted(extra):
        value = extra[key]
        if key == _SCHEMA_VERSION_KEY or not isinstance(value, (str, int)) or isinstance(value, bool):
            raise FramingError(PROTO_MQTT, f"user property {key!r} must be a str or int (got {value!r})")
        properties.append((key, str(value)))
    return MqttProperties(f"{PROTOBUF_CONTENT_TYPE}; messageType={full_name}", properties)


def parse_proto_mqtt_properties(
    content_type: str | None, user_properties: Iterable[tuple[str, str]] | Mapping[str, str] | None
) -> ProtoMqttMeta:
    """Read what `proto_mqtt_properties` wrote: (full_name, version, other user properties).

    Raises FramingError when the content type is missing or not Protobuf, the message type or the
    schema version is missing or malformed. A repeated user property keeps its first value.
    """
    if not isinstance(content_type, str) or not content_type:
        raise FramingError(PROTO_MQTT, f"no content type (expected '{PROTOBUF_CONTENT_TYPE}; messageType=...')")
    media, _, params = content_type.partition(";")
    if media.strip().lower() != PROTOBUF_CONTENT_TYPE:
        raise FramingError(PROTO_MQTT, f"content type {media.strip()!r} is not {PROTOBUF_CONTENT_TYPE!r}")
    full_name = None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "messagetype":
            full_name = value.strip().strip('"')
    if not full_name or not _FULL_NAME.fullmatch(full_name):
        raise FramingError(PROTO_MQTT, f"content type {content_type!r} has no valid messageType parameter")
    pairs = user_properties.items() if isinstance(user_properties, Mapping) else (user_properties or ())
    props: dict[str, str] = {}
    try:
        for key, value in pairs:
            if isinstance(key, str) and isinstance(value, str):
                props.setdefault(key, value)
    except (TypeError, ValueError):
        raise FramingError(PROTO_MQTT, "user properties must be (key, value) string pairs") from None
    raw_version = props.pop(_SCHEMA_VERSION_KEY, None)
    if raw_version is None:
        raise FramingError(PROTO_MQTT, f"user property {_SCHEMA_VERSION_KEY!r} missing")
    if not (raw_version.isascii() and raw_version.isdigit() and len(raw_version) <= 10 and int(raw_version) >= 1):
        raise FramingError(
            PROTO_MQTT, f"user property {_SCHEMA_VERSION_KEY!r} must be an integer >= 1 (got {raw_version!r})"
        )
    return ProtoMqttMeta(full_name, int(raw_version), props)


# --- Record batches (several records of one stream in one MQTT message) -------------------------


def frame_batch(records: Sequence[Buffer], *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> bytes:
    """Pack records of one stream, in order, into one MQTT payload: fewer publishes and acks per record.

    Layout: bytes 0-3 = 00 53 42 01 (NUL, "SB", version 1); then per record a 4-byte big-endian length
    and the record's bytes, each record framed exactly as it would be alone (so each keeps its own seq).
    """
    if not records:
        raise FramingError(BATCH, "a batch needs at least one record")
    parts = [BATCH_MAGIC]
    for record in records:
        body = _as_bytes(BATCH, record)
        parts.append(_BATCH_LENGTH.pack(len(body)))
        parts.append(body)
    framed = b"".join(parts)
    check_size(BATCH, framed, max_payload)
    return framed


def frame_json_batch(records: Sequence[Buffer], *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> bytes:
    """Pack JSON records of one stream, in order, into one MQTT payload that is still JSON.

    Layout: a JSON array of the records, each exactly as it would travel alone: `[` record `,` record ... `]`.
    """
    if not records:
        raise FramingError(BATCH, "a batch needs at least one record")
    framed = b"[" + b",".join(_as_bytes(BATCH, record) for record in records) + b"]"
    check_size(BATCH, framed, max_payload)
    return framed


def __getattr__(name: str) -> Any:
    """`BATCHES` (format -> how records of one route share an MQTT message: JSON stays JSON, an array of records;
    binary formats use the record batch frame), read from each format's `batch` in `codec.formats.FORMATS`.
    Readers need not know which: `split_batch` reads both."""
    if name == "BATCHES":
        from swarm_bridge.codec.formats import FORMATS

        return {fmt: wire.batch for fmt, wire in FORMATS.items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

_JSON = json.JSONDecoder()


def _split_json_batch(raw: bytes) -> list[bytes]:
    """The records of a JSON array (`frame_json_batch`), each as the bytes it had in the array."""
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise FramingError(BATCH, f"JSON batch is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    records: list[bytes] = []
    pos, end = 1, len(text)
    while True:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos < end and text[pos] == "]" and not records:
            raise FramingError(BATCH, "empty JSON batch (a batch holds at least one record)")
        try:
            _value, after = _JSON.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise FramingError(BATCH, f"JSON batch, record {len(records)}: {exc.msg} at character {exc.pos}") from None
        records.append(text[pos:after].encode())
        pos = after
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos < end and text[pos] == ",":
            pos += 1
            continue
        if pos < end and text[pos] == "]" and not text[pos + 1:].strip():
            return records
        raise FramingError(BATCH, f"JSON batch, after record {len(records) - 1}: expected ',' or a final ']' at "
                           f"character {pos}")


def split_batch(data: Buffer, *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> list[bytes]:
    """The records in an MQTT payload: the records of a batch (`frame_batch`, or a JSON array from
    `frame_json_batch`), or the payload itself."""
    raw = _as_bytes(BATCH, data)
    if raw.startswith(JSON_BATCH_START):
        check_size(BATCH, raw, max_payload)
        return _split_json_batch(raw)
    if not raw.startswith(BATCH_MAGIC):
        return [raw]
    check_size(BATCH, raw, max_payload)
    records: list[bytes] = []
    pos, end = len(BATCH_MAGIC), len(raw)
    while pos < end:
        if end - pos < _BATCH_LENGTH.size:
            raise FramingError(BATCH, f"record {len(records)}: length cut off at byte {pos} of {end}")
        (length,) = _BATCH_LENGTH.unpack_from(raw, pos)
        pos += _BATCH_LENGTH.size
        if length > end - pos:
            raise FramingError(BATCH, f"record {len(records)}: says {length} bytes, only {end - pos} left")
        records.append(raw[pos:pos + length])
        pos += length
    if not records:
        raise FramingError(BATCH, "empty batch (a batch holds at least one record)")
    return records
