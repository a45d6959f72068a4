"""Prometheus metrics of a coordinator instance: tasks per state, assignment latency, robots online, drops."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["CoordinatorMetrics"]

LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class CoordinatorMetrics:
    """One registry per instance, so tests and several instances in one process don't collide."""

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
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

    def serve(self, port: int, *, address: str = "127.0.0.1") -> int:
        """Expose /metrics on `address:port` (0 = a free port) in a daemon thread; returns the port."""
        try:
            server, _thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise OSError(f"metrics: cannot listen on {address}:{port} ({exc.strerror}); "
                          "choose another metrics port") from None
        bound: int = server.server_address[1]
        return bound
