"""Bridge metrics are served over HTTP in the Prometheus text format, per bridge registry."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from swarm_bridge.metrics import BridgeMetrics


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_counts_and_latency_are_scraped() -> None:
    metrics = BridgeMetrics()
    port = metrics.serve(0)
    try:
        route = "route ros:/amr/odom -> mqtt:swarm/f/amr/telemetry/odometry"
        counts = {"received": 0, "sent": 0}
        metrics.watch_route(route, lambda: counts, lambda: {"rate limit": 2})
        counts["received"] = 3  # read when scraped, not when registered
        metrics.spool_records.set(7)
        metrics.uplink_connected.labels("mqtt://127.0.0.1:1883").set(1)
        metrics.latency.labels(route).observe(0.0004)
        samples = _scrape(port)
    finally:
        metrics.close()
    assert samples[("swarm_bridge_route_records_total", (("event", "received"), ("route", route)))] == 3
    assert samples[("swarm_bridge_route_dropped_total", (("reason", "rate limit"), ("route", route)))] == 2
    assert samples[("swarm_bridge_spool_records", ())] == 7
    assert samples[("swarm_bridge_uplink_connected", (("uplink", "mqtt://127.0.0.1:1883"),))] == 1
    assert samples[("swarm_bridge_uplink_latency_seconds_bucket", (("le", "0.0005"), ("route", route)))] == 1
    assert samples[("swarm_bridge_uplink_latency_seconds_bucket", (("le", "0.00025"), ("route", route)))] == 0


def test_two_bridges_do_not_share_counts() -> None:
    first, second = BridgeMetrics(), BridgeMetrics()
    first.watch_route("r", lambda: {"sent": 1}, dict)
    assert second.registry.get_sample_value("swarm_bridge_route_records_total", {"route": "r", "event": "sent"}) \
        is None


def test_taken_port_is_named() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        with pytest.raises(OSError, match=f"metrics: cannot listen on 127.0.0.1:{port}"):
            BridgeMetrics().serve(port)
