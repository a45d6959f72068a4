"""Prometheus metrics of a bridge process: per-route counts, drops by reason, spool depth, uplink state, latency."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from swarm_bridge.metrics.endpoint import MetricsEndpoint

__all__ = ["LATENCY_BUCKETS_S", "BridgeMetrics"]

# From 0.1 ms to 10 s: ROS receive -> broker acknowledgement on a LAN is sub-ms to tens of ms.
LATENCY_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class BridgeMetrics(MetricsEndpoint):
    """One registry per bridge (not the global one), so several bridges or tests never share counts."""

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self._routes: list[tuple[str, Callable[[], Mapping[str, int]], Callable[[], Mapping[str, int]]]] = []
        self._volumes: list[tuple[str, Callable[[], Mapping[str, int]]]] = []
        self.registry.register(_RouteCounts(self._routes))
        self.registry.register(_RouteBytes(self._volumes))
        self.spool_records = Gauge("swarm_bridge_spool_records", "Records waiting in the spool",
                                   registry=self.registry)
        self.spool_bytes = Gauge("swarm_bridge_spool_bytes", "Bytes waiting in the spool", registry=self.registry)
        self.uplink_connected = Gauge("swarm_bridge_uplink_connected", "1 while the uplink is connected",
                                      ["uplink"], registry=self.registry)
        self.budget_rate = Gauge("swarm_bridge_budget_bytes_per_second", "The uplink budget (0: none)",
                                 registry=self.registry)
        self.budget_queued = Gauge("swarm_bridge_budget_queued_bytes", "Lower-priority bytes waiting for the "
                                   "budget's tokens", registry=self.registry)
        self._link_counts: list[Callable[[], Mapping[str, int]]] = []
        self.registry.register(_LinkCounts(self._link_counts))
        self.latency = Histogram("swarm_bridge_uplink_latency_seconds",
                                 "ROS receive to broker acknowledgement", ["route"],
                                 buckets=LATENCY_BUCKETS_S, registry=self.registry)

    def watch_route(self, route: str, records: Callable[[], Mapping[str, int]],
                    dropped: Callable[[], Mapping[str, int]]) -> None:
        """Serve a route's counts, read when scraped: the route keeps plain ints on its hot path (a
        prometheus counter per message cost about 1.6 us of every Odometry the bridge carries)."""
        self._routes.append((route, records, dropped))

    def watch_bytes(self, route: str, volume: Callable[[], Mapping[str, int]]) -> None:
        """Serve a route's byte counts by stage (encoded: before compression; sent: on the wire), read when
        scraped: rate() of them is bytes/s per route, sent / encoded the compression ratio."""
        self._volumes.append((route, volume))


    def watch_uplink(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Serve the uplink's own counts by event, read when scraped (e.g. ack_timeouts: reconnects because the
        broker left a publish unacknowledged on a live connection)."""
        self._link_counts.append(counts)


class _LinkCounts(Collector):
    """swarm_bridge_uplink_events_total{event}: what the uplink's client counted (ack_timeouts, ...)."""

    def __init__(self, sources: list[Callable[[], Mapping[str, int]]]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Any]:
        family = CounterMetricFamily("swarm_bridge_uplink_events", "Events of the uplink's client: ack_timeouts "
                                     "(a publish left unacknowledged on a live connection: session resumed, resent)",
                                     labels=["event"])
        for counts in list(self._sources):
            for event, value in counts().items():
                family.add_metric([event], value)
        yield family


class _RouteCounts(Collector):
    """swarm_bridge_route_records_total{route,event} and swarm_bridge_route_dropped_total{route,reason}."""

    def __init__(self, routes: list[tuple[str, Callable[[], Mapping[str, int]], Callable[[], Mapping[str, int]]]]
                 ) -> None:
        self._routes = routes

    def collect(self) -> Iterator[Any]:
        records = CounterMetricFamily("swarm_bridge_route_records", "Records per route and event (received from "
                                      "ROS or the uplink, sent upstream or published on ROS)",
                                      labels=["route", "event"])
        dropped = CounterMetricFamily("swarm_bridge_route_dropped", "Records dropped per route and reason",
                                      labels=["route", "reason"])
        for route, events, reasons in list(self._routes):
            for event, value in events().items():
                records.add_metric([route, event], value)
            for reason, value in reasons().items():
                dropped.add_metric([route, reason], value)
        yield records
        yield dropped


class _RouteBytes(Collector):
    """swarm_bridge_route_bytes_total{route,stage}: bytes per route before compression (encoded) and sent."""

    def __init__(self, volumes: list[tuple[str, Callable[[], Mapping[str, int]]]]) -> None:
        self._volumes = volumes

    def collect(self) -> Iterator[Any]:
        family = CounterMetricFamily("swarm_bridge_route_bytes", "Record bytes per route: encoded (before "
                                     "compression) and sent (after compression, chunk headers included)",
                                     labels=["route", "stage"])
        for route, volume in list(self._volumes):
            for stage, value in volume().items():
                family.add_metric([route, stage], value)
        yield family
