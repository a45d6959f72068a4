"""The `SchemaRegistry` interface both backends implement, and `open_registry` choosing a backend by location.

Backends: `FileRegistry` (a directory, no server; the default) and `ConfluentRegistry` (any Confluent-API
server). Both refuse, at registration, a schema that breaks the subject's compatibility level (default
BACKWARD) and return the existing id for an identical one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from swarm_bridge.codec.registry.confluent import ConfluentRegistry
from swarm_bridge.codec.registry.file import FileRegistry
from swarm_bridge.codec.registry.schema import RegisteredSchema, Schema

__all__ = ["SchemaRegistry", "open_registry"]


@runtime_checkable
class SchemaRegistry(Protocol):
    """What the codecs need from a registry; FileRegistry and ConfluentRegistry implement it."""

    def register(self, subject: str, schema: Schema) -> RegisteredSchema:
        """Register (or find, if identical) `schema` under `subject`; IncompatibleSchema if the level forbids it."""

    def check(self, subject: str, schema: Schema) -> None:
        """Raise IncompatibleSchema if registering `schema` under `subject` would be refused; writes nothing."""

    def by_id(self, schema_id: int) -> Schema:
        """The schema with this global id; UnknownSchema if there is none."""

    def latest(self, subject: str) -> RegisteredSchema:
        """The newest version of `subject`; UnknownSchema if the subject has none."""

    def version(self, subject: str, version: int) -> RegisteredSchema:
        """One version of `subject`; UnknownSchema if it does not exist."""

    def versions(self, subject: str) -> list[int]:
        """The versions of `subject`, ascending; UnknownSchema if the subject has none."""

    def subjects(self) -> list[str]:
        """Every subject with at least one version, sorted."""

    def by_fingerprint(self, fingerprint: int) -> RegisteredSchema:
        """The Avro schema with this CRC-64-AVRO fingerprint (single-object encoding); lowest id first."""

    def set_compatibility(self, subject: str | None, level: str) -> None:
        """Set the level of `subject`, or the registry's default when `subject` is None."""

    def compatibility(self, subject: str | None = None) -> str:
        """The level in force for `subject` (its own, else the default), or the default when None."""

    def close(self) -> None:
        """Release what the registry holds open (a server's HTTP session); one registry per process."""


def open_registry(location: str | Path, **options: Any) -> SchemaRegistry:
    """`http(s)://...` -> ConfluentRegistry(location, **options); anything else -> FileRegistry(Path(location))."""
    text = str(location)
    if text.startswith(("http://", "https://")):
        return ConfluentRegistry(text, **options)
    return FileRegistry(Path(text.removeprefix("file://")), **options)
