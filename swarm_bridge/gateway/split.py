"""How one gateway divides a hub's robots with the others, pure: the MQTT filters it takes and the ones it gives up.

Three ways, one table: every robot (a plain subscription, one gateway per hub), a shared subscription
(`mqtt.share_group`: the broker deals messages out), or a split (`split.groups`: each gateway subscribes per robot
id of its own group, plain filters no other gateway holds, which Mosquitto keeps over its restart). A persistent
session keeps what an earlier run subscribed, so a split gateway gives up the filters another gateway now takes
(the other groups' robots and the every-robot `+` filters), else Kafka would get those records twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from swarm_bridge.config.gateway import GatewayConfig
from swarm_bridge.gateway.rules import UpRules

__all__ = ["DIVISIONS", "Division", "division"]


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
