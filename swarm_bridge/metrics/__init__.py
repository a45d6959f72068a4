"""Prometheus metrics (prometheus-client) of the bridge processes."""

from swarm_bridge.metrics.bridge import LATENCY_BUCKETS_S, BridgeMetrics

__all__ = ["LATENCY_BUCKETS_S", "BridgeMetrics"]
