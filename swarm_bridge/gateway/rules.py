"""Topic mapping rules, pure: an MQTT topic -> (Kafka topic, key), and a Kafka command -> its MQTT topic.

A rule's MQTT pattern names each variable level `{name}`; `{prefix}` and `{fleet}` are filled from the
config, the others capture (`{robot_id}` always). A rule's `where` limits a capture to listed values,
each becoming its own subscription. The first rule that matches a topic wins.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from swarm_bridge.config.gateway import GatewayConfig, UpRuleConfig
from swarm_bridge.routing.errors import RouteError
from swarm_bridge.routing.naming import is_topic_level
from swarm_bridge.vda5050.topics import TOPICS

__all__ = ["DownRoute", "TopicPattern", "UpRoute", "UpRules", "down_routes", "up_rules"]

_MAX_CACHED_TOPICS = 200_000  # resolved topics kept (one per robot and stream); the cache restarts beyond


@dataclass(frozen=True)
class TopicPattern:
    """An MQTT topic pattern: per level, a literal or the name it captures, and allowed values per capture."""

    levels: tuple[str, ...]
    captures: tuple[str | None, ...]
    allowed: tuple[tuple[str, frozenset[str]], ...] = ()

    @classmethod
    def parse(cls, pattern: str, fill: dict[str, str], where: dict[str, list[str]] | None = None) -> TopicPattern:
        """`swarm/{fleet}/{robot_id}/...` with `fill` = {"fleet": "demo", ...} -> a pattern capturing robot_id."""
        levels: list[str] = []
        captures: list[str | None] = []
        for level in pattern.split("/"):
            name = level[1:-1] if level.startswith("{") and level.endswith("}") else None
            if name is not None and name in fill:
                levels.append(fill[name])
                captures.append(None)
            else:
                levels.append(level)
                captures.append(name)
        allowed = tuple(sorted((k, frozenset(v)) for k, v in (where or {}).items()))
        return cls(tuple(levels), tuple(captures), allowed)

    def subscriptions(self, narrow: Mapping[str, Sequence[str]] | None = None) -> list[str]:
        """MQTT filters covering the pattern: `+` per capture, one filter per combination of allowed values
        (`narrow`: values of more captures, e.g. the robot ids of this gateway's split group)."""
        allowed: dict[str, Iterable[str]] = {**dict(self.allowed), **(narrow or {})}
        options = [sorted(allowed[name]) if name in allowed else ["+"] if name is not None else [level]
                   for level, name in zip(self.levels, self.captures, strict=True)]
        return ["/".join(combo) for combo in itertools.product(*options)]

    def match(self, topic: str) -> dict[str, str] | None:
        """The captures if `topic` matches (levels equal, captures non-empty and allowed), else None."""
        parts = topic.split("/")
        if len(parts) != len(self.levels):
            return None
        found: dict[str, str] = {}
        for part, level, name in zip(parts, self.levels, self.captures, strict=True):
            if name is None:
                if part != level:
                    return None
            elif not part:
                return None
            else:
                found[name] = part
        for name, values in self.allowed:
            if found[name] not in values:
                return None
        return found


@dataclass(frozen=True)
class UpRoute:
    """Where one MQTT topic's records go: Kafka topic and key; robot and stream the records must carry."""

    mqtt_topic: str
    kafka_topic: str
    key: bytes
    robot_id: str
    stream: str | None
    payload: str  # "record" | "raw"
    json_format: str  # "passthrough" | "avro"
    avro_format: str = "avro"  # "avro" | "protobuf": what Avro records become on Kafka
    protobuf_format: str = "avro"  # "avro" | "protobuf": what Protobuf records become on Kafka
    vda5050_format: str = "avro"  # "avro" | "json": what VDA 5050 messages become on Kafka

    def __str__(self) -> str:
        return f"route mqtt:{self.mqtt_topic} -> kafka:{self.kafka_topic}"


@dataclass(frozen=True)
class _UpRule:
    pattern: TopicPattern
    config: UpRuleConfig
    fill: tuple[tuple[str, str], ...]

    def route(self, topic: str) -> UpRoute | None:
        captures = self.pattern.match(topic)
        if captures is None:
            return None
        names = {**dict(self.fill), **captures}
        return UpRoute(topic, self.config.kafka_topic.format(**names), self.config.key.format(**names).encode(),
                       captures["robot_id"], captures.get("stream"), self.config.payload, self.config.json_format,
                       self.config.avro_format, self.config.protobuf_format, self.config.vda5050_format)


class UpRules:
    """The up rules in order; `route(topic)` resolves a topic once and remembers it."""

    def __init__(self, rules: Sequence[_UpRule]) -> None:
        self._rules = tuple(rules)
        self._cache: dict[str, UpRoute | None] = {}

    def subscriptions(self, robots: Sequence[str] | None = None) -> list[str]:
        """Every MQTT filter of every rule, without repeats, in rule order; with `robots`, one per robot id in
        place of `+` (a split group: plain filters no other gateway of the hub holds)."""
        narrow = None if robots is None else {"robot_id": robots}
        return list(dict.fromkeys(f for rule in self._rules for f in rule.pattern.subscriptions(narrow)))

    def kafka_topic_patterns(self) -> list[TopicPattern]:
        """Each record rule's Kafka topic as a pattern over dot-separated parts (to find the topics it writes whose
        records carry a head; raw and VDA 5050 records carry none the dedup's tail reads)."""
        return [TopicPattern.parse(rule.config.kafka_topic.replace(".", "/"), dict(rule.fill))
                for rule in self._rules if rule.config.payload == "record"]

    def route(self, topic: str) -> UpRoute | None:
        """The route of `topic` by the first matching rule, None when no rule takes it (unroutable)."""
        try:
            return self._cache[topic]
        except KeyError:
            pass
        found = next((r for rule in self._rules if (r := rule.route(topic)) is not None), None)
        if len(self._cache) >= _MAX_CACHED_TOPICS:
            self._cache.clear()
        self._cache[topic] = found
        return found


def _fill(config: GatewayConfig) -> dict[str, str]:
    return {"prefix": config.mqtt.topic_prefix, "fleet": config.fleet}


def up_rules(config: GatewayConfig) -> UpRules:
    """The config's up rules, compiled."""
    fill = _fill(config)
    return UpRules([_UpRule(TopicPattern.parse(rule.mqtt, fill, rule.where), rule, tuple(sorted(fill.items())))
                    for rule in config.up])


@dataclass(frozen=True)
class DownRoute:
    """One Kafka command topic and the MQTT topic template of its robots."""

    kafka_topic: str
    mqtt_template: str
    qos: int
    payload: str = "command"  # "command" | "vda5050"

    def mqtt_topic(self, robot_id: str) -> str:
        """The robot's MQTT command topic; RouteError (a ValueError) for an id that is not one MQTT topic level
        (two for a VDA 5050 vehicle: manufacturer/serialNumber)."""
        levels, what = _DOWN_KEYS[self.payload]
        parts = robot_id.split("/")
        if len(parts) != levels or not all(is_topic_level(part) for part in parts):
            raise RouteError(f"kafka:{self.kafka_topic}: record key {robot_id!r} is not {what}",
                             f"key each record by {what}")
        return self.mqtt_template.format(robot_id=robot_id)

    @property
    def vda5050_topic(self) -> str | None:
        """The VDA 5050 topic a vda5050 rule publishes on (its MQTT topic's last level, when it is one)."""
        last = self.mqtt_template.rsplit("/", 1)[-1]
        return last if self.payload == "vda5050" and last in TOPICS else None

    def __str__(self) -> str:
        return f"route kafka:{self.kafka_topic} -> mqtt:{self.mqtt_template.format(robot_id='<key>')}"


# A down rule's `payload` -> (MQTT topic levels its record key fills, what the key must be).
_DOWN_KEYS: dict[str, tuple[int, str]] = {
    "command": (1, "a robot id (one MQTT topic level: not empty, no / + # NUL)"),
    "vda5050": (2, "a VDA 5050 vehicle: manufacturer/serialNumber"),
}


def down_routes(config: GatewayConfig) -> list[DownRoute]:
    """The config's down rules, with prefix and fleet filled in."""
    fill = _fill(config)
    return [DownRoute(rule.kafka_topic, rule.mqtt.replace("{prefix}", fill["prefix"]).replace(
        "{fleet}", fill["fleet"]), rule.qos, rule.payload) for rule in config.down]

