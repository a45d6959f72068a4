"""The fleet as every Kafka coordinator reads it: robot state, presence and the task events, folded into a
fleet view and a task book (the running instance and `fleet status` alike)."""

from __future__ import annotations

from swarm_bridge.config.coordinator import CoordinatorTopics
from swarm_bridge.coordinator.core.events import TaskBook, decode_event
from swarm_bridge.coordinator.core.fleet import FleetView
from swarm_bridge.coordinator.kafka.records import FleetRecords
from swarm_bridge.routing.presence import parse_presence
from swarm_bridge.transport.kafka_clients import TIMESTAMP_CREATE_TIME, KafkaMessage

__all__ = ["fold", "sent_at"]


def sent_at(msg: KafkaMessage, now_ns: int) -> int:
    """When a record was produced (its CreateTime), never later than now: a robot read from old history is
    last seen when it sent, not when this instance read it."""
    kind, stamp_ms = msg.timestamp()
    if kind != TIMESTAMP_CREATE_TIME or stamp_ms <= 0:
        return now_ns
    return min(now_ns, stamp_ms * 1_000_000)


def fold(fleet: FleetView, book: TaskBook, topics: CoordinatorTopics, records: FleetRecords, msg: KafkaMessage,
         now_ns: int) -> None:
    """Fold one record of the state, presence or event topic (a tombstone changes nothing); raises for a
    malformed one, which the caller counts."""
    topic, value = msg.topic(), msg.value()
    if value is None:
        return
    if topic == topics.events:
        book.apply(decode_event(value).task)
    elif topic == topics.state:
        fleet.on_state(records.state_decoder.decode(value).body, sent_at(msg, now_ns))
    else:
        presence = parse_presence(value)
        fleet.on_presence(presence.robot_id, presence.state, presence.reason, sent_at(msg, now_ns))
