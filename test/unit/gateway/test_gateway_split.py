"""Several gateways per hub: a split gives each gateway plain per-robot filters no other holds, and gives up the
ones an earlier run of its session may hold; bad splits are named by key."""

from __future__ import annotations

from typing import Any

import pytest

from swarm_bridge.config import ConfigError, GatewayConfig, validate_config
from swarm_bridge.gateway.rules import up_rules
from swarm_bridge.gateway.split import DIVISIONS, UnlistedRobots, division
from swarm_bridge.routing.presence import presence_payload

GROUPS = {"hub_1": ["amr_1", "amr_2"], "hub_2": ["amr_3"], "hub_3": ["amr_4", "amr_5"]}


def _config(**extra: Any) -> GatewayConfig:
    return validate_config({"gateway_id": "hub_1", "fleet": "wh", **extra}, GatewayConfig, source="gw.yaml")


def _division(config: GatewayConfig) -> Any:
    return division(config, up_rules(config))


def test_without_a_split_the_gateway_takes_every_robot_plain_or_shared() -> None:
    plain = _division(_config())
    assert plain.kind == "every robot" and "swarm/wh/+/telemetry/+" in plain.take and plain.give_up == ()
    shared = _division(_config(mqtt={"share_group": "gws"}))
    assert shared.kind == "shared" and "$share/gws/swarm/wh/+/telemetry/+" in shared.take
    assert set(DIVISIONS) == {"every robot", "shared", "split"}


def test_split_groups_are_disjoint_and_cover_every_listed_robot() -> None:
    takes = {gw: set(_division(_config(gateway_id=gw, split={"groups": GROUPS})).take) for gw in GROUPS}
    assert takes["hub_2"] == {"swarm/wh/amr_3/event/+", "swarm/wh/amr_3/state/+", "swarm/wh/amr_3/telemetry/+",
                              "swarm/wh/amr_3/presence/status"}
    every = [f for take in takes.values() for f in take]
    assert len(every) == len(set(every)) == 5 * 4  # 5 robots, 4 filters each, no filter in two gateways
    assert not any("/+/" in f.split("wh", 1)[1][:3] for f in every)  # never the every-robot `+` level


def test_a_split_gateway_gives_up_the_other_groups_and_the_every_robot_filters() -> None:
    split = _division(_config(split={"groups": GROUPS}))
    assert split.kind == "split" and "2 robots of 5" in split.summary and "group hub_1 of 3" in split.summary
    assert "swarm/wh/+/telemetry/+" in split.give_up and "swarm/wh/amr_3/telemetry/+" in split.give_up
    assert not set(split.give_up) & set(split.take)
    # records of a robot moved away that still wait in this gateway's session are routed, not dead letters
    assert up_rules(_config(split={"groups": GROUPS})).route("swarm/wh/amr_3/telemetry/odometry") is not None


@pytest.mark.parametrize(("extra", "expected"), [
    ({"split": {"groups": {"hub_1": ["amr_1"], "hub_2": ["amr_2", "amr_1"]}}},
     "split: groups.hub_2: robot 'amr_1' is also in groups.hub_1; a robot goes through one gateway only"),
    ({"split": {"groups": {"hub_1": ["amr_1", "amr_1"]}}}, "robot 'amr_1' is twice"),
    ({"split": {"groups": {"hub_1": []}}}, "groups.hub_1: lists no robot"),
    ({"split": {"groups": {}}}, "split.groups"),
    ({"split": {"groups": {"hub_1": ["amr/1"]}}}, "'amr/1' is not a robot id"),
    ({"split": {"groups": {"hub 1": ["amr_1"]}}}, "'hub 1' is not a gateway_id"),
    ({"split": {"groups": {"hub_2": ["amr_1"]}}}, "no group for gateway_id 'hub_1' (groups: hub_2)"),
    ({"split": {"groups": GROUPS}, "mqtt": {"share_group": "gws"}}, "mqtt.share_group ('gws') and split"),
    ({"split": {"groups": GROUPS}, "up": [{"mqtt": "{prefix}/{fleet}/{robot_id}/t/{stream}", "kafka_topic": "t",
                                           "where": {"robot_id": ["amr_1"]}}]}, "up[0].where.robot_id and split"),
    ({"split": {"grups": GROUPS}}, "split: unknown key 'grups' (did you mean 'groups'?)"),
])
def test_bad_splits_are_named_by_key(extra: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        _config(**extra)
    message = str(info.value)
    assert message.startswith("gw.yaml: ") and expected in message, message


def test_a_robot_online_in_no_group_is_named_once() -> None:
    watch = UnlistedRobots(_config(split={"groups": GROUPS}))
    assert watch.filter == "swarm/wh/+/presence/status"
    online = presence_payload("amr_9", "online")
    assert watch.seen("swarm/wh/amr_9/presence/status", online) == "amr_9"
    assert watch.seen("swarm/wh/amr_9/presence/status", online) is None  # once
    assert watch.seen("swarm/wh/amr_1/presence/status", presence_payload("amr_1", "online")) is None  # listed
    assert watch.seen("swarm/wh/amr_8/presence/status", presence_payload("amr_8", "offline")) is None
    assert watch.seen("swarm/wh/amr_7/presence/status", b"\xff not json") is None  # never dies of a message
