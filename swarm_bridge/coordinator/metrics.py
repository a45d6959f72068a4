"""Prometheus metrics of a coordinator instance: tasks per state, assignment latency, robots online, drops."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from swarm_bridge.metrics.endpoint import MetricsEndpoint

__all__ = ["CoordinatorMetrics"]

LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class CoordinatorMetrics(MetricsEndpoint):
    """One registry per instance, so tests and several instances in one process don't collide."""

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self.tasks = Gauge("swarm_coordinator_tasks", "Tasks known, by state", ["state"], registry=self.registry)
        self.latency = Histogram("swarm_coordinator_assignment_latency_seconds",
                                 "Task request produced -> its first assignment committed", buckets=LATENCY_BUCKETS_S,
                                 registry=self.registry)
        self.robots_online = Gauge("swarm_coordinator_robots_online", "Robots reachable now", registry=self.registry)
        self.shards_owned = Gauge("swarm_coordinator_shards_owned", "Shards this instance owns",
                                  registry=self.registry)
        self.commands = Counter("swarm_coordinator_commands_total", "Commands sent", ["action"],
                                registry=self.registry)
        self.dropped = Counter("swarm_coordinator_dropped_total", "Inputs refused or dropped, by reason",
                               ["reason"], registry=self.registry)
        self.transactions = Counter("swarm_coordinator_transactions_total", "Transactions committed",
                                    registry=self.registry)
