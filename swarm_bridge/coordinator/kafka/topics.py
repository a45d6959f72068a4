"""The Kafka coordinator's topics before it starts: the cluster reachable with this login, and every topic
there with one partition per shard (created or grown when the config allows)."""

from __future__ import annotations

from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.coordinator.core.errors import CoordinatorError
from swarm_bridge.transport.link import LinkError
from swarm_bridge.transport.probes import kafka_login_problem
from swarm_bridge.transport.topics import TopicError, TopicSpec, ensure_kafka_topics

__all__ = ["TopicMismatch", "ensure_topics", "require_kafka", "sharded_topics", "topic_specs"]


class TopicMismatch(CoordinatorError, RuntimeError):
    """A coordinator topic that cannot be made as the config says: partitions other than the shard count,
    replication the cluster cannot give, or no right to create it."""


def sharded_topics(config: CoordinatorConfig) -> list[str]:
    """The topics partitioned by shard: submit, status, commands, events."""
    topics = config.topics
    return [topics.submit, topics.status, topics.commands, topics.events]


def require_kafka(config: CoordinatorConfig) -> None:
    """LinkError naming the bootstrap and the fix unless the cluster gives this login its metadata in time."""
    kafka = config.kafka
    problem = kafka_login_problem(kafka.servers, settings=kafka.security.client_settings(),
                                  timeout_s=kafka.connect_timeout_s)
    if problem is not None:
        fix = (f"check kafka.security ({kafka.security.describe()}) against the cluster's users"
               if problem.startswith("login refused")
               else "start Kafka or fix kafka.host / kafka.port (or kafka.bootstrap)")
        raise LinkError(f"kafka://{kafka.servers}", problem, fix)


def topic_specs(config: CoordinatorConfig) -> list[TopicSpec]:
    """The coordinator's topics: sharded ones with `shards` partitions (the event log compacted), state and
    presence with `shards` partitions too, and the VDA 5050 vehicles' topics when it drives any."""
    topics = config.topics
    compact = {"cleanup.policy": "compact"}
    return [*(TopicSpec(t, config.shards, compact if t == topics.events else {}, sharded=True)
              for t in sharded_topics(config)),
            TopicSpec(topics.state, config.shards), TopicSpec(topics.presence, config.shards),
            *(TopicSpec(t, config.shards) for t in (config.vda5050.kafka_topics().values() if config.vda5050 else ()))]


def ensure_topics(config: CoordinatorConfig) -> None:
    """Create missing topics, grow sharded ones made with fewer partitions (`create_topics`), and check that
    each sharded topic has one partition per shard (TopicMismatch if not); LinkError if Kafka does not answer."""
    try:
        ensure_kafka_topics(config.kafka.servers, topic_specs(config),
                            create=config.create_topics, timeout_s=config.kafka.connect_timeout_s,
                            settings=config.kafka.security.client_settings(),
                            replication_factor=config.kafka.new_topics.replication_factor,
                            min_insync_replicas=config.kafka.new_topics.min_insync_replicas)
    except TopicError as exc:
        raise TopicMismatch(str(exc)) from None
