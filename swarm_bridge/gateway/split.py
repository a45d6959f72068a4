"""How one gateway divides a hub's robots with the others, pure: the MQTT filters it takes and the ones it gives up.

Three ways, one table: every robot (a plain subscription, one gateway per hub), a shared subscription
(`mqtt.share_group`: the broker deals messages out), or a split (`split.groups`: each gateway subscribes per robot
id of its own group, plain filters no other gateway holds, which Mosquitto keeps over its restart). A persistent
session keeps what an earlier run subscribed, so a split gateway gives up the filters another gateway now takes
(the other groups' robots and the every-robot `+` filters), else Kafka would get those records twice. A robot
that no group lists is named when its presence shows it online (`UnlistedRobots`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from swarm_bridge.config.gateway import GatewayConfig
from swarm_bridge.gateway.rules import UpRules
from swarm_bridge.routing.naming import presence_topic
from swarm_bridge.routing.presence import parse_presence

__all__ = ["DIVISIONS", "Division", "UnlistedRobots", "division"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Division:
    """What the up client subscribes (`take`), what it unsubscribes at start (`give_up`), said in one line."""

    kind: str
    take: tuple[str, ...]
    give_up: tuple[str, ...]
    summary: str


def _every_robot(config: GatewayConfig, rules: UpRules) -> Division:
    return Division("every robot", tuple(rules.subscriptions()), (), "every robot of the fleet (plain subscription)")


def _shared(config: GatewayConfig, rules: UpRules) -> Division:
    group = config.mqtt.share_group
    return Division("shared", tuple(f"$share/{group}/{f}" for f in rules.subscriptions()), (),
                    f"a share of every robot's messages (shared subscription group {group})")


def _split(config: GatewayConfig, rules: UpRules) -> Division:
    split = config.split
    assert split is not None  # chosen by division() only with a split
    own, others = split.robots_of(config.gateway_id), split.robots_not_of(config.gateway_id)
    take = rules.subscriptions(own)
    give_up = [f for f in (*rules.subscriptions(others), *rules.subscriptions()) if f not in take]
    return Division("split", tuple(take), tuple(give_up),
                    f"{len(own)} robots of {len(own) + len(others)} (split group {config.gateway_id} of "
                    f"{len(split.groups)}; plain subscriptions per robot)")


DIVISIONS: dict[str, Callable[[GatewayConfig, UpRules], Division]] = {
    "every robot": _every_robot,
    "shared": _shared,
    "split": _split,
}


def division(config: GatewayConfig, rules: UpRules) -> Division:
    """The division the config asks for (the config refuses share_group together with split)."""
    kind = "split" if config.split is not None else "shared" if config.mqtt.share_group else "every robot"
    return DIVISIONS[kind](config, rules)


class UnlistedRobots:
    """A split that leaves robots out, seen at run time: every robot whose presence says it is online on the hub
    and that no group lists is named once, as a warning (its records reach no gateway)."""

    def __init__(self, config: GatewayConfig) -> None:
        split = config.split
        self._listed = set() if split is None else {r for robots in split.groups.values() for r in robots}
        levels = presence_topic(config.mqtt.topic_prefix, config.fleet, "robot.id").split("/")
        self._level = levels.index("robot.id")  # no prefix or fleet has a dot
        self.filter = "/".join([*levels[:self._level], "+", *levels[self._level + 1:]])
        self.named: set[str] = set()

    def seen(self, topic: str, payload: bytes) -> str | None:
        """The robot of a presence message if it is online, unlisted and not named before (logged), else None."""
        levels = topic.split("/")
        if len(levels) <= self._level:
            return None
        robot = levels[self._level]
        if robot in self._listed or robot in self.named:
            return None
        try:
            if parse_presence(payload).state != "online":
                return None
        except (ValueError, UnicodeDecodeError):
            return None
        self.named.add(robot)
        log.warning("split: robot %s is online on this hub but in no group of split.groups: its records reach no "
                    "gateway (the broker refuses them, 0x10); add it to one group in every gateway's config", robot)
        return robot
