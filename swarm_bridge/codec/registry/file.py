"""The embedded schema registry: `FileRegistry`, a directory shared by processes, no server (the default backend)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from swarm_bridge.codec.errors import IncompatibleSchema, RegistryError, SchemaParseError, UnknownSchema
from swarm_bridge.codec.framing import avro_fingerprint
from swarm_bridge.codec.registry.compatibility import DEFAULT_COMPATIBILITY, check_compatibility, normalize_level
from swarm_bridge.codec.registry.schema import RegisteredSchema, Schema, fingerprint_text
from swarm_bridge.spool.files import replace_file

__all__ = ["FileRegistry"]

_BACKEND = "file"


def _check_subject(subject: Any) -> str:
    if not isinstance(subject, str) or not subject or "\x00" in subject or len(subject) > 255:
        raise RegistryError(_BACKEND, f"subject must be a non-empty string of at most 255 characters (got {subject!r})")
    return subject


def _subject_dir_name(subject: str) -> str:
    """A file name for any subject: percent-encoded; '.' escaped too, so '.' and '..' cannot occur."""
    return quote(subject, safe="").replace(".", "%2E")


class FileRegistry:
    """The embedded registry: a directory, no server; safe for several processes at once.

    Layout under `root` (one JSON file per schema id and per subject version, written atomically):
      config.json                      {"compatibility": LEVEL}  the default (else `default_compatibility`)
      schemas/<id>.json                {"id", "schemaType", "schema", "references", "subject", "version"}
      subjects/<subject>/v<N>.json     {"subject", "version", "id", "schemaType", "schema", "references"}
      subjects/<subject>/config.json   {"compatibility": LEVEL}
      .lock                            taken (flock) by every write
    `<subject>` is percent-encoded. Ids start at 1, are global, never reused or changed; an identical
    schema under another subject gets the same id (as in Confluent's registry). Nothing is deleted.
    """

    backend = _BACKEND

    def __init__(self, root: Path | str, *, default_compatibility: str = DEFAULT_COMPATIBILITY) -> None:
        self.root = Path(root).expanduser().resolve()
        self.default_compatibility = normalize_level(default_compatibility, backend=_BACKEND)
        self._cache: dict[int, tuple[Schema, dict[str, Any]]] = {}
        self._by_identity: dict[str, int] = {}
        self._fingerprints: dict[int, int] = {}
        self._parsed: dict[str, Any] = {}  # identity -> parsed schema (never mutated)
        self._thread_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileRegistry({str(self.root)!r})"

    def close(self) -> None:
        """Nothing held open between calls (each write takes and releases the lock file)."""

    # paths and files

    @property
    def _schemas_dir(self) -> Path:
        return self.root / "schemas"

    def _subject_dir(self, subject: str) -> Path:
        return self.root / "subjects" / _subject_dir_name(subject)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = (self.root / ".lock").open("a")
        except OSError as exc:
            raise RegistryError(
                _BACKEND, f"cannot write the registry in {self.root}: {exc}", "check the path and its permissions"
            ) from None
        with self._thread_lock, handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _write_json(path: Path, doc: Mapping[str, Any]) -> None:
        """Write durably and atomically (spool.files.replace_file): the old or the new file after a crash."""
        replace_file(path, lambda out: out.write(json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"))

    def _read_json(self, path: Path) -> dict[str, Any] | None:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(_BACKEND, f"{path}: unreadable: {exc}", "restore or remove the file") from None
        if not isinstance(doc, dict):
            raise RegistryError(_BACKEND, f"{path}: not a JSON object", "restore or remove the file")
        return doc

    def _refresh_ids(self) -> None:
        """Load schema files not seen yet (they never change once written)."""
        if not self._schemas_dir.is_dir():
            return
        for path in self._schemas_dir.glob("*.json"):
            if not path.stem.isdigit() or int(path.stem) in self._cache:
                continue
            doc = self._read_json(path)
            if doc is None:
                continue
            schema = Schema.from_json(doc)
            self._cache[int(path.stem)] = (schema, doc)
            self._by_identity.setdefault(schema.identity(), int(path.stem))

    def _version_files(self, subject: str) -> dict[int, Path]:
        folder = self._subject_dir(subject)
        if not folder.is_dir():
            return {}
        found = {}
        for path in folder.glob("v*.json"):
            number = path.stem[1:]
            if number.isdigit():
                found[int(number)] = path
        return dict(sorted(found.items()))

    def _registered(self, subject: str, version: int, path: Path) -> RegisteredSchema:
        doc = self._read_json(path)
        if doc is None:
            raise UnknownSchema(f"version {version} of subject {subject!r}")
        return RegisteredSchema(int(doc["id"]), int(doc["version"]), str(doc["subject"]), Schema.from_json(doc))

    # parsing with references

    def _resolved(self, schema: Schema) -> Any:
        """The parsed schema, Avro references inlined so it stands alone (for checks and fingerprints)."""
        identity = schema.identity()
        if identity not in self._parsed:
            self._parsed[identity] = self._resolve(schema)
        return self._parsed[identity]

    def _resolve(self, schema: Schema) -> Any:
        if not schema.references:
            return schema.parsed()
        if schema.kind == "PROTOBUF":
            # each referenced file must be registered; the rules compare this file's messages, which name the
            # imported ones by full name
            for ref in schema.references:
                self.version(ref.subject, ref.version)
            return schema.parsed()
        named: dict[str, Any] = {}
        for ref in schema.references:
            named[ref.name] = self._resolved(self.version(ref.subject, ref.version).schema)
        try:
            value = json.loads(schema.text)
        except json.JSONDecodeError as exc:
            raise SchemaParseError("avro schema", f"not JSON: {exc}") from None
        inlined = _inline_avro(value, named)
        avro_fingerprint(inlined)  # parses the whole with fastavro: SchemaParseError if invalid
        return inlined

    # the interface

    def register(self, subject: str, schema: Schema) -> RegisteredSchema:
        """Register `schema` under `subject` (see SchemaRegistry.register); atomic and locked."""
        _check_subject(subject)
        parsed = self._parsed_for(subject, schema)
        with self._locked():
            existing = self._find_identical(subject, schema)
            if existing is not None:
                return existing
            self._check_against_history(subject, schema, parsed)
            self._refresh_ids()
            schema_id = self._by_identity.get(schema.identity())
            versions = self._version_files(subject)
            version = max(versions, default=0) + 1
            if schema_id is None:
                schema_id = max(self._cache, default=0) + 1
                doc = {"id": schema_id, **schema.to_json(), "subject": subject, "version": version}
                self._write_json(self._schemas_dir / f"{schema_id}.json", doc)
                self._cache[schema_id] = (schema, doc)
                self._by_identity[schema.identity()] = schema_id
            entry = {"subject": subject, "version": version, "id": schema_id, **schema.to_json()}
            self._write_json(self._subject_dir(subject) / f"v{version}.json", entry)
            return RegisteredSchema(schema_id, version, subject, schema)

    def check(self, subject: str, schema: Schema) -> None:
        """Raise IncompatibleSchema (or SchemaParseError) if `register` would refuse `schema`; writes nothing."""
        _check_subject(subject)
        parsed = self._parsed_for(subject, schema)
        if self._find_identical(subject, schema) is None:
            self._check_against_history(subject, schema, parsed)

    def _parsed_for(self, subject: str, schema: Schema) -> Any:
        if not isinstance(schema, Schema):
            raise RegistryError(
                _BACKEND, f"expected a Schema, got {type(schema).__name__}", "wrap it: Schema.avro(...)"
            )
        try:
            return self._resolved(schema)
        except SchemaParseError as exc:
            raise SchemaParseError(f"subject {subject}", exc.problem) from None

    def _find_identical(self, subject: str, schema: Schema) -> RegisteredSchema | None:
        identity = schema.identity()
        for version, path in self._version_files(subject).items():
            registered = self._registered(subject, version, path)
            if registered.schema.identity() == identity:
                return registered
        return None

    def _check_against_history(self, subject: str, schema: Schema, parsed: Any) -> None:
        history = [self._registered(subject, v, p) for v, p in self._version_files(subject).items()]
        if not history:
            return
        level = self.compatibility(subject)
        if level == "NONE":
            return
        latest = history[-1]
        if latest.schema.kind != schema.kind:
            raise IncompatibleSchema(
                subject,
                level,
                "<schema>",
                f"schema kind {schema.kind} differs from {latest.schema.kind} of version {latest.version}",
            )
        same_kind = [r for r in history if r.schema.kind == schema.kind]
        check_compatibility(
            subject,
            level,
            schema.kind,
            parsed,
            [self._resolved(r.schema) for r in same_kind],
            versions=[r.version for r in same_kind],
        )

    def by_id(self, schema_id: int) -> Schema:
        """The schema with this id; UnknownSchema otherwise."""
        if schema_id not in self._cache:
            self._refresh_ids()
        try:
            return self._cache[schema_id][0]
        except (KeyError, TypeError):
            raise UnknownSchema(f"id {schema_id!r}") from None

    def latest(self, subject: str) -> RegisteredSchema:
        """The newest version of `subject`."""
        versions = self._version_files(_check_subject(subject))
        if not versions:
            raise UnknownSchema(f"subject {subject!r}")
        version, path = next(reversed(versions.items()))
        return self._registered(subject, version, path)

    def version(self, subject: str, version: int) -> RegisteredSchema:
        """One version of `subject`."""
        path = self._version_files(_check_subject(subject)).get(version)
        if path is None:
            raise UnknownSchema(f"version {version} of subject {subject!r}")
        return self._registered(subject, version, path)

    def versions(self, subject: str) -> list[int]:
        """The versions of `subject`, ascending."""
        versions = list(self._version_files(_check_subject(subject)))
        if not versions:
            raise UnknownSchema(f"subject {subject!r}")
        return versions

    def subjects(self) -> list[str]:
        """Every subject with at least one version."""
        folder = self.root / "subjects"
        if not folder.is_dir():
            return []
        return sorted(unquote(p.name) for p in folder.iterdir() if p.is_dir() and any(p.glob("v*.json")))

    def by_fingerprint(self, fingerprint: int) -> RegisteredSchema:
        """The Avro schema with this fingerprint, with the subject and version it was first registered under."""
        self._refresh_ids()
        for schema_id in sorted(self._cache):
            schema, doc = self._cache[schema_id]
            if schema.kind != "AVRO":
                continue
            if schema_id not in self._fingerprints:
                self._fingerprints[schema_id] = avro_fingerprint(self._resolved(schema))
            if self._fingerprints[schema_id] == fingerprint:
                return RegisteredSchema(schema_id, int(doc["version"]), str(doc["subject"]), schema)
        raise UnknownSchema(fingerprint_text(fingerprint))

    def set_compatibility(self, subject: str | None, level: str) -> None:
        """Set the level of `subject`, or the default (config.json) when None."""
        text = normalize_level(level, backend=_BACKEND)
        folder = self.root if subject is None else self._subject_dir(_check_subject(subject))
        path = folder / "config.json"
        with self._locked():
            self._write_json(path, {"compatibility": text})

    def compatibility(self, subject: str | None = None) -> str:
        """The level of `subject` if set, else the default."""
        if subject is not None:
            doc = self._read_json(self._subject_dir(_check_subject(subject)) / "config.json")
            if doc is not None:
                return normalize_level(str(doc.get("compatibility")), backend=_BACKEND)
        doc = self._read_json(self.root / "config.json")
        if doc is not None:
            return normalize_level(str(doc.get("compatibility")), backend=_BACKEND)
        return self.default_compatibility


def _inline_avro(schema: Any, named: Mapping[str, Any]) -> Any:
    """Replace the first use of each referenced name by its definition, so the schema stands alone."""
    defined: set[str] = set()

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            if node in named and node not in defined:
                defined.add(node)
                return walk(named[node])
            return node
        if isinstance(node, list):
            return [walk(branch) for branch in node]
        if isinstance(node, dict):
            if "name" in node and node.get("type") in ("record", "error", "enum", "fixed"):
                defined.add(str(node["name"]))
            out = dict(node)
            if "fields" in out:
                out["fields"] = [{**f, "type": walk(f["type"])} for f in out["fields"]]
            for key in ("items", "values"):
                if key in out:
                    out[key] = walk(out[key])
            if out.get("type") not in ("record", "error", "enum", "fixed", "array", "map") and isinstance(
                out.get("type"), (dict, list, str)
            ):
                out["type"] = walk(out["type"])
            return out
        return node

    return walk(schema)
