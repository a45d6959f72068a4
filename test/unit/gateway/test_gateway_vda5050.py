"""VDA 5050 messages on the gateway's up path, pure: a `payload: vda5050` rule keys a message by
manufacturer/serialNumber and heads it (vehicle, topic, headerId run) for duplicate removal; what is no VDA 5050
message becomes a dead letter; a vehicle's counter reset starts a new run (HeaderRuns)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vda_docs import connection_doc, state_doc

from swarm_bridge.codec.registry import FileRegistry
from swarm_bridge.config import GatewayConfig
from swarm_bridge.config.errors import ConfigError
from swarm_bridge.config.loader import validate_config
from swarm_bridge.gateway.dedup import DUPLICATE, NEW, Dedup
from swarm_bridge.gateway.kafka_to_mqtt import DOWN_PAYLOADS
from swarm_bridge.gateway.rules import UpRoute, down_routes, up_rules
from swarm_bridge.gateway.schemas import SchemaBook
from swarm_bridge.gateway.translate import Translator
from swarm_bridge.vda5050 import UNFIT_REASONS, HeaderRuns

RULE = {"mqtt": "uagv/v2/{manufacturer}/{robot_id}/{stream}", "where": {"stream": ["state", "connection"]},
        "kafka_topic": "vda5050.{stream}", "key": "{manufacturer}/{robot_id}", "payload": "vda5050"}


@pytest.fixture()
def translator(tmp_path: Path) -> Translator:
    return Translator(SchemaBook(FileRegistry(tmp_path / "registry")), max_payload=1 << 16)


def route(topic: str, **change: str) -> UpRoute:
    found = up_rules(GatewayConfig.model_validate({"gateway_id": "gw", "fleet": "f", "up": [{**RULE, **change}]})
                     ).route(topic)
    assert found is not None
    return found


def doc_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def test_a_vda5050_message_goes_on_as_avro_keyed_by_its_vehicle(translator: Translator) -> None:
    doc = state_doc("acme", "agv1", header_id=7)
    out = translator.translate(route("uagv/v2/acme/agv1/state"), doc_bytes(doc))
    assert out.dead == []
    [record] = out.records
    assert (record.topic, record.key) == ("vda5050.state", b"acme/agv1")
    assert record.value[:1] == b"\x00"  # Confluent Avro, registered under vda5050.state-value
    registry = translator.schemas.registry
    schema_id = int.from_bytes(record.value[1:5], "big")
    assert registry.latest("vda5050.state-value").id == schema_id
    assert translator.schemas.vda5050.read(record.value) == ("state", doc)
    assert record.head is not None and record.head[:3] == ("acme/agv1", "state", 7)
    [connection] = translator.translate(route("uagv/v2/acme/agv1/connection"),
                                        doc_bytes(connection_doc("acme", "agv1", header_id=3))).records
    assert connection.head is not None and connection.head[:3] == ("acme/agv1", "connection", 3)
    assert translator.schemas.vda5050.read(connection.value)[1]["connectionState"] == "ONLINE"


def test_vda5050_format_json_forwards_the_message_unchanged(translator: Translator) -> None:
    payload = doc_bytes(state_doc("acme", "agv1", header_id=7))
    out = translator.translate(route("uagv/v2/acme/agv1/state", vda5050_format="json"), payload)
    [record] = out.records
    assert (record.topic, record.key, record.value) == ("vda5050.state", b"acme/agv1", payload)


@pytest.mark.parametrize(("change", "reason", "text"), [
    ({"lastNodeSequenceId": "3"}, "vda5050_wrong_type", "lastNodeSequenceId: expected an integer"),
    ({"driving": "yes"}, "vda5050_wrong_type", "driving: expected true or false"),
    ({"orderUpdateId": 2**70}, "vda5050_out_of_range", "orderUpdateId"),
    ({"agvPosition": {"x": 1.0}}, "vda5050_missing_field", "agvPosition.y: required"),
])
def test_a_message_that_does_not_fit_avro_is_a_dead_letter_by_reason(translator: Translator, change: dict[str, Any],
                                                                       reason: str, text: str) -> None:
    out = translator.translate(route("uagv/v2/acme/agv1/state"), doc_bytes({**state_doc(), **change}))
    assert out.records == [] and [d.reason for d in out.dead] == [reason] and text in out.dead[0].detail
    assert translator.schemas.registry.subjects() == []  # nothing registered for a message that does not fit


@pytest.mark.parametrize(("payload", "reason", "text"), [
    (b"\xff", "bad_record", "not UTF-8 JSON"),
    (b"[]", "bad_record", "not a JSON object"),
    (doc_bytes({**state_doc(), "headerId": -1}), "bad_record", "headerId must be a uint32"),
    (doc_bytes({**state_doc(), "headerId": True}), "bad_record", "headerId must be a uint32"),
    (doc_bytes({**state_doc(), "timestamp": 5}), "bad_record", "timestamp must be a string"),
    (doc_bytes(state_doc(serial="agv2")), "envelope_mismatch", "serialNumber 'agv2' on the topic of 'agv1'"),
])
def test_what_is_no_vda5050_message_is_a_dead_letter(translator: Translator, payload: bytes, reason: str,
                                                     text: str) -> None:
    out = translator.translate(route("uagv/v2/acme/agv1/state"), payload)
    assert out.records == [] and [d.reason for d in out.dead] == [reason] and text in out.dead[0].detail


def test_a_counter_reset_starts_a_new_run_and_a_resend_keeps_its_seq() -> None:
    runs, dedup = HeaderRuns(), Dedup(window=64)

    def admit(header_id: int, stamp: str) -> int:
        return admit_on("state", header_id, stamp)

    def admit_on(topic: str, header_id: int, stamp: str) -> int:
        return dedup.admit("acme/agv1", topic, runs.seq("acme/agv1", topic, header_id, stamp))

    assert [admit(i, f"2026-12-06T10:00:0{i}.00Z") for i in range(3)] == [NEW] * 3
    assert admit(1, "2026-12-06T10:00:01.00Z") == DUPLICATE  # sent again: the same headerId and timestamp
    assert admit(0, "2026-12-06T10:00:05.00Z") == NEW  # restarted: counting from 0 again, later
    assert admit(1, "2026-12-06T10:00:06.00Z") == NEW
    assert admit(0, "2026-12-06T10:00:05.00Z") == DUPLICATE  # the new run's message again
    assert runs.seq("acme/agv1", "state", 2**32 - 1, "2026-12-06T10:00:07.00Z") == (1 << 32) + 2**32 - 1
    assert runs.seq("acme/agv1", "state", 0, "2026-12-06T10:00:08.00Z") == 2 << 32  # the uint32 wrapped
    assert runs.seq("acme/agv1", "connection", 0, "x") == 0  # each topic counts on its own
    # a topic that only ever sent headerId 0 (factsheet, retained) before the vehicle restarted
    assert admit_on("factsheet", 0, "2026-12-06T10:00:00.00Z") == NEW
    assert admit_on("factsheet", 0, "2026-12-06T10:00:00.00Z") == DUPLICATE  # the same message again
    assert admit_on("factsheet", 0, "2026-12-06T10:05:00.00Z") == NEW  # restarted: headerId 0, later
    assert admit_on("factsheet", 0, "2026-12-06T10:00:00.00Z") == DUPLICATE  # the first one, late


def test_vda5050_formats_belong_to_vda5050_rules_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="json_format: avro needs payload: record"):
        validate_config({"gateway_id": "gw", "fleet": "f", "up": [{**RULE, "json_format": "avro"}]}, GatewayConfig)
    with pytest.raises(ConfigError, match="vda5050_format: json needs payload: vda5050"):
        validate_config({"gateway_id": "gw", "fleet": "f", "up": [{**RULE, "payload": "raw",
                                                                   "vda5050_format": "json"}]}, GatewayConfig)


def test_a_vda5050_down_rule_sends_each_message_to_its_vehicle_as_json(translator: Translator) -> None:
    config = GatewayConfig.model_validate({"gateway_id": "gw", "fleet": "f", "down": [
        {"kafka_topic": "vda5050.order", "mqtt": "uagv/v2/{robot_id}/order", "payload": "vda5050"}]})
    [down] = down_routes(config)
    assert down.mqtt_topic("acme/agv1") == "uagv/v2/acme/agv1/order" and down.vda5050_topic == "order"
    for key in ("agv1", "acme/agv/1", "acme/", "acme/a+b"):
        with pytest.raises(ValueError, match="is not a VDA 5050 vehicle: manufacturer/serialNumber"):
            down.mqtt_topic(key)
    schemas = translator.schemas
    publish = DOWN_PAYLOADS["vda5050"]
    order = ORDER
    as_avro = schemas.vda5050.avro("vda5050.order", "order", order)
    payload, content_type, props = publish(as_avro, "acme/agv1", schemas, down)
    assert json.loads(payload) == order and (content_type, props) == ("application/json", [])
    as_json = doc_bytes(order)
    assert publish(as_json, "acme/agv1", schemas, down) == (as_json, "application/json", [])  # JSON as it is
    state = schemas.vda5050.avro("vda5050.state", "state", state_doc())
    for value, key, text in ((b"{", "acme/agv1", "not UTF-8 JSON"), (b"7", "acme/agv1", "neither Confluent Avro"),
                             (as_avro, "acme/agv2", "the message is for acme/agv1, its record key acme/agv2"),
                             (as_json, "acme/agv2", "the message is for acme/agv1, its record key acme/agv2"),
                             (state, "acme/agv1", "record of vda5050.v2.State where a order is expected"),
                             (b"\x00\x00\x00\x03\x99", "acme/agv1", "unknown schema")):
        with pytest.raises(ValueError, match=text):
            publish(value, key, schemas, down)


ORDER: dict[str, Any] = {
    "headerId": 0, "timestamp": "2026-12-06T10:00:00.00Z", "version": "2.1.0", "manufacturer": "acme",
    "serialNumber": "agv1", "orderId": "o1", "orderUpdateId": 0,
    "nodes": [{"nodeId": "a", "sequenceId": 0, "released": True, "nodePosition": {"x": 0.0, "y": 0.0, "mapId": "m"},
               "actions": [{"actionId": "p", "actionType": "pick", "blockingType": "HARD",
                            "actionParameters": [{"key": "sku", "value": "A7"}, {"key": "n", "value": 3},
                                                 {"key": "slots", "value": [1, "b"]}]}]}],
    "edges": []}


_JSON = st.recursive(st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                     | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                   max_size=3), max_leaves=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.lists(st.sampled_from(["agvPosition", "x", "nodeStates", 0, "actionStates", "errors", "batteryState",
                                      "loads", "sequenceId", "zz"]), max_size=3),
       value=_JSON | st.just("\ud800"))
def test_any_change_to_a_state_gives_a_record_or_a_dead_letter(translator: Translator, path: list[Any],
                                                               value: Any) -> None:
    """A valid state with one value anywhere replaced by any JSON value (a lone surrogate too): a record that reads
    back as the message, or a dead letter with a reason; never an exception."""
    doc: Any = state_doc(nodes=[("n", 2)], actions=[("a", "pick", "RUNNING")])
    target = doc
    for step in path[:-1]:
        target = target.get(step) if isinstance(target, dict) else (
            target[step] if isinstance(target, list) and isinstance(step, int) and step < len(target) else None)
    if isinstance(target, dict) and path:
        target[path[-1]] = value
    payload = json.dumps(doc).encode("utf-8", "surrogatepass")
    out = translator.translate(route("uagv/v2/acme/agv1/state"), payload)
    assert len(out.records) + len(out.dead) == 1
    if out.records:
        assert translator.schemas.vda5050.read(out.records[0].value)[1] == json.loads(payload)
    else:
        assert out.dead[0].reason in {"bad_record", "envelope_mismatch", *(f"vda5050_{r}" for r in UNFIT_REASONS)}
