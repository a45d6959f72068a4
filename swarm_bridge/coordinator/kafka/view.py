"""The fleet as every Kafka coordinator reads it: robot state, presence and the task events, folded into a
fleet view and a task book (`fold`: the running instance's `ViewReader` and `fleet status` alike)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from swarm_bridge.config.coordinator import CoordinatorConfig, CoordinatorTopics
from swarm_bridge.coordinator.core.dispatch import Dispatch
from swarm_bridge.coordinator.core.events import TaskBook, decode_event
from swarm_bridge.coordinator.core.fleet import FleetView
from swarm_bridge.coordinator.kafka.records import FleetRecords
from swarm_bridge.coordinator.kafka.vda import KafkaVda
from swarm_bridge.routing.presence import parse_presence
from swarm_bridge.transport.kafka_clients import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    KafkaMessage,
    TopicPartition,
    kafka_consumer,
)

__all__ = ["ViewReader", "fold", "sent_at"]

log = logging.getLogger(__name__)


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


class ViewReader:
    """The view consumer of one instance (no group, read_committed): state, presence and task events from the
    start, folded into the dispatch's fleet and task book; a record that does not fold goes to `malformed`."""

    def __init__(self, config: CoordinatorConfig, dispatch: Dispatch, records: FleetRecords,
                 malformed: Callable[[KafkaMessage, Exception], None], vda: KafkaVda | None = None) -> None:
        """`vda`: VDA 5050 vehicles' state, connection and factsheet topics read too, folded by it."""
        self.topics, self.dispatch, self.records, self.malformed = config.topics, dispatch, records, malformed
        self.vda = vda
        self.timeout_s = config.kafka.connect_timeout_s
        self._consumer = kafka_consumer({**config.kafka.client_settings(),
                                         "group.id": f"{config.kafka.group}.view.{uuid.uuid4().hex[:8]}",
                                         "enable.auto.commit": False, "isolation.level": "read_committed",
                                         "auto.offset.reset": "earliest"}, log)
        meta = self._consumer.list_topics(timeout=self.timeout_s).topics
        events = self.topics.events
        self._event_partitions = [TopicPartition(events, p) for p in sorted(meta[events].partitions)]
        read = (self.topics.state, self.topics.presence, events, *(vda.up if vda is not None else ()))
        self._start = [TopicPartition(t, p, OFFSET_BEGINNING) for t in read for p in sorted(meta[t].partitions)]
        self.rewind()

    def rewind(self) -> None:
        """Read every view topic again from its start (after the dispatch forgot what it knew)."""
        self._consumer.assign(self._start)

    def event_ends(self) -> dict[int, int]:
        """Where each partition of the event topic ends now (KafkaException when the broker does not say)."""
        ends = {}
        for tp in self._event_partitions:
            _low, high = self._consumer.get_watermark_offsets(tp, timeout=self.timeout_s, cached=False)
            ends[tp.partition] = int(high)
        return ends

    def caught_up(self, ends: dict[int, int]) -> bool:
        """Whether the event topic is read up to `ends` (from `event_ends`)."""
        positions = self._consumer.position([TopicPartition(self.topics.events, p) for p in ends])
        return all(end == 0 or tp.offset >= end for tp, end in zip(positions, ends.values(), strict=True))

    def drain(self, budget: int = 20_000) -> int:
        """Fold what is there now, up to `budget` records, without waiting; returns how many."""
        done = 0
        while done < budget:
            msgs = self._consumer.consume(num_messages=2000, timeout=0)
            if not msgs:
                break
            now = time.time_ns()
            for msg in msgs:
                self._record(msg, now)
            done += len(msgs)
        return done

    def catch_up(self, timeout_s: float = 5.0) -> bool:
        """Read the event topic up to its current end (a task another instance just handed over)."""
        ends = self.event_ends()
        deadline = time.monotonic() + timeout_s
        while not self.caught_up(ends):
            if time.monotonic() > deadline:
                return False
            for msg in self._consumer.consume(num_messages=2000, timeout=0.05):
                self._record(msg, time.time_ns())
        return True

    def close(self) -> None:
        self._consumer.close()

    def _record(self, msg: KafkaMessage, now_ns: int) -> None:
        if msg.error():
            return
        try:
            if self.vda is not None and msg.value() and self.vda.fold(msg.topic() or "", msg.key(), msg.value() or b"",
                                                                      self.dispatch.fleet, sent_at(msg, now_ns)):
                return
            fold(self.dispatch.fleet, self.dispatch.book, self.topics, self.records, msg, now_ns)
        except Exception as exc:  # a malformed record is counted, never fatal
            self.malformed(msg, exc)
