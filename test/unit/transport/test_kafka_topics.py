"""Topic creation (transport/topics.py), pure parts: replication from the cluster's size, the config keys that
name it, an unreachable cluster named (on a real Kafka: integration/transport/test_kafka_topics.py)."""

from __future__ import annotations

from typing import Any

import pytest

from swarm_bridge.config import ConfigError, CoordinatorConfig, GatewayConfig, validate_config
from swarm_bridge.transport import LinkError, TopicError, ensure_kafka_topics
from swarm_bridge.transport.topics import ReplicationPlan, replication_plan


@pytest.mark.parametrize(("brokers", "plan"), [(1, (1, 1)), (2, (2, 1)), (3, (3, 2)), (5, (3, 2)), (30, (3, 2))])
def test_replication_defaults_to_what_the_cluster_offers(brokers: int, plan: tuple[int, int]) -> None:
    assert replication_plan(brokers) == ReplicationPlan(*plan)


def test_replication_given_is_kept_and_one_the_cluster_cannot_give_is_refused_by_name() -> None:
    assert replication_plan(5, replication_factor=5) == ReplicationPlan(5, 3)
    assert replication_plan(3, replication_factor=2, min_insync_replicas=2) == ReplicationPlan(2, 2)
    assert replication_plan(3, min_insync_replicas=3) == ReplicationPlan(3, 3)
    with pytest.raises(ValueError, match="replication_factor 3 needs 3 brokers but the cluster has 1"):
        replication_plan(1, replication_factor=3)
    with pytest.raises(ValueError, match="min_insync_replicas 3 is more than replication_factor 2"):
        replication_plan(3, replication_factor=2, min_insync_replicas=3)


@pytest.mark.parametrize("model", [CoordinatorConfig, GatewayConfig])
def test_config_names_replication_and_refuses_more_in_sync_than_replicas(model: Any) -> None:
    base: dict[str, Any] = ({"fleet": "f", "shards": 2, "capabilities": {"amr": ["pick"]}, "kafka": {"port": 9092}}
                            if model is CoordinatorConfig else {"gateway_id": "g", "fleet": "f", "kafka": {}})
    good = validate_config({**base, "kafka": {**base["kafka"], "new_topics": {"replication_factor": 3}}}, model)
    assert good.kafka.new_topics.replication_factor == 3 and good.kafka.new_topics.min_insync_replicas is None
    with pytest.raises(ConfigError, match=r"kafka\.new_topics.*min_insync_replicas \(3\) must be <= "
                                          r"replication_factor \(2\)"):
        validate_config({**base, "kafka": {**base["kafka"], "new_topics": {"replication_factor": 2,
                                                                           "min_insync_replicas": 3}}}, model)


def test_an_unreachable_cluster_is_a_link_error_naming_it() -> None:
    from swarm_bridge.brokers import free_port

    port = free_port()
    with pytest.raises(LinkError, match=rf"kafka://127.0.0.1:{port}: no cluster metadata") as caught:
        ensure_kafka_topics(f"127.0.0.1:{port}", ["x"], timeout_s=1.0)
    assert not isinstance(caught.value, TopicError) and "start Kafka" in caught.value.fix
