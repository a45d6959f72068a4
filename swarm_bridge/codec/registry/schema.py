"""Schemas as registries store them: `Schema` (kind, text, references), `RegisteredSchema` (id, subject, version)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm_bridge.codec.errors import SchemaParseError
from swarm_bridge.codec.framing import avro_fingerprint

__all__ = ["SCHEMA_KINDS", "RegisteredSchema", "Schema", "SchemaReference", "fingerprint_text"]

SCHEMA_KINDS = ("AVRO", "PROTOBUF")


@dataclass(frozen=True)
class SchemaReference:
    """A schema this one uses: the name it is used by (Avro full name or .proto import path), where it lives."""

    name: str
    subject: str
    version: int


@dataclass(frozen=True)
class Schema:
    """A schema as a registry stores it: kind "AVRO" | "PROTOBUF", its text, the schemas it references.

    AVRO text is the JSON schema; PROTOBUF text is .proto source or a base64 FileDescriptorProto
    (the form confluent-kafka's Protobuf serializer registers).
    """

    kind: str
    text: str
    references: tuple[SchemaReference, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.kind not in SCHEMA_KINDS:
            raise SchemaParseError(
                "schema", f"kind {self.kind!r} is not valid. Valid options are: {', '.join(SCHEMA_KINDS)}"
            )
        if not isinstance(self.text, str) or not self.text.strip():
            raise SchemaParseError("schema", "schema text must be a non-empty string")
        object.__setattr__(self, "references", tuple(self.references))

    @classmethod
    def avro(cls, schema: Any, *, references: Sequence[SchemaReference] = ()) -> Schema:
        """An Avro schema from its parsed JSON (dict, list, name) or JSON text."""
        text = schema if isinstance(schema, str) else json.dumps(schema, separators=(",", ":"))
        return cls("AVRO", text, tuple(references))

    @classmethod
    def protobuf(cls, schema: Any, *, references: Sequence[SchemaReference] = ()) -> Schema:
        """A Protobuf schema from .proto text or a FileDescriptorProto (stored as base64, deterministic)."""
        if isinstance(schema, str):
            return cls("PROTOBUF", schema, tuple(references))
        if not hasattr(schema, "SerializeToString"):
            raise SchemaParseError("protobuf schema", f"expected .proto text or a FileDescriptorProto, got {schema!r}")
        raw = schema.SerializeToString(deterministic=True)
        return cls("PROTOBUF", base64.standard_b64encode(raw).decode("ascii"), tuple(references))

    @classmethod
    def from_file(cls, path: Path | str) -> Schema:
        """Read a `.avsc` (Avro) or `.proto` file; SchemaParseError naming the file if it does not parse."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SchemaParseError(str(path), f"cannot read: {exc}") from None
        if not text.strip():
            raise SchemaParseError(str(path), "empty file")
        if path.suffix == ".avsc":
            schema = cls("AVRO", text)
            try:
                schema.parsed()
            except SchemaParseError as exc:
                raise SchemaParseError(str(path), exc.problem) from None
            return schema
        if path.suffix == ".proto":
            from swarm_bridge.codec.fleet_protos import compile_proto

            compile_proto(text, name=path.name, source=str(path))
            return cls("PROTOBUF", text)
        raise SchemaParseError(str(path), f"unknown schema file type {path.suffix!r}. Valid options are: .avsc, .proto")

    def parsed(self) -> Any:
        """AVRO: the JSON value, checked by fastavro; PROTOBUF: a FileDescriptorProto (.proto compiled by protoc)."""
        if self.kind == "AVRO":
            try:
                value = json.loads(self.text)
            except json.JSONDecodeError as exc:
                raise SchemaParseError("avro schema", f"not JSON: {exc}") from None
            avro_fingerprint(value)  # parses with fastavro: SchemaParseError if invalid
            return value
        descriptor = _descriptor_from_base64(self.text)
        if descriptor is not None:
            return descriptor
        from swarm_bridge.codec.fleet_protos import compile_proto

        return compile_proto(self.text)

    def identity(self) -> str:
        """What makes two schemas "the same" for re-registration: kind, normalized text, references."""
        if self.kind == "AVRO":
            try:
                body = json.dumps(json.loads(self.text), sort_keys=True, separators=(",", ":"))
            except json.JSONDecodeError:
                body = self.text.strip()
        else:
            body = self.text.strip()
        refs = ";".join(f"{r.name}={r.subject}@{r.version}" for r in self.references)
        return f"{self.kind}\n{refs}\n{body}"

    def to_json(self) -> dict[str, Any]:
        """The stored form (also the Confluent API's request body keys, without schemaType AVRO defaults)."""
        return {
            "schemaType": self.kind,
            "schema": self.text,
            "references": [{"name": r.name, "subject": r.subject, "version": r.version} for r in self.references],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Schema:
        refs = tuple(SchemaReference(str(r["name"]), str(r["subject"]), int(r["version"])) for r in doc["references"])
        return cls(str(doc.get("schemaType") or "AVRO"), str(doc["schema"]), refs)


def _descriptor_from_base64(text: str) -> Any:
    """A FileDescriptorProto if `text` is its base64 form, else None (.proto source is never valid base64)."""
    stripped = "".join(text.split())
    if not stripped or len(stripped) % 4:
        return None
    try:
        raw = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        return None
    from google.protobuf import descriptor_pb2
    from google.protobuf.message import DecodeError

    descriptor = descriptor_pb2.FileDescriptorProto()
    try:
        descriptor.ParseFromString(raw)
    except DecodeError:
        return None
    return descriptor if descriptor.message_type or descriptor.enum_type else None


@dataclass(frozen=True)
class RegisteredSchema:
    """A schema as registered under a subject: its global id, its version in the subject, the schema."""

    id: int
    version: int
    subject: str
    schema: Schema


def fingerprint_text(fingerprint: object) -> str:
    """How an Avro fingerprint is named in UnknownSchema: `fingerprint 0x<16 hex digits>`."""
    return f"fingerprint 0x{fingerprint:016x}" if isinstance(fingerprint, int) else f"fingerprint {fingerprint!r}"
