"""VDA 5050 without a broker: topics and their QoS, headers counted per topic, orders and instant actions built
and checked against the official JSON Schemas, messages read back with a named field when they are wrong."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from vda_docs import connection_doc, state_doc

from swarm_bridge.errors import SwarmBridgeError
from swarm_bridge.vda5050 import (
    TOPICS,
    Connection,
    GoalAction,
    HeaderCounter,
    InstantActions,
    MessageInvalid,
    OfficialSchemas,
    Order,
    SchemasMissing,
    State,
    TopicInvalid,
    Vda5050Error,
    Vda5050Topics,
    VehicleId,
    Waypoint,
    build_order,
    decode,
    encode,
    instant_action,
    timestamp,
)

AGV = VehicleId("acme", "agv-1")


@pytest.fixture(scope="module")
def schemas(vda5050_schemas: Path) -> OfficialSchemas:
    return OfficialSchemas(vda5050_schemas)


def test_topics_follow_section_6_3_with_the_spec_qos() -> None:
    topics = Vda5050Topics()
    assert topics.topic(AGV, "order") == "uagv/v2/acme/agv-1/order"
    assert topics.every_vehicle("state") == "uagv/v2/+/+/state"
    assert topics.parse("uagv/v2/acme/agv-1/state") == (AGV, "state")
    assert topics.parse("uagv/v1/acme/agv-1/state") is None  # another major version
    assert topics.parse("uagv/v2/acme/agv-1/nonsense") is None
    assert topics.parse("uagv/v2/acme/bad sn/state") is None  # a serialNumber the spec does not allow
    assert {n: (s.qos, s.retain, s.publisher) for n, s in TOPICS.items()} == {
        "order": (0, False, "master"), "instantActions": (0, False, "master"), "state": (0, False, "vehicle"),
        "visualization": (0, False, "vehicle"), "connection": (1, True, "vehicle"), "factsheet": (0, True, "vehicle")}
    assert AGV.robot_id == "acme/agv-1" and VehicleId.of_robot("acme/agv-1") == AGV


@pytest.mark.parametrize("make", [lambda: VehicleId("acme", "a/b"), lambda: VehicleId("ac/me", "1"),
                                  lambda: VehicleId("acme", ""), lambda: Vda5050Topics("u+agv"),
                                  lambda: Vda5050Topics(major_version="2")])
def test_bad_topic_levels_are_refused_with_the_rule(make: object) -> None:
    with pytest.raises(TopicInvalid) as caught:
        make()  # type: ignore[operator]
    assert isinstance(caught.value, SwarmBridgeError) and "vda5050" in str(caught.value)


def test_header_ids_count_per_vehicle_and_topic_and_wrap_at_uint32() -> None:
    counter = HeaderCounter()
    other = VehicleId("acme", "agv-2")
    ids = [counter.header(AGV, "order", 0)["header_id"] for _ in range(3)]
    assert ids == [0, 1, 2]
    assert counter.header(AGV, "instantActions", 0)["header_id"] == 0
    assert counter.header(other, "order", 0)["header_id"] == 0
    counter._next[(AGV, "order")] = 2**32 - 1
    assert [counter.header(AGV, "order", 0)["header_id"] for _ in range(2)] == [2**32 - 1, 0]
    header = counter.header(AGV, "order", 1_765_015_203_120_000_000)
    assert header["timestamp"] == "2025-12-06T10:00:03.120Z" and header["version"] == "2.1.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", timestamp(0))


def test_an_order_has_nodes_and_edges_in_sequence_and_meets_its_schema(schemas: OfficialSchemas) -> None:
    counter = HeaderCounter()
    path = [Waypoint("here", 1.0, 2.0, "map", theta=0.5), Waypoint("mid", 3.0, 2.0, "map"),
            Waypoint("goal", 5.0, 4.0, "map", allowed_deviation_xy=0.5)]
    order, watch = build_order(AGV, "t1#1", path, [GoalAction("pick", (("stationName", "s3"),))], counter, 0)
    doc = order.wire()
    assert schemas.problems("order", doc) == []
    assert doc["orderId"] == "t1#1" and doc["orderUpdateId"] == 0 and doc["headerId"] == 0
    assert [(n["nodeId"], n["sequenceId"], n["released"]) for n in doc["nodes"]] == [
        ("here", 0, True), ("mid", 2, True), ("goal", 4, True)]
    assert [(e["startNodeId"], e["endNodeId"], e["sequenceId"]) for e in doc["edges"]] == [
        ("here", "mid", 1), ("mid", "goal", 3)]
    assert doc["nodes"][2]["nodePosition"] == {"x": 5.0, "y": 4.0, "mapId": "map", "allowedDeviationXY": 0.5}
    assert doc["nodes"][2]["actions"] == [{"actionType": "pick", "actionId": "t1#1:0:pick", "blockingType": "HARD",
                                           "actionParameters": [{"key": "stationName", "value": "s3"}]}]
    assert all(n["actions"] == [] for n in doc["nodes"][:2])
    assert watch.node_ids == (("here", 0), ("mid", 2), ("goal", 4)) and watch.action_ids == ("t1#1:0:pick",)
    assert watch.steps == 2 + 2 + 1
    again, _ = build_order(AGV, "t2#1", path[:2], [], counter, 0)
    assert again.header_id == 1 and schemas.problems("order", again.wire()) == []


@pytest.mark.parametrize("path", [[Waypoint("a", 0.0, 0.0, "map")],
                                  [Waypoint("a", 0.0, 0.0, "map"), Waypoint("b", float("nan"), 0.0, "map")]])
def test_an_order_without_a_goal_or_with_no_number_is_refused(path: list[Waypoint]) -> None:
    with pytest.raises(Vda5050Error, match="order t1#1"):
        build_order(AGV, "t1#1", path, [], HeaderCounter(), 0)


@pytest.mark.parametrize("action", ["cancelOrder", "startPause", "stopPause", "stateRequest", "factsheetRequest"])
def test_instant_actions_meet_their_schema(action: str, schemas: OfficialSchemas) -> None:
    message = instant_action(AGV, action, f"{action}-1", HeaderCounter(), 0)
    assert schemas.problems("instantActions", message.wire()) == []
    assert message.actions[0].action_type == action


def test_messages_go_out_as_json_and_come_back_the_same(schemas: OfficialSchemas) -> None:
    order, _ = build_order(AGV, "o1", [Waypoint("a", 0.0, 0.0, "map"), Waypoint("b", 1.0, 0.0, "map")], [],
                           HeaderCounter(), 0)
    payload = encode(order)
    assert json.loads(payload)["serialNumber"] == "agv-1"
    assert decode("order", payload, Order, schemas) == order
    state = decode("state", json.dumps(state_doc(vendorField=1)).encode(), State, schemas)
    assert state.agv_position is not None and state.agv_position.x == 1.0
    assert state.model_extra == {"vendorField": 1}  # what a vehicle adds is kept
    assert decode("connection", json.dumps(connection_doc()).encode(), Connection, schemas).connection_state == "ONLINE"


@pytest.mark.parametrize(("payload", "field", "problem"), [
    (b"\xff", "<message>", "not UTF-8 JSON"),
    (b"[1]", "<message>", "expected a JSON object"),
    (json.dumps({**state_doc(), "driving": "yes"}).encode(), "driving", "breaks state.schema"),
    (json.dumps({k: v for k, v in state_doc().items() if k != "safetyState"}).encode(), "<message>",
     "'safetyState' is a required property"),
    (json.dumps({**state_doc(), "operatingMode": "FAST"}).encode(), "operatingMode", "is not one of"),
])
def test_a_bad_state_names_its_field(payload: bytes, field: str, problem: str, schemas: OfficialSchemas) -> None:
    with pytest.raises(MessageInvalid) as caught:
        decode("state", payload, State, schemas)
    assert f"vda5050 state: {field}: " in str(caught.value) and problem in str(caught.value)


def test_without_the_schemas_the_models_still_refuse_a_bad_state() -> None:
    doc = state_doc()
    del doc["batteryState"]
    with pytest.raises(MessageInvalid, match="vda5050 state: batteryState: Field required"):
        decode("state", json.dumps(doc).encode(), State)
    with pytest.raises(MessageInvalid, match=r"instantActions: actions\.0\.blockingType"):
        decode("instantActions", json.dumps({"headerId": 0, "timestamp": "t", "version": "2.1.0", "manufacturer": "a",
                                             "serialNumber": "b", "actions": [{"actionId": "x", "actionType": "y",
                                                                               "blockingType": "NOW"}]}).encode(),
               InstantActions)


def test_a_folder_without_the_schemas_is_named(tmp_path: Path) -> None:
    with pytest.raises(SchemasMissing, match=r"order\.schema: no such file"):
        OfficialSchemas(tmp_path)
