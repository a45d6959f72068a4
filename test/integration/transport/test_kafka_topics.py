"""Topic creation (transport/topics.py), shared by the coordinator, the gateway and the harness: replication from
the cluster's size, min.insync.replicas set on the topic, sharded topics grown to one partition per shard."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource
from coordinator_fleet import coordinator_config

from swarm_bridge.brokers import Kafka, KafkaCluster
from swarm_bridge.config import GatewayConfig, validate_config
from swarm_bridge.coordinator.kafka.topics import TopicMismatch, ensure_topics
from swarm_bridge.gateway.service import Gateway
from swarm_bridge.transport import TopicError, TopicSpec, ensure_kafka_topics

T = TypeVar("T")


def _settled(read: Callable[[], T]) -> T:
    """`read()` once every broker knows the topic (a cluster's brokers learn a new topic one after another)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return read()
        except (KeyError, KafkaException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _topic_settings(kafka: Kafka | KafkaCluster, topic: str) -> dict[str, tuple[str, Any]]:
    def read() -> dict[str, tuple[str, Any]]:
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
        (future,) = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
        return {name: (entry.value, entry.source) for name, entry in future.result(30).items()}

    return _settled(read)


def _replicas(kafka: Kafka | KafkaCluster, topic: str) -> set[int]:
    def read() -> set[int]:
        meta = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=30).topics[topic]
        return {len(p.replicas) for p in meta.partitions.values()}

    return _settled(read)


@pytest.mark.integration
def test_the_coordinator_task_log_gets_the_replication_the_cluster_offers(kafka: Kafka, tmp_path: Path) -> None:
    """Single broker: replication 1 and min.insync.replicas 1, both set on the topic (not left to the broker's
    defaults, which on a real cluster may make an RF-1 topic unwritable); the task log compacted."""
    from confluent_kafka.admin import ConfigSource

    config = coordinator_config(kafka, tmp_path)
    ensure_topics(config)
    for topic in (config.topics.events, config.topics.commands, config.topics.state):
        assert _replicas(kafka, topic) == {1}
        settings = _topic_settings(kafka, topic)
        assert settings["min.insync.replicas"] == ("1", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert _topic_settings(kafka, config.topics.events)["cleanup.policy"][0] == "compact"


@pytest.mark.integration
def test_replication_beyond_the_cluster_is_refused_naming_the_key(kafka: Kafka, tmp_path: Path) -> None:
    config = coordinator_config(kafka, tmp_path, kafka={"new_topics": {"replication_factor": 3}})
    with pytest.raises(TopicMismatch, match="replication_factor 3 needs 3 brokers but the cluster has 1"):
        ensure_topics(config)
    tag = uuid.uuid4().hex[:6]
    gateway = validate_config({"gateway_id": f"g{tag}", "fleet": "f", "registry": str(tmp_path / "registry"),
                               "kafka": {"bootstrap": kafka.bootstrap, "dlq_topic": f"g{tag}.dlq",
                                         "new_topics": {"replication_factor": 2}},
                               "down": []}, GatewayConfig)
    with pytest.raises(TopicError, match="replication_factor 2 needs 2 brokers but the cluster has 1") as caught:
        Gateway(gateway).start()
    assert "replication_factor" in caught.value.fix
    # Nothing was half made.
    assert f"g{tag}.dlq" not in AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=30).topics


@pytest.mark.integration
def test_a_sharded_topic_made_smaller_is_grown_and_one_made_larger_is_refused(kafka: Kafka) -> None:
    tag = uuid.uuid4().hex[:6]
    small, large = f"t{tag}.small", f"t{tag}.large"
    ensure_kafka_topics(kafka.bootstrap, [small])  # as a gateway or Kafka's auto-create makes it: 1 partition
    ensure_kafka_topics(kafka.bootstrap, [large], partitions=8)
    with pytest.raises(TopicError, match=rf"topic {small} has 1 partitions but shards is 6") as caught:
        ensure_kafka_topics(kafka.bootstrap, [TopicSpec(small, 6, sharded=True)], create=False)
    assert f"--alter --topic {small} --partitions 6" in caught.value.fix
    ensure_kafka_topics(kafka.bootstrap, [TopicSpec(small, 6, sharded=True)])
    meta = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=30).topics
    assert len(meta[small].partitions) == 6
    with pytest.raises(TopicError, match=rf"topic {large} has 8 partitions but shards is 6") as caught:
        ensure_kafka_topics(kafka.bootstrap, [TopicSpec(large, 6, sharded=True)])
    assert "partitions cannot shrink" in caught.value.fix
    # A plain (unsharded) topic is taken as it is.
    ensure_kafka_topics(kafka.bootstrap, [TopicSpec(large, 6)])


@pytest.mark.integration
def test_a_sharded_topic_another_service_makes_between_the_look_and_the_create_is_grown(
        kafka: Kafka, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway and a coordinator started together: the gateway makes the command topic (1 partition) after the
    coordinator looked (not there) and before it asked to create it (already exists); the coordinator grows it."""
    import swarm_bridge.transport.topics as topics

    name = f"t{uuid.uuid4().hex[:6]}.commands"
    looks = 0
    real_metadata = topics._metadata

    def look_then_a_gateway_makes_it(admin: Any, endpoint: str, timeout_s: float) -> Any:
        nonlocal looks
        meta = real_metadata(admin, endpoint, timeout_s)
        looks += 1
        if looks == 1:
            monkeypatch.setattr(topics, "_metadata", real_metadata)
            ensure_kafka_topics(kafka.bootstrap, [name])  # the gateway's way: a plain topic, 1 partition
        return meta

    monkeypatch.setattr(topics, "_metadata", look_then_a_gateway_makes_it)
    ensure_kafka_topics(kafka.bootstrap, [TopicSpec(name, 12, sharded=True)])
    meta = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=30).topics
    assert len(meta[name].partitions) == 12


@pytest.mark.integration
def test_on_three_brokers_the_task_log_gets_three_replicas_two_in_sync(kafka_cluster: KafkaCluster,
                                                                       tmp_path: Path) -> None:
    """The default asks the cluster: three brokers give every coordinator topic three replicas and
    min.insync.replicas 2 (a broker may fail without losing a committed task event or stopping writes)."""
    from confluent_kafka.admin import ConfigSource

    config = coordinator_config(kafka_cluster.nodes[0], tmp_path)  # bootstraps from one node, finds all three
    ensure_topics(config)
    assert len(AdminClient({"bootstrap.servers": kafka_cluster.bootstrap}).list_topics(timeout=30).brokers) == 3
    for topic in (config.topics.events, config.topics.commands, config.topics.submit, config.topics.state):
        assert _replicas(kafka_cluster, topic) == {3}
        assert _topic_settings(kafka_cluster, topic)["min.insync.replicas"] == (
            "2", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    # Asked for less, it gets what it asked (the gateway's path, explicit replication).
    tag = uuid.uuid4().hex[:6]
    ensure_kafka_topics(kafka_cluster.bootstrap, [f"g{tag}.dlq"], replication_factor=2)
    assert _replicas(kafka_cluster, f"g{tag}.dlq") == {2}
    assert _topic_settings(kafka_cluster, f"g{tag}.dlq")["min.insync.replicas"][0] == "1"


@pytest.mark.integration
def test_on_three_brokers_kafkas_own_topics_get_three_replicas_two_in_sync(kafka_cluster: KafkaCluster) -> None:
    """Group offsets and transaction state (made at first use) are replicated like the services' topics: with one
    replica, losing its node would lose every group's offsets and stop every transactional producer."""
    from confluent_kafka import Consumer, Producer

    tag = uuid.uuid4().hex[:6]
    topic = f"t{tag}.own"
    ensure_kafka_topics(kafka_cluster.bootstrap, [topic])
    producer = Producer({"bootstrap.servers": kafka_cluster.bootstrap, "transactional.id": f"t{tag}"})
    producer.init_transactions(60)
    producer.begin_transaction()
    producer.produce(topic, b"committed")
    producer.commit_transaction(60)
    consumer = Consumer({"bootstrap.servers": kafka_cluster.bootstrap, "group.id": f"g{tag}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        message = consumer.poll(1.0)
        while (message is None or message.error() is not None) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
        assert message is not None and message.value() == b"committed"
        consumer.commit(message=message, asynchronous=False)
    finally:
        consumer.close()
    for internal in ("__consumer_offsets", "__transaction_state"):
        assert _replicas(kafka_cluster, internal) == {3}
        assert _topic_settings(kafka_cluster, internal)["min.insync.replicas"][0] == "2"
