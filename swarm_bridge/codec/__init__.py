"""Records and their wire formats; bytes in, bytes out, no ROS or broker imports."""

from swarm_bridge.codec.envelope import SCHEMA_VERSION, Envelope
from swarm_bridge.codec.errors import (
    CodecError,
    FramingError,
    IncompatibleSchema,
    RecordError,
    SchemaMismatch,
    SchemaParseError,
    UnknownRosType,
    UnknownSchema,
)
from swarm_bridge.codec.json_codec import decode_json, encode_json

__all__ = [
    "SCHEMA_VERSION",
    "CodecError",
    "Envelope",
    "FramingError",
    "IncompatibleSchema",
    "RecordError",
    "SchemaMismatch",
    "SchemaParseError",
    "UnknownRosType",
    "UnknownSchema",
    "decode_json",
    "encode_json",
]
