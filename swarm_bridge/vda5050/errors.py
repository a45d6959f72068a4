"""VDA 5050 errors: a message that is not a valid VDA 5050 message (MessageInvalid), a topic or name that cannot be
a topic level (TopicInvalid), the official JSON Schemas not found (SchemasMissing). All are SwarmBridgeErrors."""

from __future__ import annotations

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["MessageInvalid", "SchemasMissing", "TopicInvalid", "Vda5050Error"]


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
