"""Read the fleet as the coordinators see it, straight from Kafka (for `fleet status`), submit and cancel tasks,
pause and resume VDA 5050 vehicles."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.config.robot import default_registry
from swarm_bridge.coordinator.core.dispatch import CANCEL_KEY, cancel_doc
from swarm_bridge.coordinator.core.events import TaskBook
from swarm_bridge.coordinator.core.fleet import FleetView
from swarm_bridge.coordinator.core.pause import pause_doc
from swarm_bridge.coordinator.kafka.records import FleetRecords
from swarm_bridge.coordinator.kafka.vda import KafkaVda
from swarm_bridge.coordinator.kafka.view import fold, sent_at
from swarm_bridge.routing.sharding import shard_of
from swarm_bridge.transport.kafka_clients import (
    OFFSET_BEGINNING,
    TopicPartition,
    kafka_consumer,
    kafka_producer,
    produce_patiently,
)

__all__ = ["FleetSnapshot", "TaskSubmitter", "cancel_task", "pause_vehicle", "read_snapshot", "submit_tasks"]

log = logging.getLogger(__name__)


class FleetSnapshot:
    """Fleet view and task book folded from the state, presence and event topics (and the VDA 5050 vehicles'
    topics, when the config drives any) up to their ends."""

    def __init__(self) -> None:
        self.fleet = FleetView()
        self.book = TaskBook()
        self.malformed = 0
        self.vehicles: frozenset[str] = frozenset()  # robot ids of the VDA 5050 vehicles whose state was read


def read_snapshot(config: CoordinatorConfig, *, timeout_s: float = 30.0) -> FleetSnapshot:
    """Read the view topics from the start to their current ends (read_committed)."""
    topics = config.topics
    records = FleetRecords(fmt=config.robot_format, registry=config.registry or default_registry(),
                           subject_name_strategy=config.subject_name_strategy,
                           state_topic=topics.state, status_topic=topics.status, commands_topic=topics.commands)
    consumer = kafka_consumer({**config.kafka.client_settings(),
                               "group.id": f"fleet-status-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                               "isolation.level": "read_committed"}, log)
    snap = FleetSnapshot()
    vda = KafkaVda(config, lambda: snap.book, registry=records.registry) if config.vda5050 is not None else None
    try:
        meta = consumer.list_topics(timeout=timeout_s).topics
        ends: dict[tuple[str, int], int] = {}
        for topic in (topics.state, topics.presence, topics.events, *(vda.up if vda is not None else ())):
            if topic not in meta or meta[topic].error:
                continue
            for p in meta[topic].partitions:
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
                if high > 0:
                    ends[(topic, p)] = int(high)
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in ends])
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=5000, timeout=0.2):
                if msg.error():
                    continue
                try:
                    now = time.time_ns()
                    if vda is not None and msg.value() and vda.fold(msg.topic() or "", msg.key(), msg.value() or b"",
                                                                    snap.fleet, sent_at(msg, now)):
                        continue
                    fold(snap.fleet, snap.book, topics, records, msg, now)
                except Exception:  # counted and shown, never fatal
                    snap.malformed += 1
            positions = consumer.position([TopicPartition(t, p) for t, p in ends])
            for tp in positions:
                if tp.offset >= ends[(tp.topic, tp.partition)]:
                    ends.pop((tp.topic, tp.partition))
        if vda is not None:
            snap.vehicles = frozenset(vda.vehicles.states)
    finally:
        consumer.close()
        records.close()
    return snap


def submit_tasks(config: CoordinatorConfig, docs: list[dict[str, Any]], *, timeout_s: float = 30.0) -> int:
    """Send task requests to the submit topic (key task_id, its shard's partition); returns how many are
    not confirmed. A doc without a usable task_id goes to partition 0, to be rejected with its reason."""
    producer = kafka_producer({**config.kafka.client_settings(), "enable.idempotence": True, "linger.ms": 5}, log)
    for doc in docs:
        task_id = doc.get("task_id")
        key = task_id if isinstance(task_id, str) and task_id else ""
        partition = shard_of(key, config.shards) if key else 0
        produce_patiently(producer, config.topics.submit, json.dumps(doc).encode(), key.encode() or None, partition)
    return producer.flush(timeout_s)


def cancel_task(config: CoordinatorConfig, task_id: str, reason: str = "", *, timeout_s: float = 30.0) -> int:
    """Send a cancel request to the submit topic (key task_id, its shard's partition, after its submission): the
    instance owning the task cancels it or passes it on to the shard the task moved to. Returns 1 when Kafka did
    not confirm it, else 0."""
    producer = kafka_producer({**config.kafka.client_settings(), "enable.idempotence": True}, log)
    produce_patiently(producer, config.topics.submit, json.dumps(cancel_doc(task_id, reason)).encode(),
                      task_id.encode(), shard_of(task_id, config.shards))
    return producer.flush(timeout_s)


def pause_vehicle(config: CoordinatorConfig, robot_id: str, paused: bool, reason: str = "", *,
                  timeout_s: float = 30.0) -> int:
    """Send a pause (or, `paused` false, resume) request to the submit topic (key robot id, its shard's partition):
    the instance owning the robot's shard sends the vehicle startPause (stopPause). Returns 1 when Kafka did not
    confirm it, else 0."""
    producer = kafka_producer({**config.kafka.client_settings(), "enable.idempotence": True}, log)
    produce_patiently(producer, config.topics.submit, json.dumps(pause_doc(robot_id, paused, reason)).encode(),
                      robot_id.encode(), shard_of(robot_id, config.shards))
    return producer.flush(timeout_s)


class TaskSubmitter:
    """Forwards raw task requests and cancel requests (JSON bytes, as a ROS topic carries them) to the submit topic,
    keyed and partitioned by their task id (after the task's submission); a request without one still goes, so the
    coordinator rejects it with a reason."""

    def __init__(self, config: CoordinatorConfig) -> None:
        self.config = config
        self.sent = 0
        self._producer = kafka_producer({**config.kafka.client_settings(), "enable.idempotence": True,
                                         "linger.ms": 5}, log)

    def send(self, payload: bytes) -> None:
        try:
            doc = json.loads(payload)
            task_id = (doc.get("task_id") or doc.get(CANCEL_KEY)) if isinstance(doc, dict) else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            task_id = None
        key = task_id if isinstance(task_id, str) and task_id else ""
        partition = shard_of(key, self.config.shards) if key else 0
        produce_patiently(self._producer, self.config.topics.submit, payload, key.encode() or None, partition)
        self._producer.poll(0)
        self.sent += 1

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush; returns how many requests are not confirmed."""
        return self._producer.flush(timeout_s)
