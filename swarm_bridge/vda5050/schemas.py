"""The official VDA 5050 JSON Schemas (draft 2020-12), read from a folder given by the caller (the project ships no
copy): every message built or accepted can be checked against them with `jsonschema`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from swarm_bridge.vda5050.errors import MessageInvalid, SchemasMissing
from swarm_bridge.vda5050.topics import TOPICS

__all__ = ["OfficialSchemas"]


class OfficialSchemas:
    """Validators of the six official schemas in `folder` (`order.schema`, `state.schema`, ...)."""

    def __init__(self, folder: str | Path) -> None:
        from jsonschema import Draft202012Validator  # deferred: only VDA 5050 mode with schemas needs it

        self.folder = Path(folder).expanduser()
        self._validators: dict[str, Any] = {}
        for spec in TOPICS.values():
            path = self.folder / spec.schema_file
            if not path.is_file():
                raise SchemasMissing(f"{path}: no such file; point vda5050.schemas at the json_schemas folder of the "
                                     "VDA 5050 2.1 release (github.com/VDA5050/VDA5050, json_schemas/)")
            schema = json.loads(path.read_text(encoding="utf-8"))
            self._validators[spec.name] = Draft202012Validator(schema,
                                                               format_checker=Draft202012Validator.FORMAT_CHECKER)

    def problems(self, topic: str, doc: Any) -> list[str]:
        """Every violation of `topic`'s schema in `doc`, each as `path: message` (empty when valid)."""
        validator = self._validators.get(topic)
        if validator is None:
            return [f"no schema for topic {topic!r}; VDA 5050 topics: {', '.join(TOPICS)}"]
        return [f"{'.'.join(str(p) for p in error.absolute_path) or '<message>'}: {error.message}"
                for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]

    def check(self, topic: str, doc: Any) -> None:
        """MessageInvalid naming the first violation (and how many there are) when `doc` breaks the schema."""
        problems = self.problems(topic, doc)
        if problems:
            field, _, problem = problems[0].partition(": ")
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise MessageInvalid(topic, field, f"breaks {topic}.schema: {problem}{more}")
