"""Protobuf records of ROS messages (schema: `protobuf_schema`), with upb and a fast path from raw CDR.

- Descriptors go into a private `DescriptorPool` per codec; classes come from `message_factory`.
- `encode_cdr` transcodes CDR straight to protobuf bytes (see `transcode`): no dict, no upb object.
  It writes every field, defaults included (upb would leave them out): other bytes than upb's for the
  same message, which any Protobuf reader decodes the same. `encode` writes the body dict as CDR (which
  checks it against the ROS definition) and transcodes that.
- `decode` parses with upb and reads the message into a plain dict with code generated once per type
  (repeated -> list, bytes stay bytes); `decode_cdr` writes CDR straight from the message's attributes,
  checking sizes and ranges against the ROS definition (a uint8 arrives as a uint32, a fixed array as a
  repeated field of any length). A record must carry a body: that also catches one cut short.
"""

from __future__ import annotations

import keyword
from typing import Any

from google.protobuf import descriptor_pool, message_factory

from swarm_bridge.codec.cdr import CDR_ERRORS, encode_envelope, little_endian
from swarm_bridge.codec.envelope import SCHEMA_VERSION, Envelope
from swarm_bridge.codec.errors import RecordError
from swarm_bridge.codec.protobuf_schema import (
    body_message_name,
    file_descriptors,
    proto_text,
    record_message_name,
)
from swarm_bridge.codec.rostypes import RosTypes, default_types
from swarm_bridge.codec.transcode import proto_transcoder

__all__ = ["ProtoRecordCodec", "body_message_name", "file_descriptors", "proto_text", "record_message_name"]


class ProtoRecordCodec:
    """Envelope <-> Protobuf record bytes for one ROS type, and raw CDR <-> Protobuf."""

    def __init__(self, ros_type: str, types: RosTypes | None = None) -> None:
        self.types = types or default_types()
        self.ros_type = ros_type
        self.files = file_descriptors(ros_type, self.types)
        self.pool = descriptor_pool.DescriptorPool()
        for file in self.files:
            self.pool.AddSerializedFile(file.SerializeToString())
        self.record_class: Any = message_factory.GetMessageClass(
            self.pool.FindMessageTypeByName(record_message_name(ros_type)))
        self.body_class: Any = message_factory.GetMessageClass(
            self.pool.FindMessageTypeByName(body_message_name(ros_type)))
        self._cdr = self.types.cdr_codec(ros_type)
        self._to_dict = _compile_reader(self.types, ros_type)
        self._transcode = proto_transcoder(self.types, ros_type)

    def encode(self, envelope: Envelope) -> bytes:
        """Envelope (body: a plain message dict) -> Protobuf bytes; RecordError names a field that does not fit.

        The body is checked against the ROS definition (ranges, array sizes, bounds) by writing it as CDR,
        which is then transcoded: faster than building the upb message from nested dicts."""
        return encode_envelope(self._cdr, self._transcode, self.ros_type, envelope)

    def decode(self, payload: bytes) -> Envelope:
        """Protobuf bytes -> Envelope with the message dict as body; RecordError for anything else."""
        record = self._parse(payload)
        return _envelope(record, self._to_dict(record.body))

    def encode_cdr(self, raw: bytes, *, robot_id: str, stream: str, seq: int, stamp_ns: int,
                   schema_version: int = SCHEMA_VERSION) -> bytes:
        """Raw CDR of this ROS type (rclpy `raw=True`) -> Protobuf record bytes, without building objects."""
        return self._transcode(little_endian(raw, self._cdr), robot_id, stream, seq, stamp_ns, schema_version)

    def decode_cdr(self, payload: bytes) -> tuple[Envelope, bytes]:
        """Protobuf bytes -> (Envelope with an empty body, the message as raw CDR for rclpy `publish(bytes)`)."""
        record = self._parse(payload)
        try:
            raw = self._cdr.object_to_cdr(record.body)
        except CDR_ERRORS:
            why = self.types.explain(self._to_dict(record.body), self.ros_type)
            raise RecordError(f"{why.problem} (in {self.ros_type})", field=f"body.{why.field}") from None
        return _envelope(record, {}), raw

    def _parse(self, payload: bytes) -> Any:
        record = self.record_class()
        try:
            record.ParseFromString(payload)
        except Exception as exc:  # DecodeError, TypeError for non-bytes...; none may escape a decoder
            raise RecordError(f"not a Protobuf {self.ros_type} record: {type(exc).__name__}: {exc}") from None
        if record.ros_type != self.ros_type:
            raise RecordError(f"expected {self.ros_type}, got {record.ros_type!r}", field="ros_type")
        if not record.HasField("body"):  # also catches a record cut off before its body (the last field)
            raise RecordError(f"not a Protobuf {self.ros_type} record: no body", field="body")
        return record


def _envelope(record: Any, body: dict[str, Any]) -> Envelope:
    return Envelope(robot_id=record.robot_id, stream=record.stream, seq=record.seq, stamp_ns=record.stamp_ns,
                    ros_type=record.ros_type, body=body, schema_version=record.schema_version)


def _compile_reader(types: RosTypes, ros_type: str) -> Any:
    """Generate `read(message) -> dict` for `ros_type`: nested messages inlined, sequences of them looped."""
    source: list[str] = []
    pending, done = [ros_type], {ros_type}
    counter = 0

    def attribute(var: str, name: str) -> str:
        return f"getattr({var}, {name!r})" if keyword.iskeyword(name) else f"{var}.{name}"

    def expression(name: str, var: str, lines: list[str]) -> str:
        nonlocal counter
        parts = []
        for f in types.fields(name):
            value = attribute(var, f.name)
            if f.kind == "nested":
                counter += 1
                lines.append(f"    _m{counter} = {value}")
                value = expression(f.type, f"_m{counter}", lines)
            elif f.kind != "base" and f.is_message:
                if f.type not in done:
                    done.add(f.type)
                    pending.append(f.type)
                value = f"[read_{f.type.replace('/', '__')}(_i) for _i in {value}]"
            elif f.kind != "base" and not f.is_bytes:
                value = f"list({value})"
            parts.append(f"{f.name!r}: {value}")
        return "{" + ", ".join(parts) + "}"

    while pending:
        name = pending.pop()
        lines: list[str] = []
        result = expression(name, "m", lines)
        source += [f"def read_{name.replace('/', '__')}(m):", *lines, f"    return {result}"]
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(source), f"<protobuf reader {ros_type}>", "exec"), namespace)
    return namespace[f"read_{ros_type.replace('/', '__')}"]
