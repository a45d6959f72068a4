"""Typed codec errors: each names what was wrong (field, schema id, stream, rule) and never crashes a caller."""

from __future__ import annotations

from swarm_bridge.errors import SwarmBridgeError

__all__ = [
    "CodecError",
    "FramingError",
    "IncompatibleSchema",
    "RecordError",
    "RecordTypeError",
    "RegistryError",
    "SchemaMismatch",
    "SchemaParseError",
    "UnknownRosType",
    "UnknownSchema",
]


class CodecError(SwarmBridgeError, ValueError):
    """Base of every codec error: a payload or schema that cannot be used, with the reason."""


class RecordError(CodecError):
    """A payload that is not a valid record; says which field is wrong."""

    def __init__(self, problem: str, *, field: str | None = None) -> None:
        self.problem = problem
        self.field = field
        super().__init__(f"{field}: {problem}" if field else problem)


class RecordTypeError(RecordError, TypeError):
    """A value a record format cannot write (e.g. a set in a JSON body); a TypeError too, as json.dumps expects."""


class FramingError(CodecError):
    """Bytes whose wire framing is wrong: bad magic byte, too short, oversized."""

    def __init__(self, framing: str, problem: str) -> None:
        self.framing = framing
        self.problem = problem
        super().__init__(f"{framing}: {problem}")


class UnknownSchema(CodecError):
    """A schema id, fingerprint, subject or version that the registry does not know."""

    def __init__(self, what: str, fix: str = "register the schema first (swarm-bridge schema register)") -> None:
        self.what = what
        super().__init__(f"unknown schema {what}. Fix: {fix}")


class SchemaMismatch(CodecError):
    """A record of one schema arriving where another was expected."""

    def __init__(self, stream: str, expected: str, got: str) -> None:
        self.stream, self.expected, self.got = stream, expected, got
        super().__init__(f"stream {stream}: expected schema {expected}, got {got}")


class IncompatibleSchema(CodecError):
    """A schema refused at registration: which subject, which rule, which field, and why."""

    def __init__(self, subject: str, rule: str, field: str, problem: str) -> None:
        self.subject, self.rule, self.field, self.problem = subject, rule, field, problem
        super().__init__(f"subject {subject}: incompatible under {rule}: field '{field}': {problem}")


class SchemaParseError(CodecError):
    """A schema file that does not parse; names the file and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        self.source, self.problem = source, problem
        super().__init__(f"{source}: {problem}")


class UnknownRosType(CodecError):
    """A ROS type name with no known definition; suggests the near miss."""

    def __init__(self, ros_type: str, suggestion: str | None = None) -> None:
        self.ros_type = ros_type
        hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
        package = ros_type.split("/", 1)[0]
        super().__init__(
            f"ROS type '{ros_type}' has no definition{hint}. Fix: check the spelling (package/msg/Name) or install "
            f"its interfaces package (pip: ros-{package.replace('_', '-')}, or build it in your ROS workspace and "
            "source its install/setup.bash)"
        )


class RegistryError(CodecError):
    """A schema registry that cannot answer: unreachable, refusing, or asked something invalid; says how to fix."""

    def __init__(self, backend: str, problem: str, fix: str | None = None) -> None:
        self.backend, self.problem, self.fix = backend, problem, fix
        super().__init__(f"schema registry ({backend}): {problem}" + (f". Fix: {fix}" if fix else ""))


def avro_json(schema: object) -> object:
    """An Avro schema given as JSON text -> its parsed JSON; parsed schemas and plain names pass through.
    SchemaParseError when the text is not JSON."""
    import json

    if isinstance(schema, str) and schema.lstrip()[:1] in ("{", "[", '"'):
        try:
            return json.loads(schema)
        except json.JSONDecodeError as exc:
            raise SchemaParseError("avro schema", f"not JSON: {exc}") from None
    return schema
