"""Records and their wire formats; bytes in, bytes out, no ROS or broker imports."""

from swarm_bridge.codec.avro import AvroRecordCodec, avro_schema
from swarm_bridge.codec.compatibility import LEVELS as COMPATIBILITY_LEVELS
from swarm_bridge.codec.compatibility import Violation, avro_violation, check_compatibility, protobuf_violation
from swarm_bridge.codec.envelope import SCHEMA_VERSION, Envelope
from swarm_bridge.codec.errors import (
    CodecError,
    FramingError,
    IncompatibleSchema,
    RecordError,
    RegistryError,
    SchemaMismatch,
    SchemaParseError,
    UnknownRosType,
    UnknownSchema,
)
from swarm_bridge.codec.framing import (
    DEFAULT_MAX_PAYLOAD,
    ConfluentFrame,
    MqttProperties,
    ProtoMqttMeta,
    SingleObjectFrame,
    avro_fingerprint,
    frame_confluent,
    frame_single_object,
    parse_confluent,
    parse_proto_mqtt_properties,
    parse_single_object,
    proto_mqtt_properties,
)
from swarm_bridge.codec.json_codec import decode_json, encode_json
from swarm_bridge.codec.protobuf import ProtoRecordCodec, file_descriptors, proto_text
from swarm_bridge.codec.records import JsonRecordCodec, RecordCodec, RecordFormat, record_codec
from swarm_bridge.codec.registry import (
    FileRegistry,
    RegisteredSchema,
    Schema,
    SchemaReference,
    SchemaRegistry,
    open_registry,
    subject_name_strategy,
)
from swarm_bridge.codec.registry_confluent import ConfluentRegistry
from swarm_bridge.codec.rostypes import RosField, RosTypes, default_types

__all__ = [
    "COMPATIBILITY_LEVELS",
    "DEFAULT_MAX_PAYLOAD",
    "SCHEMA_VERSION",
    "AvroRecordCodec",
    "CodecError",
    "ConfluentFrame",
    "ConfluentRegistry",
    "Envelope",
    "FileRegistry",
    "FramingError",
    "IncompatibleSchema",
    "JsonRecordCodec",
    "MqttProperties",
    "ProtoMqttMeta",
    "ProtoRecordCodec",
    "RecordCodec",
    "RecordError",
    "RecordFormat",
    "RegisteredSchema",
    "RegistryError",
    "RosField",
    "RosTypes",
    "Schema",
    "SchemaMismatch",
    "SchemaParseError",
    "SchemaReference",
    "SchemaRegistry",
    "SingleObjectFrame",
    "UnknownRosType",
    "UnknownSchema",
    "Violation",
    "avro_fingerprint",
    "avro_schema",
    "avro_violation",
    "check_compatibility",
    "decode_json",
    "default_types",
    "encode_json",
    "file_descriptors",
    "frame_confluent",
    "frame_single_object",
    "open_registry",
    "parse_confluent",
    "parse_proto_mqtt_properties",
    "parse_single_object",
    "proto_mqtt_properties",
    "proto_text",
    "protobuf_violation",
    "record_codec",
    "subject_name_strategy",
]
