"""The page's gateways without brokers: each gateway's newest health record, judged up, stale (no record for three
of its intervals) or stopped, bounded in number; a page with none says why."""

from __future__ import annotations

import json

from swarm_bridge.fleetweb.gateways import GatewayBoard, verdict
from swarm_bridge.fleetweb.model import FleetPage, PageLimits
from swarm_bridge.routing.gateway_health import GatewayHealth

S = 1_000_000_000
NOW = 1_700_000_000 * S


def health(gateway_id: str = "hub_1", *, state: str = "up", at_ns: int = NOW, records_up: int = 10,
           interval_s: float = 2.0) -> GatewayHealth:
    return GatewayHealth(gateway_id=gateway_id, fleet="f", state=state, at_ns=at_ns, started_ns=NOW - 60 * S,
                         interval_s=interval_s, mqtt_connected=True, kafka_connected=True, messages=12,
                         records_up=records_up, records_up_per_s=5.0, commands_down=3, commands_down_per_s=0.5,
                         duplicates=1, below_window=0, drops={"dead letter: unroutable": 2}, inflight=1, held=0)


def test_up_until_three_intervals_pass_without_a_record_then_stale() -> None:
    record = health(interval_s=2.0)
    assert verdict(record, NOW, NOW + 6 * S) == "up"
    assert verdict(record, NOW, NOW + 6 * S + 1) == "stale"
    assert verdict(health(state="stopped"), NOW, NOW + 3600 * S) == "stopped"


def test_the_board_keeps_each_gateways_newest_record_and_shows_its_figures() -> None:
    board = GatewayBoard(limit=10)
    board.on_health(health(records_up=20, at_ns=NOW + S), NOW + S)
    board.on_health(health(records_up=10, at_ns=NOW), NOW)  # older, read late: changes nothing
    board.on_health(health("hub_0"), NOW)
    rows = board.rows(NOW + 2 * S)
    assert [r["gateway_id"] for r in rows] == ["hub_0", "hub_1"]
    row = rows[1]
    assert (row["state"], row["records_up"], row["last_heard_s"], row["up_for_s"]) == ("up", 20, 1.0, 61.0)
    assert (row["drops"], row["dropped"], row["duplicates"]) == ({"dead letter: unroutable": 2}, 2, 1)
    board.on_health(health(state="stopped", at_ns=NOW + 3 * S), NOW + 3 * S)
    assert board.rows(NOW + 3600 * S)[1]["state"] == "stopped"
    assert board.rows(NOW + 3600 * S)[0]["state"] == "stale"


def test_gateways_are_bounded_and_the_page_says_why_it_shows_none() -> None:
    page = FleetPage(fleet="f", stale_after_ns=10 * S, limits=PageLimits(gateways=2))
    page.gateways.note = "none on a single site"
    empty = page.snapshot(NOW)["gateways"]
    assert empty == {"note": "none on a single site", "rows": []}
    for n in range(5):
        page.on_gateway(health(f"hub_{n}"), NOW)
    snap = page.snapshot(NOW)
    assert [r["gateway_id"] for r in snap["gateways"]["rows"]] == ["hub_0", "hub_1"]
    assert snap["drops"] == {"gateway over the page's limit": 3}
    json.dumps(snap, allow_nan=False)
