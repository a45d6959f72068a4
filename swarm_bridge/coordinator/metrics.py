"""Prometheus metrics of a coordinator instance: tasks per state, assignment latency, robots online, drops."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from swarm_bridge.metrics.endpoint import MetricsEndpoint

__all__ = ["HOPS", "HOP_BUCKETS_S", "CoordinatorMetrics"]

LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
HOP_BUCKETS_S = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15,
                 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
"""Finer buckets for the hops of a task round trip, which are tens of milliseconds each."""
HOPS = {
    "submit consumed": "task request produced (its record's CreateTime) -> read by the instance",
    "round": "request or status read -> its round's transaction begins (decisions, encoding)",
    "commit": "the round's transaction begins -> committed (records, offsets, markers; after the round before it)",
    "status consumed": "robot sent a TaskStatus (its envelope stamp) -> read by the instance",
}
"""The hops of `swarm_coordinator_task_hop_seconds`: where a task's round trip spends its time in the coordinator."""


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
        self.hops = Histogram("swarm_coordinator_task_hop_seconds",
                              "Time per hop of a task round trip in the coordinator (hop: " + "; ".join(
                                  f"{k}: {v}" for k, v in HOPS.items()) + ")", ["hop"], buckets=HOP_BUCKETS_S,
                              registry=self.registry)
        self.transactions = Counter("swarm_coordinator_transactions_total", "Transactions committed",
                                    registry=self.registry)
        self.restarts = Counter("swarm_coordinator_restarts_total", "Instances started again in the process after "
                                "Kafka ended one (fenced after a failover)", registry=self.registry)
