"""The gateway's health record (`routing/gateway_health.py`), made from its own counts (`metrics.GatewayCounts`,
the numbers /metrics serves) every `health.interval_s` and once at an orderly stop, produced to `health.topic`
on a small producer of its own, so a record Kafka cannot take in time is dropped rather than shown late."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from swarm_bridge.config.gateway import GatewayConfig, HealthConfig
from swarm_bridge.gateway.metrics import GatewayCounts
from swarm_bridge.routing.gateway_health import STALE_INTERVALS, GatewayHealth
from swarm_bridge.transport.kafka_clients import KafkaError, KafkaException, KafkaMessage, Producer, kafka_producer
from swarm_bridge.transport.topics import TopicSpec

__all__ = ["HealthReporter", "Sample", "drops_of", "health_of", "health_topic"]

log = logging.getLogger(__name__)


def health_topic(health: HealthConfig) -> TopicSpec:
    """The health topic as the gateway creates it: one partition, compacted (each gateway's last record stays),
    old segments rolled hourly so the compaction keeps it small, deleted after a week as Kafka's default."""
    return TopicSpec(health.topic, 1, {"cleanup.policy": "compact,delete", "segment.ms": "3600000"})


def drops_of(counts: GatewayCounts) -> dict[str, int]:
    """What the gateway dropped or set aside, by reason, as /metrics labels them: dead letters by reason (commands
    as "command"), chunked records dropped whole by reason."""
    drops = {f"dead letter: {reason}": n for reason, n in sorted(counts.dead.items()) if n}
    if counts.commands_dead:
        drops["dead letter: command"] = counts.commands_dead
    drops.update({f"chunked record: {reason}": n for reason, n in sorted(counts.chunk_drops.items()) if n})
    return drops


@dataclass(frozen=True)
class Sample:
    """The totals a rate is measured from: when (monotonic ns), records up, commands down."""

    at_ns: int
    records_up: int
    commands_down: int


def health_of(counts: GatewayCounts, *, config: GatewayConfig, state: str, now_ns: int, started_ns: int,
              sample: Sample, previous: Sample | None, commands_pending: int = 0) -> GatewayHealth:
    """The health record of `counts` now; rates over the time since `previous` (none: since start)."""
    assert config.health is not None  # the reporter exists only with a health section
    elapsed_s = (sample.at_ns - previous.at_ns) / 1e9 if previous is not None else (now_ns - started_ns) / 1e9
    up_before, down_before = (previous.records_up, previous.commands_down) if previous is not None else (0, 0)

    def rate(now_total: int, before: int) -> float:
        return round(max(0, now_total - before) / elapsed_s, 2) if elapsed_s > 0 else 0.0

    stopped = state == "stopped"
    return GatewayHealth(
        gateway_id=config.gateway_id, fleet=config.fleet, state=state, at_ns=now_ns, started_ns=started_ns,
        interval_s=config.health.interval_s, mqtt_connected=counts.mqtt_connected and not stopped,
        kafka_connected=counts.kafka_connected and not stopped, messages=counts.messages,
        records_up=sample.records_up, records_up_per_s=rate(sample.records_up, up_before),
        commands_down=sample.commands_down, commands_down_per_s=rate(sample.commands_down, down_before),
        duplicates=counts.duplicates, below_window=counts.below_window, drops=drops_of(counts),
        inflight=max(0, counts.inflight), held=counts.held, backpressure=counts.backpressure,
        commands_pending=max(0, commands_pending))


class HealthReporter:
    """Sends the gateway's health record when due (`tick`, from the gateway's loop) and its last one at `close`;
    a record Kafka confirms also says Kafka answers (`counts.kafka_connected`)."""

    def __init__(self, config: GatewayConfig, counts: GatewayCounts, *,
                 commands_pending: Callable[[], int] = lambda: 0) -> None:
        assert config.health is not None  # the gateway makes one only with a health section
        self.config, self.health, self.counts = config, config.health, counts
        self.commands_pending = commands_pending
        self.started_ns = time.time_ns()
        self.sent = 0  # records Kafka confirmed
        self.lost = 0  # records Kafka did not take in time (dropped: a late health record would mislead)
        self._previous: Sample | None = None
        self._due = 0.0  # monotonic s
        kafka = config.kafka
        timeout_ms = int(max(STALE_INTERVALS * self.health.interval_s, 10.0) * 1000)
        self.producer: Producer = kafka_producer({
            **kafka.security.client_settings(), "bootstrap.servers": kafka.bootstrap,
            "client.id": f"{config.gateway_id}-health", "acks": "all", "linger.ms": 0,
            "message.timeout.ms": timeout_ms, "reconnect.backoff.max.ms": 1000}, log)

    def tick(self, now_s: float | None = None) -> None:
        """Send a record if one is due; serve the confirmations of those sent."""
        now_s = time.monotonic() if now_s is None else now_s
        if now_s >= self._due:
            self._due = now_s + self.health.interval_s
            self.send("up")
        self.producer.poll(0)

    def send(self, state: str) -> GatewayHealth:
        """Make the record of the counts now and hand it to the producer."""
        counts = self.counts
        sample = Sample(time.monotonic_ns(), counts.produced, counts.commands)
        record = health_of(counts, config=self.config, state=state, now_ns=time.time_ns(),
                           started_ns=self.started_ns, sample=sample, previous=self._previous,
                           commands_pending=self.commands_pending())
        self._previous = sample
        try:
            self.producer.produce(self.health.topic, record.payload(), self.config.gateway_id.encode(),
                                  on_delivery=self._delivered)
        except (BufferError, KafkaException) as exc:
            self.lost += 1
            log.warning("kafka://%s: health record not sent (%s); %d lost since start", self.config.kafka.bootstrap,
                        exc, self.lost)
        return record

    def _delivered(self, err: KafkaError | None, _msg: KafkaMessage) -> None:
        if err is None:
            self.sent += 1
            self.counts.kafka_connected = True
            return
        self.lost += 1
        if self.lost == 1 or self.lost % 100 == 0:
            log.warning("kafka://%s: health record to %s not confirmed (%s); %d lost since start",
                        self.config.kafka.bootstrap, self.health.topic, err.str(), self.lost)

    def close(self, timeout_s: float = 10.0) -> None:
        """The last record (state stopped), waited for up to `timeout_s` (1 s when Kafka is known down: a stop
        is not held up for a record that cannot arrive)."""
        self.send("stopped")
        left = self.producer.flush(timeout_s if self.counts.kafka_connected else min(timeout_s, 1.0))
        if left:
            log.warning("kafka://%s: the gateway's last health record (stopped) not confirmed within %g s",
                        self.config.kafka.bootstrap, timeout_s)
