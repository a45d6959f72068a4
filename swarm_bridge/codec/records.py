"""One record codec per ROS type and format, all with the same four methods (`RecordCodec`)."""

from __future__ import annotations

from typing import Literal, Protocol, get_args

from swarm_bridge.codec.cdr import body_cdr
from swarm_bridge.codec.envelope import SCHEMA_VERSION, Envelope
from swarm_bridge.codec.errors import CodecError, RecordError
from swarm_bridge.codec.formats import FORMATS
from swarm_bridge.codec.json_codec import decode_json, encode_json
from swarm_bridge.codec.rostypes import RosTypes, default_types

__all__ = ["RecordCodec", "RecordFormat", "record_codec"]

RecordFormat = Literal["avro", "protobuf", "json"]  # the names of codec.formats.FORMATS


class RecordCodec(Protocol):
    """Envelope <-> payload bytes, and raw CDR (rclpy `raw=True`) <-> payload bytes, for one ROS type."""

    ros_type: str

    def encode(self, envelope: Envelope) -> bytes: ...

    def decode(self, payload: bytes) -> Envelope: ...

    def encode_cdr(self, raw: bytes, *, robot_id: str, stream: str, seq: int, stamp_ns: int,
                   schema_version: int = SCHEMA_VERSION) -> bytes: ...

    def decode_cdr(self, payload: bytes) -> tuple[Envelope, bytes]: ...


def record_codec(ros_type: str, fmt: RecordFormat, types: RosTypes | None = None) -> RecordCodec:
    """The codec of `ros_type` records in `fmt` (`codec.formats.FORMATS`); UnknownRosType for a type without
    definition, CodecError for an unknown format."""
    types = types or default_types()
    types.fields(ros_type)  # UnknownRosType with a did-you-mean, before any schema work
    if fmt not in FORMATS:
        raise CodecError(f"record format {fmt!r} is not valid. Valid options are: "
                         f"{', '.join(get_args(RecordFormat))}")
    return FORMATS[fmt].codec(ros_type, types)


class JsonRecordCodec:
    """JSON records (`json_codec`); CDR goes through a message dict (bytes become lists of ints)."""

    def __init__(self, ros_type: str, types: RosTypes | None = None) -> None:
        self.ros_type = ros_type
        self.types = types or default_types()
        self._cdr = self.types.cdr_codec(ros_type)

    def encode(self, envelope: Envelope) -> bytes:
        return encode_json(envelope)

    def decode(self, payload: bytes) -> Envelope:
        envelope = decode_json(payload)
        if envelope.ros_type != self.ros_type:
            raise RecordError(f"expected {self.ros_type}, got {envelope.ros_type!r}", field="ros_type")
        return envelope

    def encode_cdr(self, raw: bytes, *, robot_id: str, stream: str, seq: int, stamp_ns: int,
                   schema_version: int = SCHEMA_VERSION) -> bytes:
        body = self._cdr.to_dict(raw)
        return encode_json(Envelope(robot_id, stream, seq, stamp_ns, self.ros_type, body, schema_version))

    def decode_cdr(self, payload: bytes) -> tuple[Envelope, bytes]:
        envelope = self.decode(payload)
        raw = body_cdr(self._cdr, envelope.body)
        return Envelope(envelope.robot_id, envelope.stream, envelope.seq, envelope.stamp_ns, envelope.ros_type,
                        {}, envelope.schema_version), raw
