"""confluent-kafka's Schema Registry HTTP client, imported only when a registry is made: it needs the
client's extra packages (`pip install "confluent-kafka[schemaregistry]"`); ImportError names what is missing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["client_schema", "schema_registry_client"]


def schema_registry_client(settings: Mapping[str, Any]) -> Any:
    """A SchemaRegistryClient with `settings` (url, timeout, retries, basic auth); ImportError without its
    extra packages, ValueError/TypeError for a bad setting."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient(dict(settings))


def client_schema(text: str, kind: str, references: Sequence[tuple[str, str, int]]) -> Any:
    """The client's Schema for `text` of type `kind` with its (name, subject, version) references."""
    from confluent_kafka.schema_registry import Schema, SchemaReference

    return Schema(text, kind, [SchemaReference(name, subject, version) for name, subject, version in references])
