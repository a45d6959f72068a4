"""The Kafka ACLs a gateway needs, derived from its config, pure: write its up topics (and its DLQ and health
topics), read its commands.

Up rules' topic templates become topic prefixes (`fleet.{channel}.{stream}` with channel in telemetry, event,
state -> `fleet.telemetry.*`, `fleet.event.*`, `fleet.state.*`), so a gateway can create and write the topics
its rules may produce and nothing else. It reads only the down rules' topics, in its command group. Reading
its own up topics back is granted only when it rebuilds its dedup windows from them at start.
"""

from __future__ import annotations

import itertools
import string

from swarm_bridge.brokers.kafka_acls import KafkaGrant, Pattern
from swarm_bridge.config.gateway import GatewayConfig, UpRuleConfig
from swarm_bridge.gateway.errors import GatewaySettingError

__all__ = ["gateway_grants", "up_topic_names"]


def _names(rule: UpRuleConfig, fill: dict[str, str]) -> list[tuple[str, bool]]:
    """(name, prefixed) per topic family of one up rule: literal text up to the first free capture."""
    used = [name for _t, name, _s, _c in string.Formatter().parse(rule.kafka_topic) if name is not None]
    fixed = [name for name in rule.where if name in used]
    out = []
    for values in itertools.product(*(sorted(rule.where[name]) for name in fixed)):
        known = {**fill, **dict(zip(fixed, values, strict=True))}
        text = ""
        prefixed = False
        for literal, name, _spec, _conv in string.Formatter().parse(rule.kafka_topic):
            text += literal
            if name is None:
                continue
            if name not in known:
                prefixed = True
                break
            text += known[name]
        if prefixed and not text:
            raise GatewaySettingError(f"up rule kafka_topic {rule.kafka_topic!r}",
                                      "starts with a capture: no topic prefix to grant",
                                      "start it with fixed text (e.g. fleet.{channel}...)")
        out.append((text, prefixed))
    return out


def up_topic_names(config: GatewayConfig) -> list[tuple[str, bool]]:
    """Every (topic name or prefix, prefixed) the up rules can produce to, in order, without repeats."""
    fill = {"prefix": config.mqtt.topic_prefix, "fleet": config.fleet}
    seen: dict[tuple[str, bool], None] = {}
    for rule in config.up:
        for name in _names(rule, fill):
            seen.setdefault(name, None)
    return list(seen)


def gateway_grants(config: GatewayConfig) -> list[KafkaGrant]:
    """The least the gateway of `config` needs: create+write up topics, the DLQ and its health topic, read the
    command topics in its command group; read the up topics too when `dedup.rebuild_records` > 0."""
    grants: list[KafkaGrant] = []
    rebuild = config.dedup.rebuild_records > 0
    for name, prefixed in up_topic_names(config):
        pattern: Pattern = "prefixed" if prefixed else "literal"
        grants += [KafkaGrant("topic", name, pattern, "write"), KafkaGrant("topic", name, pattern, "create")]
        if rebuild:
            grants.append(KafkaGrant("topic", name, pattern, "read"))
    for own in (config.kafka.dlq_topic, *([config.health.topic] if config.health is not None else [])):
        grants += [KafkaGrant("topic", own, "literal", "write"), KafkaGrant("topic", own, "literal", "create")]
    grants += [KafkaGrant("topic", rule.kafka_topic, "literal", "read") for rule in config.down]
    if config.down:
        grants.append(KafkaGrant("group", config.kafka.command_group, "literal", "read"))
    return sorted(set(grants))
