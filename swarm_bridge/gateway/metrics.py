"""The gateway's counts and Prometheus metrics: plain ints on the hot path, read by a collector at scrape time."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from swarm_bridge.metrics import LATENCY_BUCKETS_S
from swarm_bridge.metrics.endpoint import MetricsEndpoint

__all__ = ["COMMAND_BUCKETS_S", "GatewayCounts", "GatewayMetrics", "LatencyHistogram"]

COMMAND_BUCKETS_S = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1,
                     0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
"""Buckets of the command hops (tens of milliseconds each: finer than the up path's)."""


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
    chunks_in: int = 0  # chunks received from robots
    chunked_records: int = 0  # records put together from chunks
    chunks_out: int = 0  # chunks written to Kafka (records larger than chunks.kafka_chunk_bytes)
    chunk_drops: Tally[str] = field(default_factory=Tally)  # chunked records dropped, by reason
    bytes_in: int = 0  # record bytes received (as sent: compressed, chunk headers included)
    bytes_out: int = 0  # record bytes handed to Kafka

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
            ("chunks_received", "Chunks of large records received", c.chunks_in),
            ("chunked_records", "Records put together from chunks", c.chunked_records),
            ("chunks_produced", "Chunks written to Kafka for records above chunks.kafka_chunk_bytes", c.chunks_out),
            ("bytes_received", "MQTT payload bytes received", c.bytes_in),
            ("bytes_produced", "Record bytes handed to Kafka", c.bytes_out),
        ):
            yield CounterMetricFamily(f"swarm_gateway_{name}", doc, value=value)
        dead = CounterMetricFamily("swarm_gateway_dead_letters", "Records sent to the DLQ, by reason",
                                   labels=["reason"])
        for reason, value in sorted(c.dead.items()):
            dead.add_metric([reason], value)
        dead.add_metric(["command"], c.commands_dead)
        yield dead
        drops = CounterMetricFamily("swarm_gateway_chunked_dropped", "Chunked records dropped whole, by reason "
                                    "(chunk lost, chunk corrupt, checksum mismatch, expired, reassembly full, ...)",
                                    labels=["reason"])
        for reason, value in sorted(c.chunk_drops.items()):
            drops.add_metric([reason], value)
        yield drops
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


class LatencyHistogram(Collector):
    """A Prometheus histogram of latencies observed in batches, in integer nanoseconds: one clock reading and
    one bisect per value (prometheus_client's Histogram takes a lock per bucket and per sum, ~1.5 us a value)."""

    def __init__(self, name: str, documentation: str, buckets_s: Iterable[float]) -> None:
        self.name, self.documentation = name, documentation
        self.bounds_s = sorted(float(b) for b in buckets_s)
        self._bounds_ns = [round(b * 1e9) for b in self.bounds_s]
        self._counts = [0] * (len(self._bounds_ns) + 1)  # per bucket (not cumulative), the last one +Inf
        self._sum_ns = 0

    def observe_since(self, now_ns: int, starts_ns: Iterable[int]) -> None:
        """Observe `now_ns - start` for each start (monotonic_ns readings)."""
        bounds, counts, total = self._bounds_ns, self._counts, 0
        for start in starts_ns:
            value = now_ns - start
            counts[bisect_left(bounds, value)] += 1
            total += value
        self._sum_ns += total

    def collect(self) -> Iterator[Any]:
        counts, cumulative, buckets = list(self._counts), 0, []
        for bound, count in zip([*self.bounds_s, float("inf")], counts, strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=self._sum_ns / 1e9)


class GatewayMetrics(MetricsEndpoint):
    """One registry per gateway (never the global one): the counts and the MQTT -> Kafka latency."""

    def __init__(self, counts: GatewayCounts | None = None) -> None:
        self.counts = counts or GatewayCounts()
        super().__init__()
        self.registry.register(_Collector(self.counts))
        self.latency = LatencyHistogram("swarm_gateway_latency_seconds", "MQTT receive to Kafka confirmation of "
                                        "all the message's records", LATENCY_BUCKETS_S)
        self.registry.register(self.latency)
        # the down path's hops of a task round trip (wall-clock ns: the command's stamp is the coordinator's)
        self.command_wait = LatencyHistogram("swarm_gateway_command_wait_seconds",
                                             "Command record produced (its CreateTime, inside the coordinator's "
                                             "transaction) to read by the gateway: commit, read_committed "
                                             "visibility and the fetch", COMMAND_BUCKETS_S)
        self.command_publish = LatencyHistogram("swarm_gateway_command_publish_seconds",
                                                "Command read from Kafka to the MQTT broker's PUBACK",
                                                COMMAND_BUCKETS_S)
        self.registry.register(self.command_wait)
        self.registry.register(self.command_publish)
