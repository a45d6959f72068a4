"""The gateway's latency histogram: observed in batches of nanoseconds, exposed as Prometheus histograms are."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from swarm_bridge.gateway.metrics import GatewayMetrics, LatencyHistogram
from swarm_bridge.metrics import LATENCY_BUCKETS_S


def _lines(registry: CollectorRegistry, name: str) -> list[str]:
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if line.startswith(name) and "_created" not in line]


def test_batched_observations_expose_what_prometheus_histogram_would() -> None:
    """Same buckets (a value on a bound counts in that bucket), count and sum (here summed exactly, in integer
    nanoseconds) as prometheus_client's Histogram."""
    values_ns = [0, 100_000, 100_001, 2_500_000, 1_000_000_000, 10_000_000_001]
    ours = CollectorRegistry()
    histogram = LatencyHistogram("lat_seconds", "latency", LATENCY_BUCKETS_S)
    ours.register(histogram)
    now = 20_000_000_000
    histogram.observe_since(now, [now - v for v in values_ns[:2]])
    histogram.observe_since(now, [now - v for v in values_ns[2:]])
    histogram.observe_since(now, [])
    theirs = CollectorRegistry()
    reference = Histogram("lat_seconds", "latency", buckets=LATENCY_BUCKETS_S, registry=theirs)
    for value in values_ns:
        reference.observe(value / 1e9)
    mine, reference_lines = _lines(ours, "lat_seconds"), _lines(theirs, "lat_seconds")
    assert mine[:-1] == reference_lines[:-1]  # buckets and count
    assert mine[-1].startswith("lat_seconds_sum ") and reference_lines[-1].startswith("lat_seconds_sum ")
    assert abs(float(mine[-1].split()[1]) - float(reference_lines[-1].split()[1])) < 1e-9


def test_gateway_exposes_its_latency_histogram() -> None:
    metrics = GatewayMetrics()
    metrics.latency.observe_since(5_000_000, [4_000_000])
    text = generate_latest(metrics.registry).decode()
    assert 'swarm_gateway_latency_seconds_bucket{le="0.001"} 1.0' in text
    assert "swarm_gateway_latency_seconds_count 1.0" in text and "swarm_gateway_latency_seconds_sum 0.001" in text
