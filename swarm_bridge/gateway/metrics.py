"""The gateway's counts and Prometheus metrics: plain ints on the hot path, read by a collector at scrape time."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from swarm_bridge.metrics import LATENCY_BUCKETS_S
from swarm_bridge.metrics.endpoint import MetricsEndpoint

__all__ = ["GatewayCounts", "GatewayMetrics"]


@dataclass
class GatewayCounts:
    """What the gateway did since start; every record is counted in exactly one of produced/duplicate/dead."""

    messages: int = 0  # MQTT messages received
    records: int = 0  # records in them (a batch holds several)
    produced: int = 0  # records confirmed by Kafka (not counting dead letters)
    duplicates: int = 0  # records dropped as already in Kafka
    below_window: int = 0  # of the duplicates: older than the dedup window
    dead: Tally[str] = field(default_factory=Tally)  # dead letters confirmed, by reason
    redelivered: int = 0  # records librdkafka gave up on (or handed back to keep order), produced again
    acked: int = 0  # MQTT messages acked
    commands: int = 0  # commands published to MQTT and acked by the broker
    commands_dead: int = 0  # commands sent to the DLQ
    backpressure: bool = False
    mqtt_connected: bool = False
    kafka_connected: bool = False
    inflight: int = 0  # records produced and not yet confirmed
    held: int = 0  # records waiting to be produced (backpressure)
    broker_dropped: int = 0  # messages the MQTT broker says it dropped since its start (all clients; $SYS)

    def summary(self) -> str:
        dead = sum(self.dead.values())
        return (f"messages {self.messages}, records {self.records}, produced {self.produced}, duplicates "
                f"{self.duplicates}, dead letters {dead}, acked {self.acked}, commands {self.commands}")


class _Collector(Collector):
    def __init__(self, counts: GatewayCounts) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Any]:
        c = self.counts
        for name, doc, value in (
            ("mqtt_messages", "MQTT messages received", c.messages),
            ("records_received", "Records received (a batch message holds several)", c.records),
            ("records_produced", "Records confirmed by Kafka", c.produced),
            ("records_deduplicated", "Records dropped as duplicates", c.duplicates),
            ("records_redelivered", "Records produced again (given up or taken back)", c.redelivered),
            ("mqtt_acked", "MQTT messages acknowledged after Kafka confirmed them", c.acked),
            ("commands_forwarded", "Commands published to MQTT and acknowledged", c.commands),
        ):
            yield CounterMetricFamily(f"swarm_gateway_{name}", doc, value=value)
        dead = CounterMetricFamily("swarm_gateway_dead_letters", "Records sent to the DLQ, by reason",
                                   labels=["reason"])
        for reason, value in sorted(c.dead.items()):
            dead.add_metric([reason], value)
        dead.add_metric(["command"], c.commands_dead)
        yield dead
        for name, doc, value in (
            ("backpressure", "1 while the gateway holds MQTT messages because Kafka is slow or down",
             c.backpressure),
            ("mqtt_connected", "1 while connected to the MQTT broker", c.mqtt_connected),
            ("kafka_connected", "1 while Kafka answers", c.kafka_connected),
            ("inflight_records", "Records produced and not yet confirmed", c.inflight),
            ("held_records", "Records waiting to be produced", c.held),
            ("broker_dropped_messages", "Messages the MQTT broker reports it dropped since its start, all clients "
             "(queue and in-flight limits; $SYS/broker/publish/messages/dropped)", c.broker_dropped),
        ):
            yield GaugeMetricFamily(f"swarm_gateway_{name}", doc, value=float(value))


class GatewayMetrics(MetricsEndpoint):
    """One registry per gateway (never the global one): the counts and the MQTT -> Kafka latency."""

    def __init__(self, counts: GatewayCounts | None = None) -> None:
        self.counts = counts or GatewayCounts()
        super().__init__()
        self.registry.register(_Collector(self.counts))
        self.latency = Histogram("swarm_gateway_latency_seconds", "MQTT receive to Kafka confirmation of all "
                                 "the message's records", buckets=LATENCY_BUCKETS_S, registry=self.registry)
