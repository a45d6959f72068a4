"""Kafka ACLs created with the admin client: one ALLOW binding per (resource, name, pattern, operation)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from swarm_bridge.transport.link import LinkError

__all__ = ["allow"]


def allow(bootstrap: str, *, admin_settings: Mapping[str, str], principal: str,
          grants: Iterable[tuple[str, str, str, str]], timeout_s: float = 30.0) -> int:
    """Create an ALLOW ACL to `principal` for each (resource, name, pattern, operation), in the order given, as
    an admin; returns how many. LinkError naming the ACL when the cluster refuses one."""
    admin = AdminClient({**admin_settings, "bootstrap.servers": bootstrap})
    bindings = [AclBinding(ResourceType[resource.upper()], name, ResourcePatternType[pattern.upper()], principal,
                           "*", AclOperation[operation.upper()], AclPermissionType.ALLOW)
                for resource, name, pattern, operation in grants]
    for binding, future in admin.create_acls(bindings, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            raise LinkError(f"kafka://{bootstrap}", f"cannot create ACL {binding} ({exc})",
                            "log in as a super user of a cluster with an authorizer") from None
    return len(bindings)
