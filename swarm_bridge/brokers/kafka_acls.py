"""Kafka ACLs as plain values (`KafkaGrant`), and granting them to a principal with the admin client.

A grant allows one operation on one resource (a topic or group, by literal name or name prefix); the
cluster's StandardAuthorizer refuses everything no grant allows. Services derive their grants from their
config (see `swarm_bridge.gateway.grants`); an admin applies them with `grant`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from swarm_bridge.brokers.errors import BrokerError

__all__ = ["KafkaGrant", "Operation", "Pattern", "Resource", "grant"]

Resource = Literal["topic", "group"]
Pattern = Literal["literal", "prefixed"]
Operation = Literal["read", "write", "create", "describe"]


@dataclass(frozen=True, order=True)
class KafkaGrant:
    """Allow `operation` on the `resource` named `name` (or every name starting with it, when prefixed)."""

    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation

    def __str__(self) -> str:
        star = "*" if self.pattern == "prefixed" else ""
        return f"{self.operation} {self.resource}:{self.name}{star}"


def _bindings(principal: str, grants: Iterable[KafkaGrant]) -> list[Any]:
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return [AclBinding(ResourceType[g.resource.upper()], g.name, ResourcePatternType[g.pattern.upper()],
                       principal, "*", AclOperation[g.operation.upper()], AclPermissionType.ALLOW)
            for g in sorted(set(grants))]


def grant(bootstrap: str, *, admin_settings: Mapping[str, str], principal: str, grants: Iterable[KafkaGrant],
          timeout_s: float = 30.0) -> int:
    """Create an ALLOW ACL for each grant to `principal` (e.g. `User:gateway`) as an admin; returns how many."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**admin_settings, "bootstrap.servers": bootstrap})
    bindings = _bindings(principal, grants)
    for binding, future in admin.create_acls(bindings, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            raise BrokerError("kafka", f"cannot create ACL {binding} ({exc})",
                              "log in as a super user of a cluster with an authorizer") from None
    return len(bindings)

