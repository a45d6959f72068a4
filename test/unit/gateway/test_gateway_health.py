"""The gateway's health record without brokers: made from the gateway's own counts (what /metrics serves), rates
over the last interval, drops by reason as /metrics labels them, and read back field by field."""

from __future__ import annotations

import json

import pytest

from swarm_bridge.config import GatewayConfig, validate_config
from swarm_bridge.config.errors import ConfigError
from swarm_bridge.gateway.health import Sample, drops_of, health_of, health_topic
from swarm_bridge.gateway.metrics import GatewayCounts
from swarm_bridge.routing.errors import HealthError
from swarm_bridge.routing.gateway_health import parse_gateway_health

S = 1_000_000_000
NOW = 1_700_000_000 * S
CONFIG = validate_config({"gateway_id": "hub_1", "fleet": "f", "health": {"interval_s": 2}}, GatewayConfig)


def counts() -> GatewayCounts:
    c = GatewayCounts(messages=120, records=130, produced=100, duplicates=7, below_window=2, commands=40,
                      commands_dead=1, inflight=3, held=4, backpressure=True, mqtt_connected=True,
                      kafka_connected=True)
    c.dead["unroutable"] = 5
    c.dead["bad_framing"] = 0
    c.chunk_drops["expired"] = 2
    return c


def test_the_record_is_the_counts_with_rates_over_the_last_interval() -> None:
    c = counts()
    first = health_of(c, config=CONFIG, state="up", now_ns=NOW, started_ns=NOW - 10 * S,
                      sample=Sample(50 * S, c.produced, c.commands), previous=None, commands_pending=6)
    assert (first.gateway_id, first.fleet, first.state, first.interval_s) == ("hub_1", "f", "up", 2.0)
    assert (first.records_up, first.commands_down, first.duplicates, first.below_window) == (100, 40, 7, 2)
    assert (first.records_up_per_s, first.commands_down_per_s) == (10.0, 4.0)  # since start: 10 s
    assert (first.inflight, first.held, first.backpressure, first.commands_pending) == (3, 4, True, 6)
    c.produced, c.commands = 150, 41
    second = health_of(c, config=CONFIG, state="up", now_ns=NOW + 2 * S, started_ns=NOW - 10 * S,
                       sample=Sample(52 * S, c.produced, c.commands), previous=Sample(50 * S, 100, 40))
    assert (second.records_up_per_s, second.commands_down_per_s) == (25.0, 0.5)


def test_drops_are_named_as_metrics_labels_them_and_zero_reasons_are_left_out() -> None:
    assert drops_of(counts()) == {"dead letter: unroutable": 5, "dead letter: command": 1,
                                  "chunked record: expired": 2}
    assert drops_of(GatewayCounts()) == {}


def test_a_stopped_record_says_its_links_are_down() -> None:
    c = counts()
    last = health_of(c, config=CONFIG, state="stopped", now_ns=NOW, started_ns=NOW - S,
                     sample=Sample(S, c.produced, c.commands), previous=None)
    assert last.state == "stopped" and not last.mqtt_connected and not last.kafka_connected


def test_the_record_reads_back_as_written() -> None:
    c = counts()
    record = health_of(c, config=CONFIG, state="up", now_ns=NOW, started_ns=NOW - S,
                       sample=Sample(S, c.produced, c.commands), previous=None)
    assert parse_gateway_health(record.payload()) == record
    newer = {**json.loads(record.payload()), "something_new": 1}  # a newer writer's extra field is ignored
    assert parse_gateway_health(json.dumps(newer).encode()) == record


@pytest.mark.parametrize(("change", "named"), [
    ({"state": "dancing"}, "state must be up or stopped"),
    ({"records_up": -1}, "records_up must be a count >= 0"),
    ({"interval_s": 0}, "interval_s must be seconds > 0"),
    ({"drops": {"x": "many"}}, "drops must be reason -> count"),
    ({"kafka_connected": 1}, "kafka_connected must be true or false"),
    ({"version": 2}, "version 2, this reader knows 1"),
])
def test_a_bad_record_is_refused_naming_the_field(change: dict[str, object], named: str) -> None:
    c = counts()
    doc = json.loads(health_of(c, config=CONFIG, state="up", now_ns=NOW, started_ns=NOW, sample=Sample(
        0, 0, 0), previous=None).payload())
    with pytest.raises(HealthError, match=named):
        parse_gateway_health(json.dumps({**doc, **change}).encode())
    with pytest.raises(HealthError, match="not UTF-8 JSON"):
        parse_gateway_health(b"\xff{")


def test_the_health_topic_is_compacted_and_must_be_its_own() -> None:
    spec = health_topic(CONFIG.health)  # type: ignore[arg-type]
    assert (spec.name, spec.partitions, spec.config["cleanup.policy"]) == ("fleet.health.gateway", 1, "compact,delete")
    assert validate_config({"gateway_id": "g", "fleet": "f", "health": None}, GatewayConfig).health is None
    with pytest.raises(ConfigError, match=r"health\.topic 'fleet\.dlq' is also a command or DLQ topic"):
        validate_config({"gateway_id": "g", "fleet": "f", "health": {"topic": "fleet.dlq"}}, GatewayConfig)
    with pytest.raises(ConfigError, match="interval_s"):
        validate_config({"gateway_id": "g", "fleet": "f", "health": {"interval_s": 0}}, GatewayConfig)
