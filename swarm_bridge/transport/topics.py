"""Kafka topic creation, the one place every service makes topics: replication from the cluster's size.

A new topic gets `replication_factor` replicas and `min.insync.replicas` as given, else what the cluster
offers: min(3, brokers) replicas and a majority of them in sync that still lets one replica fail
(1 broker: 1/1, 2: 2/1, 3: 3/2). A sharded topic (`TopicSpec.sharded`) has exactly its partition count:
one made smaller by someone else (a gateway or Kafka's auto-create, 1 partition) is grown to it, one
with more partitions is refused (keys would move between shards).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from swarm_bridge.errors import SwarmBridgeError
from swarm_bridge.transport.kafka_log import kafka_log
from swarm_bridge.transport.link import LinkError

__all__ = ["ReplicationError", "ReplicationPlan", "TopicError", "TopicSpec", "ensure_kafka_topics",
           "replication_plan"]

log = logging.getLogger(__name__)


class TopicError(LinkError):
    """A topic that cannot be made or has the wrong shape (partition count, replication); names the fix."""


class ReplicationError(SwarmBridgeError, ValueError):
    """Replication settings the cluster cannot give (too few brokers, more in sync than replicas); `problem`
    names the key and the values."""

    FIX = ("lower replication_factor / min_insync_replicas (or leave them unset: the default is what the "
           "cluster offers)")

    def __init__(self, problem: str) -> None:
        self.problem, self.fix = problem, self.FIX
        super().__init__(f"{problem}. Fix: {self.fix}")


@dataclass(frozen=True)
class TopicSpec:
    """One topic as a service needs it: partitions, topic settings (e.g. cleanup.policy), sharded or not."""

    name: str
    partitions: int = 1
    config: Mapping[str, str] = field(default_factory=dict)
    sharded: bool = False  # exactly `partitions`: fewer are grown to it, more are refused


@dataclass(frozen=True)
class ReplicationPlan:
    """Replicas of each partition of a new topic, and how many must be in sync for acks=all to succeed."""

    replication_factor: int
    min_insync_replicas: int


def replication_plan(brokers: int, *, replication_factor: int | None = None,
                     min_insync_replicas: int | None = None) -> ReplicationPlan:
    """The given values, else min(3, brokers) replicas and a majority in sync that leaves one to fail;
    ReplicationError (a ValueError) naming the key when the cluster cannot give what is asked."""
    if brokers < 1:
        raise ReplicationError("the cluster reports no brokers")
    factor = replication_factor or min(3, brokers)
    if factor > brokers:
        raise ReplicationError(f"replication_factor {factor} needs {factor} brokers but the cluster has {brokers}")
    insync = min_insync_replicas or max(1, min(factor - 1, factor // 2 + 1))
    if insync > factor:
        raise ReplicationError(f"min_insync_replicas {insync} is more than replication_factor {factor}")
    return ReplicationPlan(factor, insync)


def ensure_kafka_topics(bootstrap: str, topics: Sequence[str | TopicSpec], *, partitions: int = 1,
                        create: bool = True, replication_factor: int | None = None,
                        min_insync_replicas: int | None = None, timeout_s: float = 30.0,
                        settings: Mapping[str, str] | None = None) -> None:
    """Create the missing `topics` (a plain name: `partitions` partitions), grow sharded ones that have too
    few, and wait until all exist with leaders. `create=False` only checks. `settings`: extra client
    settings (security: SASL login, TLS). LinkError when the cluster does not answer; TopicError when a
    topic cannot be made or has the wrong partition count."""
    endpoint = f"kafka://{bootstrap}"
    specs = [TopicSpec(t, partitions) if isinstance(t, str) else t for t in topics]
    client: dict[str, Any] = {**(settings or {}), "bootstrap.servers": bootstrap, "logger": kafka_log(log)}
    admin = AdminClient(client)
    meta = _metadata(admin, endpoint, timeout_s)
    try:
        plan = replication_plan(len(meta.brokers), replication_factor=replication_factor,
                                min_insync_replicas=min_insync_replicas)
    except ReplicationError as exc:
        raise TopicError(endpoint, exc.problem, exc.fix) from None
    # Only the missing ones: a principal may lack the right to create a topic it may read (ACLs).
    missing = [s for s in specs if s.name not in meta.topics or meta.topics[s.name].error is not None]
    if missing and create:
        raced = _create(admin, endpoint, missing, plan, timeout_s)
        if raced:  # made meanwhile by another service (a gateway: 1 partition): look again before growing
            meta = _wait_ready(admin, endpoint, [s for s in specs if s.name in raced], {}, timeout_s)
    short = {s.name: s.partitions for s in specs if s.sharded and s.name in meta.topics
             and meta.topics[s.name].error is None and len(meta.topics[s.name].partitions) < s.partitions}
    if short and create:
        _grow(admin, endpoint, meta, short, timeout_s)
    meta = _wait_ready(admin, endpoint, specs, short if create else {}, timeout_s)
    for spec in specs:
        count = len(meta.topics[spec.name].partitions)
        if spec.sharded and count != spec.partitions:
            grow = (f"grow it: kafka-topics.sh --alter --topic {spec.name} --partitions {spec.partitions} (or let "
                    "the service create topics)" if count < spec.partitions
                    else "use a fresh topic name or the shard count it was made for (partitions cannot shrink)")
            raise TopicError(endpoint, f"topic {spec.name} has {count} partitions but shards is {spec.partitions}; "
                             "a sharded topic needs one partition per shard", grow)
        replicas = min(len(p.replicas) for p in meta.topics[spec.name].partitions.values())
        if replicas < plan.replication_factor:
            log.warning("%s: topic %s has %d replica(s) per partition where the cluster offers %d; a broker lost "
                        "loses its records (raise it with kafka-reassign-partitions.sh)", endpoint, spec.name,
                        replicas, plan.replication_factor)


def _metadata(admin: AdminClient, endpoint: str, timeout_s: float) -> Any:
    try:
        return admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise LinkError(endpoint, f"no cluster metadata ({exc})", "start Kafka or fix the bootstrap address") from None


def _create(admin: AdminClient, endpoint: str, specs: Sequence[TopicSpec], plan: ReplicationPlan,
            timeout_s: float) -> set[str]:
    """Create `specs`; returns the names another service created between our look and our request."""
    raced: set[str] = set()
    new = [NewTopic(s.name, num_partitions=s.partitions, replication_factor=plan.replication_factor,
                    config={"min.insync.replicas": str(plan.min_insync_replicas), **s.config}) for s in specs]
    for topic, future in admin.create_topics(new, operation_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except TimeoutError:
            raise LinkError(endpoint, f"no answer creating topic {topic} in {timeout_s:g} s",
                            "check Kafka is up (its controller too)") from None
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise TopicError(endpoint, f"cannot create topic {topic} ({exc})",
                                 "check the topic name and that this login may create topics") from None
            raced.add(topic)  # another service made it meanwhile: its partitions are checked by the caller
        else:
            log.info("%s: created topic %s (replication %d, min.insync.replicas %d)", endpoint, topic,
                     plan.replication_factor, plan.min_insync_replicas)
    return raced


def _grow(admin: AdminClient, endpoint: str, meta: Any, short: Mapping[str, int], timeout_s: float) -> None:
    new = [NewPartitions(topic, count) for topic, count in short.items()]
    for topic, future in admin.create_partitions(new, operation_timeout=timeout_s).items():
        had = len(meta.topics[topic].partitions)
        try:
            future.result(timeout=timeout_s)
        except TimeoutError:
            raise LinkError(endpoint, f"no answer growing topic {topic} in {timeout_s:g} s",
                            "check Kafka is up (its controller too)") from None
        except KafkaException as exc:
            if "INVALID_PARTITIONS" not in str(exc):  # grown meanwhile by another instance: checked below
                raise TopicError(endpoint, f"cannot grow topic {topic} from {had} to {short[topic]} partitions "
                                 f"({exc})", "check that this login may alter topics, or grow it by hand") from None
        else:
            log.warning("%s: topic %s had %d partition(s) (made by another service or auto-created); grown to %d, "
                        "one per shard", endpoint, topic, had, short[topic])


def _wait_ready(admin: AdminClient, endpoint: str, specs: Sequence[TopicSpec], grown: Mapping[str, int],
                timeout_s: float) -> Any:
    """Metadata once every topic exists, every partition has a leader and the `grown` ones have their count."""
    deadline = time.monotonic() + timeout_s
    while True:
        meta = _metadata(admin, endpoint, timeout_s)
        known = meta.topics
        missing = [s.name for s in specs if s.name not in known or known[s.name].error is not None
                   or not known[s.name].partitions]
        leaderless = [s.name for s in specs if s.name not in missing
                      and any(p.leader < 0 for p in known[s.name].partitions.values())]
        short = [name for name, count in grown.items() if name not in missing and len(known[name].partitions) < count]
        if not missing and not leaderless and not short:
            return meta
        if time.monotonic() > deadline:
            if missing or leaderless:
                raise TopicError(endpoint, f"topics {missing + leaderless} missing or without leaders after "
                                 f"{timeout_s:g} s", "create them (with their partition counts) or let the "
                                 "service create topics; check the broker log")
            return meta  # a sharded topic still short is named by the caller's check
        time.sleep(0.1)
