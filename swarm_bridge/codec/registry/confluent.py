"""The Confluent-API registry backend: `ConfluentRegistry(url)` through confluent-kafka's SchemaRegistryClient.

Works with any server speaking the Confluent schema-registry REST API (Confluent Schema Registry,
Apicurio Registry's `/apis/ccompat/v7`, Karapace). The client itself comes from
`transport/registry_client.py`, lazily, when a ConfluentRegistry is made (it needs the client's extra
packages: `pip install "confluent-kafka[schemaregistry]"`).

Errors map to the codec's: 404 -> UnknownSchema; 409 -> IncompatibleSchema (the field and rule
are found by running the local rules of `registry.compatibility` against the subject's versions, the
server's own message appended); 422 -> SchemaParseError; unreachable or anything else ->
RegistryError. A Confluent server cannot look schemas up by Avro fingerprint: `by_fingerprint`
answers from the schemas this object has seen, else scans every subject (at most every 30 s).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from swarm_bridge.codec.errors import (
    CodecError,
    IncompatibleSchema,
    RegistryError,
    SchemaParseError,
    UnknownSchema,
)
from swarm_bridge.codec.framing import avro_fingerprint
from swarm_bridge.codec.registry.compatibility import check_compatibility, normalize_level
from swarm_bridge.codec.registry.schema import RegisteredSchema, Schema, SchemaReference, fingerprint_text

__all__ = ["ConfluentRegistry"]

_BACKEND = "confluent"
_FIX_CLIENT = (
    'pip install "confluent-kafka[schemaregistry]==2.16.1" (adds attrs, cachetools, certifi, httpx2, authlib)'
)
_T = TypeVar("_T")
_RESCAN_AFTER_S = 30.0  # an unknown fingerprint triggers a new scan of the server at most this often


class ConfluentRegistry:
    """A SchemaRegistry backed by a Confluent-API server at `url`.

    Options: `timeout_s` per request, `max_retries` on transient failures, `basic_auth`
    ("user:password"), `conf` for any other SchemaRegistryClient property (checked by the client,
    which rejects unknown ones). The server's levels apply (Confluent defaults to BACKWARD,
    Apicurio to NONE).
    """

    backend = _BACKEND

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        max_retries: int = 1,
        basic_auth: str | None = None,
        conf: Mapping[str, Any] | None = None,
    ) -> None:
        from swarm_bridge.transport.registry_client import schema_registry_client

        self.url = url.rstrip("/")
        settings: dict[str, Any] = {
            "url": self.url,
            "timeout": timeout_s,
            "max.retries": max_retries,
            "retries.wait.ms": 200,
        }
        if basic_auth:
            settings["basic.auth.user.info"] = basic_auth
        settings.update(conf or {})
        try:
            self._client = schema_registry_client(settings)
        except ImportError as exc:
            raise RegistryError(
                _BACKEND, f"the schema-registry client cannot be imported: {exc}", _FIX_CLIENT
            ) from None
        except (ValueError, TypeError) as exc:
            raise RegistryError(_BACKEND, f"bad client configuration: {exc}", "fix the option named above") from None
        self._fingerprints: dict[int, RegisteredSchema] = {}
        self._scanned_at: float | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ConfluentRegistry({self.url!r})"

    def close(self) -> None:
        """Close the HTTP session; the object is unusable afterwards."""
        self._client.close()

    def __enter__(self) -> ConfluentRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # conversions and errors

    @staticmethod
    def _to_client(schema: Schema) -> Any:
        from swarm_bridge.transport.registry_client import client_schema

        return client_schema(schema.text, schema.kind, [(r.name, r.subject, r.version) for r in schema.references])

    @staticmethod
    def _from_client(schema: Any) -> Schema:
        refs = tuple(
            SchemaReference(str(r.name), str(r.subject), int(r.version)) for r in (schema.references or [])
        )
        return Schema(str(schema.schema_type or "AVRO"), str(schema.schema_str), refs)

    def _registered(self, found: Any, subject: str | None = None) -> RegisteredSchema:
        registered = RegisteredSchema(
            int(found.schema_id), int(found.version), str(found.subject or subject), self._from_client(found.schema)
        )
        self._remember(registered)
        return registered

    def _remember(self, registered: RegisteredSchema) -> None:
        if registered.schema.kind != "AVRO" or registered.schema.references:
            return
        try:
            fingerprint = avro_fingerprint(registered.schema.text)
        except CodecError:
            return
        with self._lock:
            known = self._fingerprints.get(fingerprint)
            if known is None or registered.id < known.id:
                self._fingerprints[fingerprint] = registered

    def _call(self, what: str, action: Callable[[], _T], *, unknown: str | None = None) -> _T:
        """Run one client call; turn its failures into the codec's typed errors."""
        try:
            return action()
        except Exception as exc:
            raise self._mapped(what, exc, unknown=unknown) from None

    def _mapped(self, what: str, exc: Exception, *, unknown: str | None = None) -> CodecError:
        """The typed error for a failed client call."""
        status = getattr(exc, "http_status_code", None)
        if status is not None:
            message = getattr(exc, "error_message", str(exc))
            if status == 404:
                return UnknownSchema(unknown or what, fix=f"check the name or register it first (server: {message})")
            if status == 422:
                return SchemaParseError(what, f"refused by the registry as invalid: {message}")
            return RegistryError(_BACKEND, f"{what}: HTTP {status}: {message}", f"check the registry at {self.url}")
        if isinstance(exc, (ValueError, TypeError)):
            return RegistryError(_BACKEND, f"{what}: {exc}")
        # transport errors of the HTTP client: unreachable, timeout, TLS
        return RegistryError(
            _BACKEND,
            f"{what}: cannot reach {self.url}: {type(exc).__name__}: {exc}",
            "check the URL and that the registry is running",
        )

    # the interface

    def register(self, subject: str, schema: Schema) -> RegisteredSchema:
        """Register `schema` under `subject`; the server checks compatibility (IncompatibleSchema)."""
        client_schema = self._to_client(schema)
        try:
            found = self._client.register_schema_full_response(subject, client_schema)
        except Exception as exc:
            if getattr(exc, "http_status_code", None) == 409:
                raise self._incompatible(subject, schema, str(getattr(exc, "error_message", exc))) from None
            raise self._mapped(f"register under subject {subject!r}", exc) from None
        if found.version is None:  # the server answered {"id": N} only (Confluent < 7.x, Apicurio)
            found = self._call(
                f"look up the schema just registered under {subject!r}",
                lambda: self._client.lookup_schema(subject, client_schema),
            )
        self._client.clear_latest_caches()
        return self._registered(found, subject)

    def check(self, subject: str, schema: Schema) -> None:
        """IncompatibleSchema if the server would refuse `schema` under `subject`; writes nothing."""
        try:
            versions = self.versions(subject)
        except UnknownSchema:
            return
        client_schema = self._to_client(schema)
        level = self.compatibility(subject)
        if level.endswith("_TRANSITIVE"):
            compatible = self._call(
                f"test compatibility with {subject!r}",
                lambda: self._client.test_compatibility_all_versions(subject, client_schema),
            )
        else:
            compatible = self._call(
                f"test compatibility with {subject!r}",
                lambda: self._client.test_compatibility(subject, client_schema, version=versions[-1]),
            )
        if not compatible:
            raise self._incompatible(subject, schema, "the registry reports the schema as incompatible")

    def _incompatible(self, subject: str, schema: Schema, server_message: str) -> IncompatibleSchema:
        """Name the field and rule: run the local rules against the subject's versions; else use the server's words."""
        try:
            level = self.compatibility(subject)
        except CodecError:
            level = "the subject's level"
        try:
            history = [self.version(subject, v) for v in self.versions(subject)]
            same_kind = [r for r in history if r.schema.kind == schema.kind
                         and (schema.kind == "PROTOBUF" or not r.schema.references)]
            check_compatibility(
                subject,
                level,
                schema.kind,
                schema.parsed(),
                [r.schema.parsed() for r in same_kind],
                versions=[r.version for r in same_kind],
            )
        except IncompatibleSchema as local:
            return IncompatibleSchema(subject, local.rule, local.field, f"{local.problem} (registry: {server_message})")
        except CodecError:
            pass
        return IncompatibleSchema(subject, level, "<schema>", f"refused by the registry: {server_message}")

    def by_id(self, schema_id: int) -> Schema:
        """The schema with this global id."""
        found = self._call(
            f"schema id {schema_id}", lambda: self._client.get_schema(schema_id), unknown=f"id {schema_id}"
        )
        return self._from_client(found)

    def latest(self, subject: str) -> RegisteredSchema:
        """The newest version of `subject` (never from a stale cache)."""
        found = self._call(
            f"latest version of {subject!r}",
            lambda: self._client.get_version(subject, "latest"),
            unknown=f"subject {subject!r}",
        )
        return self._registered(found, subject)

    def version(self, subject: str, version: int) -> RegisteredSchema:
        """One version of `subject`."""
        found = self._call(
            f"version {version} of {subject!r}",
            lambda: self._client.get_version(subject, version),
            unknown=f"version {version} of subject {subject!r}",
        )
        return self._registered(found, subject)

    def versions(self, subject: str) -> list[int]:
        """The versions of `subject`, ascending."""
        found = self._call(
            f"versions of {subject!r}", lambda: self._client.get_versions(subject), unknown=f"subject {subject!r}"
        )
        if not found:
            raise UnknownSchema(f"subject {subject!r}")
        return sorted(int(v) for v in found)

    def subjects(self) -> list[str]:
        """Every subject the server knows, sorted."""
        return sorted(self._call("list subjects", self._client.get_subjects))

    def by_fingerprint(self, fingerprint: int) -> RegisteredSchema:
        """The Avro schema with this CRC-64-AVRO fingerprint: from schemas seen, else by scanning every subject."""
        with self._lock:
            known = self._fingerprints.get(fingerprint)
        stale = self._scanned_at is None or time.monotonic() - self._scanned_at > _RESCAN_AFTER_S
        if known is None and stale:
            for subject in self.subjects():
                for version in self.versions(subject):
                    self.version(subject, version)
            self._scanned_at = time.monotonic()
            with self._lock:
                known = self._fingerprints.get(fingerprint)
        if known is None:
            raise UnknownSchema(fingerprint_text(fingerprint))
        return known

    def set_compatibility(self, subject: str | None, level: str) -> None:
        """Set the level of `subject`, or the server's global level when None."""
        text = normalize_level(level, backend=_BACKEND)
        self._call(
            f"set compatibility of {subject or 'the registry'}",
            lambda: self._client.set_compatibility(subject_name=subject, level=text),
        )

    def compatibility(self, subject: str | None = None) -> str:
        """The level of `subject` (its own, else the global one)."""
        if subject is not None:
            try:
                return normalize_level(
                    self._call(f"compatibility of {subject!r}", lambda: self._client.get_compatibility(subject)),
                    backend=_BACKEND,
                )
            except UnknownSchema:  # Confluent answers 404 when the subject has no level of its own
                pass
        level = self._call("global compatibility", lambda: self._client.get_compatibility())
        return normalize_level(level, backend=_BACKEND)

