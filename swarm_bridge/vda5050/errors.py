"""VDA 5050 errors: a message that is not a valid VDA 5050 message (MessageInvalid), a topic or name that cannot be
a topic level (TopicInvalid), the official JSON Schemas not found (SchemasMissing), a message that does not fit the
Avro record derived from its schema (MessageUnfit), a JSON Schema no Avro schema can be derived from
(DerivationError). All are SwarmBridgeErrors."""

from __future__ import annotations

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["UNFIT_REASONS", "DerivationError", "MessageInvalid", "MessageUnfit", "SchemasMissing", "TopicInvalid",
           "Vda5050Error"]


class Vda5050Error(SwarmBridgeError):
    """Something VDA 5050 cannot carry: what, where, and how to fix it."""


class MessageInvalid(Vda5050Error, ValueError):
    """A VDA 5050 message that does not parse or breaks its schema: the topic, the field path and why."""

    def __init__(self, topic: str, field: str, problem: str) -> None:
        self.topic, self.field, self.problem = topic, field, problem
        super().__init__(f"vda5050 {topic}: {field or '<message>'}: {problem}")


class TopicInvalid(Vda5050Error, ValueError):
    """A topic level (interfaceName, manufacturer, serialNumber, ...) that the spec's section 6.3 does not allow."""


class SchemasMissing(Vda5050Error, FileNotFoundError):
    """The folder of the official JSON Schemas lacks a schema: which file, and where to get it."""


class MessageUnfit(MessageInvalid):
    """A VDA 5050 message that does not fit its Avro record (docs/vda5050.md#avro-on-kafka): `reason` is one of
    UNFIT_REASONS, what a gateway counts it by."""

    def __init__(self, topic: str, field: str, reason: str, problem: str) -> None:
        self.reason = reason
        super().__init__(topic, field, problem)


UNFIT_REASONS = ("missing_field", "wrong_type", "out_of_range")
"""Why a message does not fit its Avro record: a required property missing, a value of another type (an explicit
null included), an integer beyond 64 bits. (Properties the schema does not name fit: they travel in `_extra`.)"""


class DerivationError(Vda5050Error, ValueError):
    """A part of a JSON Schema that has no Avro form: the schema file, the JSON path and what is there."""

    def __init__(self, source: str, path: str, problem: str) -> None:
        self.source, self.path, self.problem = source, path, problem
        super().__init__(f"{source}: {path or '<schema>'}: {problem}")
