"""Pause and resume of VDA 5050 vehicles without a broker: the request read and checked, why a robot cannot be
paused (named, by kind), the Kafka record for the gateway's down rule (schema-valid startPause/stopPause), the
request on the submit topic's shard of the robot, `state.paused` in the fleet view and `fleet status`, and the CLI's
refusal from the config alone; the fleet page row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from vda_docs import state_doc

from swarm_bridge.cli import main as cli_main
from swarm_bridge.config import CoordinatorConfig, validate_config
from swarm_bridge.coordinator.core.events import TaskBook
from swarm_bridge.coordinator.core.fleet import FleetView, RobotView
from swarm_bridge.coordinator.core.pause import (
    MalformedPause,
    PauseRequest,
    config_refusal,
    parse_pause,
    pause_doc,
    pause_refusal,
)
from swarm_bridge.coordinator.core.table import fleet_tables
from swarm_bridge.coordinator.kafka import snapshot
from swarm_bridge.coordinator.kafka.vda import KafkaVda
from swarm_bridge.coordinator.site.wire import SiteTopics
from swarm_bridge.fleetweb.model import FleetPage, PageLimits
from swarm_bridge.routing.sharding import shard_of
from swarm_bridge.vda5050 import OfficialSchemas

MANUFACTURERS = {"acme": "agv"}


def raw(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_a_pause_request_is_read_and_anything_else_is_left_alone() -> None:
    assert parse_pause(raw(pause_doc("acme/agv1", True, "aisle blocked"))) == PauseRequest(
        "acme/agv1", True, "aisle blocked")
    assert parse_pause(raw(pause_doc("acme/agv1", False, reply="r1"))) == PauseRequest("acme/agv1", False, "", "r1")
    assert parse_pause(raw({"pause": "acme/agv1"})) == PauseRequest("acme/agv1", True)  # paused by default
    assert PauseRequest("a/b", True).action == "startPause" and PauseRequest("a/b", False).action == "stopPause"
    # submissions and cancels (even one naming "pause") and what is no JSON are none of its business
    for other in (raw({"task_id": "t1", "kind": "pause", "parameters": {"pause": "1"}}), raw({"cancel": "t1"}),
                  b'{"pause": ', b"\xc3\x01pause", raw(["pause"])):
        assert parse_pause(other) is None


@pytest.mark.parametrize(("doc", "field"), [
    ({"pause": ""}, "pause"), ({"pause": 7}, "pause"), ({"pause": "a/b", "paused": "yes"}, "paused"),
    ({"pause": "a/b", "reason": 3}, "reason"), ({"pause": "a/b", "reply": ["x"]}, "reply"),
])
def test_a_malformed_pause_request_names_its_field(doc: dict[str, object], field: str) -> None:
    with pytest.raises(MalformedPause, match=f"pause request: {field}: expected") as caught:
        parse_pause(raw(doc))
    assert caught.value.field == field


def test_the_config_alone_refuses_what_can_be_no_vehicle_of_it() -> None:
    assert config_refusal("acme/agv1", MANUFACTURERS) is None
    cases = [("acme/agv1", None, "no vda5050 section", "acme/agv1: this coordinator drives no VDA 5050"),
             ("amr_1", MANUFACTURERS, "not a vehicle id", "amr_1: not a VDA 5050 vehicle id; give it as "
              "MANUFACTURER/SERIAL"),
             ("acme/a/b", MANUFACTURERS, "not a vehicle id", "acme/a/b: not a VDA 5050 vehicle id"),
             ("other/agv1", MANUFACTURERS, "unknown manufacturer", "other/agv1: manufacturer 'other' is not in "
              "vda5050.manufacturers (acme)")]
    for robot_id, manufacturers, kind, text in cases:
        refusal = config_refusal(robot_id, manufacturers)
        assert refusal is not None and refusal.kind == kind and str(refusal).startswith(text), refusal


def test_only_a_vehicle_whose_state_was_seen_is_paused() -> None:
    fleet = FleetView()
    fleet.put(RobotView("amr_1", kind="amr"))
    fleet.put(RobotView("acme/agv1", kind="agv"))
    assert pause_refusal("acme/agv1", MANUFACTURERS, {"acme/agv1"}, fleet) is None
    swarm = pause_refusal("amr_1", MANUFACTURERS, {"acme/agv1"}, fleet)
    assert swarm is not None and swarm.kind == "not a vda5050 vehicle"
    assert str(swarm).startswith("amr_1: a swarm_bridge robot, not a VDA 5050 vehicle")
    unseen = pause_refusal("acme/agv9", MANUFACTURERS, {"acme/agv1"}, fleet)
    assert unseen is not None and unseen.kind == "unknown vehicle"
    assert str(unseen) == "acme/agv9: no VDA 5050 vehicle of this id has reported a state; known: acme/agv1"
    nothing = pause_refusal("acme/agv1", None, (), FleetView())
    assert nothing is not None and nothing.kind == "no vda5050 section"


def kafka_config(tmp_path: Path, **vda: object) -> CoordinatorConfig:
    return validate_config({"fleet": "f", "shards": 4, "kafka": {"port": 9092}, "registry": str(tmp_path / "reg"),
                            "capabilities": {"agv": ["navigate"]},
                            "vda5050": {"manufacturers": MANUFACTURERS, "kafka_topic": "v.{stream}", **vda}},
                           CoordinatorConfig)


@pytest.mark.parametrize("fmt", ["avro", "json"])
def test_the_kafka_coordinator_writes_pauses_for_the_gateway_and_reads_paused_back(
        tmp_path: Path, vda5050_schemas: Path, fmt: str) -> None:
    book = TaskBook()
    vda = KafkaVda(kafka_config(tmp_path, kafka_format=fmt), lambda: book)
    fleet = FleetView()
    vda.fold("v.state", b"acme/agv1", raw(state_doc()), fleet, 1)
    records = [vda.pause("acme/agv1", paused, 2) for paused in (True, False)]
    assert [(r.topic, r.key, r.value[:1]) for r in records] == [("v.instantActions", "acme/agv1",
                                                                  b"\x00" if fmt == "avro" else b"{")] * 2
    docs = [vda.records.read(r.value, "instantActions")[1] if fmt == "avro" else json.loads(r.value)
            for r in records]
    schemas = OfficialSchemas(vda5050_schemas)
    assert [schemas.problems("instantActions", doc) for doc in docs] == [[], []]
    assert [doc["actions"][0]["actionType"] for doc in docs] == ["startPause", "stopPause"]
    assert not fleet.get("acme/agv1").paused  # type: ignore[union-attr]
    vda.fold("v.state", b"acme/agv1", raw(state_doc(header_id=1, paused=True)), fleet, 3)
    assert fleet.get("acme/agv1").paused  # type: ignore[union-attr]
    assert "idle, paused" in fleet_tables(fleet, book, now_ns=3, stale_after_ns=10**12, max_tasks=5)
    vda.close()


def test_the_site_listens_for_pause_requests_and_answers_per_request() -> None:
    topics = SiteTopics("fleet", "f")
    assert topics.subscriptions[topics.pause] == "pause"
    assert topics.pause == "fleet/f/coordinator/vehicles/pause"
    assert topics.pause_result("r1") == "fleet/f/coordinator/vehicles/result/r1"


def test_the_cli_refuses_at_once_without_a_vda5050_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    doc = {"fleet": "f", "shards": 2, "kafka": {"port": 9}, "capabilities": {"agv": ["navigate"]}}
    path.write_text(yaml.safe_dump(doc))
    assert cli_main(["fleet", "pause", "--config", str(path), "--robot-id", "acme/agv1"]) == 2
    assert "fleet pause: acme/agv1: this coordinator drives no VDA 5050 vehicles" in capsys.readouterr().err
    assert cli_main(["fleet", "resume", "--config", str(path), "--robot-id", "amr_7"]) == 2
    assert "fleet resume: amr_7: this coordinator drives no VDA 5050 vehicles" in capsys.readouterr().err


def test_every_pause_option_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("pause", "resume"):
        with pytest.raises(SystemExit):
            cli_main(["fleet", name, "--help"])
        text = capsys.readouterr().out
        for option in ("--config", "--set", "--robot-id", "--reason"):
            assert option in text
        assert "startPause" in text if name == "pause" else "stopPause" in text


def test_the_fleet_page_row_says_paused() -> None:
    page = FleetPage(fleet="f", stale_after_ns=10**10, limits=PageLimits())
    page.fleet.put(RobotView("acme/agv1", kind="agv", paused=True, last_seen_ns=1))
    page.fleet.put(RobotView("amr_1", kind="amr", last_seen_ns=1))
    assert {r["robot_id"]: r["paused"] for r in page.snapshot(2)["robots"]} == {"acme/agv1": True, "amr_1": False}


class _Producer:
    """Stands in for the Kafka producer: keeps what was produced."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None, int]] = []

    def produce(self, topic: str, value: bytes | None, key: bytes | None, partition: int) -> None:
        self.records.append((topic, value, key, partition))

    def flush(self, _timeout_s: float) -> int:
        return 0


def test_a_pause_goes_to_the_submit_partition_of_the_robots_shard(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    producer = _Producer()
    monkeypatch.setattr(snapshot, "kafka_producer", lambda _settings, _log: producer)
    config = kafka_config(tmp_path)
    for robot_id in ("acme/agv1", "acme/agv2", "acme/agv3"):
        assert snapshot.pause_vehicle(config, robot_id, robot_id != "acme/agv2", "why") == 0
    assert [(t, k, p) for t, _v, k, p in producer.records] == [
        (config.topics.submit, r.encode(), shard_of(r, 4)) for r in ("acme/agv1", "acme/agv2", "acme/agv3")]
    assert [parse_pause(v or b"") for _t, v, _k, _p in producer.records] == [
        PauseRequest("acme/agv1", True, "why"), PauseRequest("acme/agv2", False, "why"),
        PauseRequest("acme/agv3", True, "why")]
