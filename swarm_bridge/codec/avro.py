"""Avro records of ROS messages: the schema is derived from the ROS definition, never written by hand.

Record: `swarm_bridge.record.<pkg>.msg.<Name>` with the envelope fields robot_id (string), stream
(string), seq (long), stamp_ns (long), ros_type (string), schema_version (int), then `body`, the message
as record `ros.<pkg>.msg.<Name>` (so `sensor_msgs/msg/Imu` -> `ros.sensor_msgs.msg.Imu`). Each nested
type is defined once, where first used, and referenced by its full name afterwards; ROS records carry
`"ros.type": "<pkg>/msg/<Name>"`. Fields keep ROS names and definition order. Every body field has its ROS
default (zero, empty, false) as Avro default, so a field added or removed between two versions of a message
resolves both ways (FULL compatible); defaults are not part of the fingerprint (Parsing Canonical Form).

| ROS                                   | Avro                                                          |
|---------------------------------------|---------------------------------------------------------------|
| bool                                  | boolean                                                       |
| int8 int16 int32 uint8 uint16 byte char | int                                                         |
| uint32 int64                          | long                                                          |
| uint64                                | bytes, logicalType decimal, precision 20, scale 0 (lossless;  |
|                                       | `long` would overflow above 2**63-1)                          |
| float32 / float64                     | float / double (NaN and +-inf kept)                           |
| string, wstring                       | string; bounded `string<=N` adds `"ros.max_length": N` (bytes)|
| uint8[...], byte[...] (any kind)      | bytes; fixed adds `"ros.size": N`, bounded `"ros.max_size": N`|
| T[N], T[], T[<=N] (other T)           | array of T; `"ros.size"` / `"ros.max_size"` as above          |
| nested message (incl. Time, Duration) | record                                                        |

Wire: Avro binary of that record, no framing (Confluent or single-object framing is added by the caller).
`encode_cdr` transcodes little-endian CDR straight to these bytes (`transcode`): the bytes fastavro would
write, in about a fifth of its time. `encode` writes the body dict as CDR first (which checks it against the
ROS definition) and transcodes that. Decoding goes through fastavro; `decode` returns what the payload
holds, `decode_cdr` also checks it against the ROS definition (array sizes, ranges) as it writes CDR.
"""

from __future__ import annotations

import dataclasses
import io
from decimal import Decimal
from typing import Any

from fastavro import parse_schema, schemaless_reader

from swarm_bridge.codec.cdr import body_cdr, encode_envelope, little_endian
from swarm_bridge.codec.envelope import SCHEMA_VERSION, Envelope
from swarm_bridge.codec.errors import RecordError
from swarm_bridge.codec.leaves import Convert, leaf_mapper
from swarm_bridge.codec.rosdefs import RosField
from swarm_bridge.codec.rostypes import RosTypes, default_types
from swarm_bridge.codec.transcode import avro_transcoder

__all__ = ["AvroRecordCodec", "avro_schema", "body_record_name", "record_name"]

_PRIMITIVE = {
    "bool": "boolean", "int8": "int", "int16": "int", "int32": "int", "uint8": "int", "uint16": "int",
    "byte": "int", "char": "int", "uint32": "long", "int64": "long", "float32": "float", "float64": "double",
    "string": "string", "wstring": "string",
}
_UINT64 = {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 0}
ENVELOPE_FIELDS = (
    ("robot_id", "string"), ("stream", "string"), ("seq", "long"), ("stamp_ns", "long"),
    ("ros_type", "string"), ("schema_version", "int"),
)


def body_record_name(ros_type: str) -> str:
    """`sensor_msgs/msg/Imu` -> `ros.sensor_msgs.msg.Imu`."""
    return "ros." + ros_type.replace("/", ".")


def record_name(ros_type: str) -> str:
    """`sensor_msgs/msg/Imu` -> `swarm_bridge.record.sensor_msgs.msg.Imu`, the envelope record."""
    return "swarm_bridge.record." + ros_type.replace("/", ".")


def avro_schema(ros_type: str, types: RosTypes | None = None) -> dict[str, Any]:
    """The Avro schema (a JSON-ready dict) of records of `ros_type`; the same input gives the same dict."""
    types = types or default_types()
    body = _record(ros_type, types, set())
    namespace, name = record_name(ros_type).rsplit(".", 1)
    return {
        "type": "record", "name": name, "namespace": namespace,
        "doc": f"swarm_bridge record of ROS {ros_type}",
        "fields": [*({"name": n, "type": t} for n, t in ENVELOPE_FIELDS), {"name": "body", "type": body}],
    }


def _record(ros_type: str, types: RosTypes, defined: set[str]) -> dict[str, Any] | str:
    full = body_record_name(ros_type)
    if ros_type in defined:
        return full
    defined.add(ros_type)
    namespace, name = full.rsplit(".", 1)
    fields = [{"name": f.name, "type": _field(f, types, defined), "default": _default(f, types)}
              for f in types.fields(ros_type)]
    return {"type": "record", "name": name, "namespace": namespace, "ros.type": ros_type, "fields": fields}


def _default(f: RosField, types: RosTypes) -> Any:
    """The field's ROS default (zero, empty, false; fixed arrays filled) as an Avro default: a reader of a
    version that added the field reads records of one without it (schema resolution), and the other way."""
    return _json_value(f, types.default_message_field(f), types)


def _json_value(f: RosField, value: Any, types: RosTypes) -> Any:
    """A message value in the JSON form Avro defaults take (bytes as code points 0-255, uint64 as decimal bytes)."""
    if f.is_bytes:
        return bytes(value).decode("latin-1")
    if f.kind not in ("base", "nested"):
        item = dataclasses.replace(f, kind="base", size=0)
        return [_json_value(item, v, types) for v in value]
    if f.is_message:
        return {g.name: _json_value(g, value[g.name], types) for g in types.fields(f.type)}
    if f.type == "uint64":
        return int(value).to_bytes(int(value).bit_length() // 8 + 1, "big").decode("latin-1")
    return value


def _field(f: RosField, types: RosTypes, defined: set[str]) -> Any:
    size_key = "ros.size" if f.kind == "array" else "ros.max_size"
    if f.is_bytes:
        return {"type": "bytes", size_key: f.size} if f.size else "bytes"
    item: Any
    if f.is_message:
        item = _record(f.type, types, defined)
    elif f.type == "uint64":
        item = dict(_UINT64)
    elif f.str_bound:
        item = {"type": "string", "ros.max_length": f.str_bound}
    else:
        item = _PRIMITIVE[f.type]
    if f.kind in ("base", "nested"):
        return item
    array: dict[str, Any] = {"type": "array", "items": item}
    if f.size:
        array[size_key] = f.size
    return array


class AvroRecordCodec:
    """Envelope <-> Avro record bytes for one ROS type, and raw CDR <-> Avro without building ROS objects."""

    def __init__(self, ros_type: str, types: RosTypes | None = None) -> None:
        self.types = types or default_types()
        self.ros_type = ros_type
        self.schema = avro_schema(ros_type, self.types)
        self._parsed = parse_schema(self.schema)
        self._cdr = self.types.cdr_codec(ros_type)
        self._from_avro = leaf_mapper(self.types, ros_type, _from_avro_leaf)
        self._transcode = avro_transcoder(self.types, ros_type)

    def encode(self, envelope: Envelope) -> bytes:
        """Envelope (body: a plain message dict) -> Avro bytes; RecordError names a field that does not fit.

        The body is checked against the ROS definition (ranges, array sizes, bounds) by writing it as CDR,
        which is then transcoded: the same bytes as fastavro's, in a fraction of its time."""
        return encode_envelope(self._cdr, self._transcode, self.ros_type, envelope)

    def decode(self, payload: bytes) -> Envelope:
        """Avro bytes -> Envelope with the message dict as body; RecordError for anything else."""
        record = self._read(payload)
        body = record["body"]
        return _envelope(record, self._from_avro(body) if self._from_avro is not None else body)

    def encode_cdr(self, raw: bytes, *, robot_id: str, stream: str, seq: int, stamp_ns: int,
                   schema_version: int = SCHEMA_VERSION) -> bytes:
        """Raw CDR of this ROS type (rclpy `raw=True`) -> Avro record bytes, transcoded without building a dict."""
        return self._transcode(little_endian(raw, self._cdr), robot_id, stream, seq, stamp_ns, schema_version)

    def decode_cdr(self, payload: bytes) -> tuple[Envelope, bytes]:
        """Avro bytes -> (Envelope with an empty body, the message as raw CDR for rclpy `publish(bytes)`)."""
        record = self._read(payload)
        body = record["body"]
        raw = body_cdr(self._cdr, self._from_avro(body) if self._from_avro is not None else body)
        return _envelope(record, {}), raw

    def _read(self, payload: bytes) -> dict[str, Any]:
        source = io.BytesIO(payload)
        try:
            record: dict[str, Any] = schemaless_reader(source, self._parsed, None)  # type: ignore[assignment]
        except Exception as exc:  # fastavro raises many kinds on garbage; none may escape a decoder
            raise RecordError(f"not an Avro {self.ros_type} record: {type(exc).__name__}: {exc}") from None
        if source.tell() != len(payload):
            raise RecordError(f"not an Avro {self.ros_type} record: {len(payload) - source.tell()} bytes left over")
        if record["ros_type"] != self.ros_type:
            raise RecordError(f"expected {self.ros_type}, got {record['ros_type']!r}", field="ros_type")
        return record


def _envelope(record: dict[str, Any], body: dict[str, Any]) -> Envelope:
    return Envelope(robot_id=record["robot_id"], stream=record["stream"], seq=record["seq"],
                    stamp_ns=record["stamp_ns"], ros_type=record["ros_type"], body=body,
                    schema_version=record["schema_version"])


def _from_avro_leaf(f: RosField) -> Convert | None:
    return _decimal_uint64 if f.type == "uint64" else None


def _decimal_uint64(value: Decimal) -> int:
    number = int(value)
    if not 0 <= number < 2**64 or number != value:
        raise RecordError(f"{value} is not a uint64")
    return number
