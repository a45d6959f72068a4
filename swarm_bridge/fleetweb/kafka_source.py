"""The page's source on Kafka (mode kafka): the state, presence and task-event topics (and the VDA 5050 vehicles'
state, connection and factsheet topics, with a `vda5050` section) from their start, folded as every coordinator
folds them (`coordinator.kafka.view.fold`, `coordinator.kafka.vda.KafkaVda`); the gateways' health records from
their start (the topic may appear later: looked for with the cluster's health); the robots' stream topics from now
on, counted per robot and topic (Kafka's CreateTime gives each record's latency)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from typing import Any

from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.config.robot import default_registry
from swarm_bridge.coordinator.core.events import TaskBook, decode_event
from swarm_bridge.coordinator.kafka.records import FleetRecords
from swarm_bridge.coordinator.kafka.vda import KafkaVda
from swarm_bridge.coordinator.kafka.view import sent_at
from swarm_bridge.fleetweb.errors import FleetWebError
from swarm_bridge.fleetweb.feed import PageFeed
from swarm_bridge.fleetweb.model import FleetPage
from swarm_bridge.routing.gateway_health import parse_gateway_health
from swarm_bridge.routing.presence import parse_presence
from swarm_bridge.transport.kafka_clients import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    KafkaMessage,
    TopicPartition,
    kafka_consumer,
)

__all__ = ["STREAMS", "KafkaSource"]

HEALTH_EVERY_S = 5.0  # how often the cluster's metadata is asked for its health
# Consumer events that say nothing is wrong: no telemetry topic yet for the pattern, the end of a partition.
_NOT_A_PROBLEM = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._PARTITION_EOF})

log = logging.getLogger(__name__)

STREAMS = r"^fleet\.telemetry\..+"
STREAMS_REFRESH_MS = 10_000  # how soon a new stream topic joins the page
"""The robots' telemetry topics, counted per robot (the record key) and topic beside their state and status."""


class KafkaSource:
    """Two consumers in one thread: the fleet view (assigned, from the start, read_committed) and the streams
    (subscribed by pattern, from the end); each record is folded into the feed."""

    def __init__(self, config: CoordinatorConfig, feed: PageFeed, *, streams: str = STREAMS) -> None:
        self.config, self.feed, self.streams = config, feed, streams
        self.topics = config.topics
        self.endpoint = f"kafka://{config.kafka.servers}"
        self.records = FleetRecords(fmt=config.robot_format, registry=config.registry or default_registry(),
                                    subject_name_strategy=config.subject_name_strategy,
                                    state_topic=self.topics.state, status_topic=self.topics.status,
                                    commands_topic=self.topics.commands)
        no_orders = TaskBook()  # the page sends no orders and adopts none: the vehicles are only shown
        self.vda = KafkaVda(config, lambda: no_orders) if config.vda5050 is not None else None
        self.view_topics = (self.topics.state, self.topics.presence, self.topics.events,
                            *(self.vda.up if self.vda is not None else ()))
        tag = uuid.uuid4().hex[:8]
        base = {**config.kafka.client_settings(), "enable.auto.commit": False}
        self._view: Consumer = kafka_consumer({**base, "group.id": f"{config.kafka.group}.web.{tag}",
                                               "isolation.level": "read_committed"}, log)
        self._streams: Consumer = kafka_consumer({**base, "group.id": f"{config.kafka.group}.web-streams.{tag}",
                                                  "auto.offset.reset": "latest",
                                                  # a stream topic made after the page opened is matched by the
                                                  # pattern at the next refresh (librdkafka's default: 5 min)
                                                  "topic.metadata.refresh.interval.ms": STREAMS_REFRESH_MS}, log)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self._gateways_read = False  # the gateways' health topic is assigned (it exists)
        feed.apply(self._begin)

    def _begin(self, page: FleetPage) -> None:
        page.source.update(kind="kafka", endpoint=self.endpoint, connected=False)
        page.gateways.note = f"no gateway has reported on {self.topics.gateway_health} yet"

    def start(self) -> KafkaSource:
        """Assign the view topics from their start and subscribe the streams; FleetWebError when Kafka does not
        answer or a view topic is missing."""
        timeout = self.config.kafka.connect_timeout_s
        try:
            meta = self._view.list_topics(timeout=timeout).topics
        except KafkaException as exc:
            self.close()
            raise FleetWebError(f"fleet page: {self.endpoint}: {exc}; start Kafka or fix kafka.port/bootstrap "
                                "in the coordinator config") from None
        view = self.view_topics
        missing = [t for t in view if t not in meta]
        if missing:
            self.close()
            raise FleetWebError(f"fleet page: {self.endpoint}: no topic {', '.join(missing)}; start a coordinator "
                                "with this config first (it creates them), or fix topics: in the config")
        self._view.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in view for p in sorted(meta[t].partitions)])
        self._read_gateways(meta)
        self._streams.subscribe([self.topics.state, self.topics.status, self.streams])
        self._connected = True
        self.feed.apply(lambda page: page.source.update(connected=True))
        self._thread = threading.Thread(target=self._run, name="fleet-web-kafka", daemon=True)
        self._thread.start()
        log.info("fleet page: reading %s (the view), %s and %s (counted) on %s", ", ".join(view), self.topics.status,
                 self.streams, self.endpoint)
        return self

    def refresh(self) -> None:
        """Nothing to ask: the consumer thread says whether Kafka answers."""

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        for consumer in (self._view, self._streams):
            with contextlib.suppress(RuntimeError):  # already closed
                consumer.close()
        self.records.close()

    def _health(self) -> None:
        """The cluster's health as its metadata says it: brokers up, view partitions without a leader."""
        try:
            meta = self._view.list_topics(timeout=5)
        except KafkaException as exc:
            self.feed.apply(FleetPage.on_broker, "metadata", f"no answer: {exc}")
            return
        view = self.view_topics
        leaderless = sum(p.leader < 0 for t in view if t in meta.topics for p in meta.topics[t].partitions.values())
        self._read_gateways(meta.topics)
        self.feed.apply(FleetPage.on_broker, "brokers up", str(len(meta.brokers)))
        self.feed.apply(FleetPage.on_broker, "view partitions without a leader", str(leaderless))

    def _read_gateways(self, topics: dict[str, Any]) -> None:
        """Read the gateways' health topic from its start, once it exists (a gateway creates it)."""
        topic = self.topics.gateway_health
        if self._gateways_read or topic not in topics or topics[topic].error is not None:
            return
        self._view.incremental_assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                                       for p in sorted(topics[topic].partitions)])
        self._gateways_read = True
        log.info("fleet page: reading the gateways' health from %s", topic)

    def _run(self) -> None:
        checked = 0.0
        while not self._stop.is_set():
            if time.monotonic() - checked >= HEALTH_EVERY_S:
                checked = time.monotonic()
                self._health()
            try:
                view = self._view.consume(num_messages=2000, timeout=0.1)
                streams = self._streams.consume(num_messages=2000, timeout=0 if view else 0.1)
            except KafkaException as exc:
                log.warning("fleet page: %s: %s", self.endpoint, exc)
                self._stop.wait(1.0)
                continue
            self.feed.apply(self._fold_all, view, streams, time.time_ns())

    def _fold_all(self, page: FleetPage, view: list[KafkaMessage], streams: list[KafkaMessage], now: int) -> None:
        for msg in view:
            if msg.error():
                self._error(page, msg)
                continue
            page.heard(now)
            try:
                self._fold(page, msg, now)
            except Exception as exc:  # a malformed record is counted, never fatal
                page.drop(f"malformed {msg.topic()}")
                log.debug("fleet page: %s: %s", msg.topic(), exc)
        for msg in streams:
            if msg.error():
                self._error(page, msg)
                continue
            key, value = msg.key(), msg.value()
            kind, stamp_ms = msg.timestamp()
            stamp = stamp_ms * 1_000_000 if kind == TIMESTAMP_CREATE_TIME and stamp_ms > 0 else 0
            page.on_record(key.decode("utf-8", "replace") if key else "?", str(msg.topic()), len(value or b""), now,
                           stamp_ns=stamp)

    def _error(self, page: FleetPage, msg: KafkaMessage) -> None:
        """A consumer event that is no record (a topic the pattern finds none of yet, a broker down): the source's
        last error on the page, and the log."""
        error = msg.error()
        if error is None or error.code() in _NOT_A_PROBLEM:
            return
        page.source["last_error"] = str(error.str())
        log.debug("fleet page: %s: %s", self.endpoint, error)

    def _fold(self, page: FleetPage, msg: KafkaMessage, now: int) -> None:
        """One record of the view topics, as `coordinator.kafka.view.fold` reads it (a tombstone changes nothing)."""
        topic, value = msg.topic(), msg.value()
        if value is None:
            return
        if topic == self.topics.events:
            page.on_task(decode_event(value).task, now)
        elif topic == self.topics.gateway_health:
            page.on_gateway(parse_gateway_health(value), sent_at(msg, now))
        elif topic == self.topics.state:
            page.on_state(self.records.state_decoder.decode(value).body, sent_at(msg, now))
        elif self.vda is not None and self.vda.fold(str(topic), msg.key(), value, page.fleet, sent_at(msg, now)):
            self.vda.reports.clear()  # the task status a vehicle's state says: the coordinator's to act on
        else:
            presence = parse_presence(value)
            page.on_presence(presence.robot_id, presence.state, presence.reason, sent_at(msg, now))
