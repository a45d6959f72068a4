"""Schema registries: every record carries a schema id (Kafka, Confluent framing) or an Avro fingerprint /
Protobuf type and version (MQTT); a registry maps those back to schemas.

Modules, lowest first (none imports one above it):
  schema          Schema, SchemaReference, RegisteredSchema: the values both backends store and return;
  subjects        subject naming strategies (topic_name, record_name, topic_record_name), chosen by name;
  violation       what an evolution rule reports; avro_rules, protobuf_rules: each format's rules;
  compatibility   the levels (BACKWARD, FULL_TRANSITIVE, ...) and the check run at registration;
  file            FileRegistry: a directory, no server (the default);
  confluent       ConfluentRegistry: any Confluent-API server, through confluent-kafka's client;
  backends        the SchemaRegistry interface and open_registry(location) choosing a backend.
"""

from swarm_bridge.codec.registry.avro_rules import avro_violation
from swarm_bridge.codec.registry.backends import SchemaRegistry, open_registry
from swarm_bridge.codec.registry.compatibility import (
    DEFAULT_COMPATIBILITY,
    LEVELS,
    check_compatibility,
    normalize_level,
)
from swarm_bridge.codec.registry.confluent import ConfluentRegistry
from swarm_bridge.codec.registry.file import FileRegistry
from swarm_bridge.codec.registry.protobuf_rules import protobuf_violation
from swarm_bridge.codec.registry.schema import SCHEMA_KINDS, RegisteredSchema, Schema, SchemaReference
from swarm_bridge.codec.registry.subjects import (
    DEFAULT_SUBJECT_NAME_STRATEGY,
    SUBJECT_NAME_STRATEGIES,
    SubjectNameStrategy,
    record_name,
    subject_name_strategy,
    topic_name,
    topic_record_name,
)
from swarm_bridge.codec.registry.violation import Violation

__all__ = [
    "DEFAULT_COMPATIBILITY",
    "DEFAULT_SUBJECT_NAME_STRATEGY",
    "LEVELS",
    "SCHEMA_KINDS",
    "SUBJECT_NAME_STRATEGIES",
    "ConfluentRegistry",
    "FileRegistry",
    "RegisteredSchema",
    "Schema",
    "SchemaReference",
    "SchemaRegistry",
    "SubjectNameStrategy",
    "Violation",
    "avro_violation",
    "check_compatibility",
    "normalize_level",
    "open_registry",
    "protobuf_violation",
    "record_name",
    "subject_name_strategy",
    "topic_name",
    "topic_record_name",
]
