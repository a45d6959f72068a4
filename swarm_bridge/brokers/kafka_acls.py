"""Kafka ACLs as plain values (`KafkaGrant`), and granting them to a principal with the admin client.

A grant allows one operation on one resource (a topic or group, by literal name or name prefix); the
cluster's StandardAuthorizer refuses everything no grant allows. Services derive their grants from their
config (see `swarm_bridge.gateway.grants`); an admin applies them with `grant` (the admin client: transport/acls.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

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


def grant(bootstrap: str, *, admin_settings: Mapping[str, str], principal: str, grants: Iterable[KafkaGrant],
          timeout_s: float = 30.0) -> int:
    """Create an ALLOW ACL for each grant to `principal` (e.g. `User:gateway`) as an admin; returns how many."""
    from swarm_bridge.transport.acls import allow
    from swarm_bridge.transport.link import LinkError

    try:
        return allow(bootstrap, admin_settings=admin_settings, principal=principal, timeout_s=timeout_s,
                     grants=[(g.resource, g.name, g.pattern, g.operation) for g in sorted(set(grants))])
    except LinkError as exc:
        raise BrokerError("kafka", exc.problem, exc.fix) from None
