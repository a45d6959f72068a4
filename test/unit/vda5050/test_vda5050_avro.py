"""VDA 5050 in Avro, pure: the packaged .avsc files are what the project's derivation makes of the official JSON
Schemas today; every message kind goes JSON -> Avro -> JSON unchanged, with every optional property and every
type of free-form value and properties the schema does not name; a message that does not fit is refused naming its
field and reason."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import jsonschema
import pytest
from vda_full_docs import FREE_VALUES, full_document, required_only

from swarm_bridge.codec.registry import FileRegistry, Schema
from swarm_bridge.vda5050 import MessageInvalid, MessageUnfit
from swarm_bridge.vda5050.avro import VdaAvro, full_name
from swarm_bridge.vda5050.avro_schemas import (
    JSON_RECORD,
    PACKAGED,
    RECORD_NAMES,
    avsc_text,
    derive,
    derive_folder,
    main,
    packaged,
    write_packaged,
)
from swarm_bridge.vda5050.errors import DerivationError
from swarm_bridge.vda5050.kafka import VdaKafka

TOPICS = list(RECORD_NAMES)
# The one place the official schemas contradict themselves: factsheet's blockingTypes is an array with a string
# enum on the array (no array can match it); the Avro record takes it as an array of those strings.
SCHEMA_BUG = "protocolFeatures.agvActions"


@pytest.fixture(scope="module")
def codec() -> VdaAvro:
    return VdaAvro()


def official(folder: Path, topic: str) -> Any:
    return json.loads((folder / f"{topic}.schema").read_text())


def validator(folder: Path, topic: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(official(folder, topic),
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_the_packaged_schemas_are_derived_from_the_official_json_schemas(vda5050_schemas: Path,
                                                                         tmp_path: Path) -> None:
    derived = derive_folder(vda5050_schemas)
    assert sorted(derived) == sorted(TOPICS)
    for topic, schema in derived.items():
        assert (PACKAGED / f"{topic}.avsc").read_text() == avsc_text(schema), (
            f"{topic}.avsc is stale: run python -m swarm_bridge.vda5050.avro_schemas")
        fastavro.parse_schema(schema)
    written = write_packaged(vda5050_schemas, tmp_path / "avro")  # what `make vda5050-avro` runs
    assert [p.read_text() for p in written] == [(PACKAGED / p.name).read_text() for p in written]
    assert main([str(tmp_path / "nowhere")]) == 2


def test_the_derivation_maps_each_json_schema_construct(vda5050_schemas: Path) -> None:
    order = packaged("order")
    assert (order["name"], order["namespace"]) == ("Order", "vda5050.v2")
    fields = {f["name"]: f for f in order["fields"]}
    assert fields["orderUpdateId"]["type"] == "long" and fields["orderId"]["type"] == "string"
    assert fields["zoneSetId"]["type"] == ["null", "string"] and fields["zoneSetId"]["default"] is None
    node = fields["nodes"]["type"]["items"]
    assert node["name"] == "Node" and node["namespace"] == "vda5050.v2.order"
    action = next(f for f in node["fields"] if f["name"] == "actions")["type"]["items"]
    params = next(f for f in action["fields"] if f["name"] == "actionParameters")["type"][1]["items"]
    value = next(f for f in params["fields"] if f["name"] == "value")["type"]
    assert value[:4] == ["boolean", "long", "double", "string"] and value[4]["name"] == "Json"
    blocking = next(f for f in action["fields"] if f["name"] == "blockingType")
    assert blocking["type"] == "string" and "One of: NONE, SOFT, HARD" in blocking["doc"]  # enum: a string
    edge = fields["edges"]["type"]["items"]
    assert next(f for f in edge["fields"] if f["name"] == "actions")["type"]["items"] == "vda5050.v2.order.Action"
    limits = json.dumps(packaged("factsheet"))
    assert '"name": "order_nodes", "jsonName": "order.nodes"' in limits
    with pytest.raises(DerivationError, match="type 'null'"):
        derive("order", {"type": "object", "properties": {"x": {"type": "null"}}})
    with pytest.raises(DerivationError, match="has no Avro name"):
        derive("order", {"type": "object", "properties": {"a-b": {"type": "string"}}})


@pytest.mark.parametrize("topic", TOPICS)
def test_every_message_kind_round_trips_with_every_optional_property(codec: VdaAvro, vda5050_schemas: Path,
                                                                     topic: str) -> None:
    schema = official(vda5050_schemas, topic)
    check = validator(vda5050_schemas, topic)
    for start in range(len(FREE_VALUES)):  # every enum value and free-form value somewhere
        doc = full_document(schema, start=start)
        problems = [e for e in check.iter_errors(doc) if SCHEMA_BUG not in ".".join(map(str, e.absolute_path))]
        assert problems == [], problems[0].message
        body = codec.encode(topic, doc)
        back = codec.decode(topic, body)
        assert back == doc
        assert json.dumps(back, sort_keys=True) == json.dumps(doc, sort_keys=True)  # types too (7 stays 7)
    small = required_only(schema)
    assert list(check.iter_errors(small)) == []
    assert codec.decode(topic, codec.encode(topic, small)) == small


def test_every_type_of_actionparameter_value_round_trips(codec: VdaAvro, vda5050_schemas: Path) -> None:
    params = [{"key": f"k{n}", "value": value} for n, value in enumerate(FREE_VALUES)]
    for topic in ("instantActions", "order"):
        doc = full_document(official(vda5050_schemas, topic))
        actions = doc["actions"] if topic == "instantActions" else doc["nodes"][0]["actions"]
        actions[0]["actionParameters"] = params
        assert list(validator(vda5050_schemas, topic).iter_errors(doc)) == []
        back = codec.decode(topic, codec.encode(topic, doc))
        got = (back["actions"] if topic == "instantActions" else back["nodes"][0]["actions"])[0]["actionParameters"]
        assert json.dumps(got) == json.dumps(params)  # 7 stays an integer, 103.2 a number, [] an array, ...
    doc = full_document(official(vda5050_schemas, "instantActions"))
    doc["actions"][0]["actionParameters"] = params
    branches = [p["value"][0] for p in codec.datum("instantActions", doc)["actions"][0]["actionParameters"]]
    assert branches == ["double", "long", "long", JSON_RECORD, "boolean", "boolean", "string", "string", "string",
                        JSON_RECORD, JSON_RECORD, JSON_RECORD, JSON_RECORD, "double", "double"]


def test_a_number_field_given_an_integer_comes_back_equal(codec: VdaAvro, vda5050_schemas: Path) -> None:
    doc = required_only(official(vda5050_schemas, "visualization"))
    doc["agvPosition"] = {"x": 2, "y": 3, "theta": 0, "mapId": "m", "positionInitialized": True}
    back = codec.decode("visualization", codec.encode("visualization", doc))
    assert back == doc and back["agvPosition"]["x"] == 2.0


@pytest.mark.parametrize(("change", "field", "reason"), [
    (lambda d: d.pop("orderId"), "orderId", "missing_field"),
    (lambda d: d.update(orderUpdateId="1"), "orderUpdateId", "wrong_type"),
    (lambda d: d.update(orderUpdateId=True), "orderUpdateId", "wrong_type"),
    (lambda d: d.update(zoneSetId=None), "zoneSetId", "wrong_type"),
    (lambda d: d.update(headerId=2**64), "headerId", "out_of_range"),
    (lambda d: d["nodes"][0]["nodePosition"].update(x=2**60 + 1), "nodes[0].nodePosition.x", "out_of_range"),
    (lambda d: d["nodes"][0].update(nodeId="\ud800"), "", "wrong_type"),  # a lone surrogate: no UTF-8
    (lambda d: d["nodes"][0]["actions"][0]["actionParameters"][0].update(value=None),
     "nodes[0].actions[0].actionParameters[0].value", "wrong_type"),
    (lambda d: d.update(nodes={}), "nodes", "wrong_type"),
])
def test_a_message_that_does_not_fit_is_refused_naming_field_and_reason(codec: VdaAvro, vda5050_schemas: Path,
                                                                         change: Any, field: str,
                                                                         reason: str) -> None:
    doc = full_document(official(vda5050_schemas, "order"))
    change(doc)
    with pytest.raises(MessageUnfit) as caught:
        codec.encode("order", doc)
    assert (caught.value.field, caught.value.reason) == (field, reason)
    assert caught.value.topic == "order" and field in str(caught.value)


def test_properties_the_schema_does_not_name_travel_in_extra(codec: VdaAvro, vda5050_schemas: Path) -> None:
    """JSON Schema allows them (a vehicle copying an order's nodePosition into its state's nodeStates sends
    allowedDeviationXY, which state.schema does not name); each record's `_extra` carries them as JSON text."""
    doc = full_document(official(vda5050_schemas, "state"))
    doc["vendorExtra"] = {"firmware": "1.2", "zones": [1, 2]}
    doc["nodeStates"][0]["nodePosition"]["allowedDeviationXY"] = 0.5
    doc["agvPosition"]["colour"] = None
    assert list(validator(vda5050_schemas, "state").iter_errors(doc)) == []
    datum = codec.datum("state", doc)
    assert json.loads(datum["_extra"]) == {"vendorExtra": {"firmware": "1.2", "zones": [1, 2]}}
    assert datum["nodeStates"][0]["nodePosition"]["_extra"] == '{"allowedDeviationXY":0.5}'
    assert datum["nodeStates"][1]["nodePosition"]["_extra"] is None
    assert codec.decode("state", codec.encode("state", doc)) == doc


def test_a_body_that_does_not_read_is_refused(codec: VdaAvro) -> None:
    with pytest.raises(ValueError, match="does not read"):
        codec.decode("state", b"\x02\xff")
    assert full_name("order") == "vda5050.v2.Order"


def test_a_record_of_a_later_schema_version_reads_as_the_packaged_one(tmp_path: Path) -> None:
    """A writer whose connection record has a field more (a later minor version) and a record of no VDA 5050
    schema: the first reads by Avro's resolution, the second is refused naming the schema."""
    registry = FileRegistry(tmp_path / "registry")
    records = VdaKafka(register=registry.register, by_id=registry.by_id)
    later = packaged("connection")
    later["fields"] = [*later["fields"], {"name": "newField", "type": ["null", "string"], "default": None}]
    later_id = registry.register("vda5050.connection-value", Schema.avro(later)).id
    doc = {"headerId": 3, "timestamp": "2026-12-06T10:00:00.00Z", "version": "2.2.0", "manufacturer": "acme",
           "serialNumber": "agv1", "connectionState": "ONLINE"}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(later), {**VdaAvro().datum("connection", doc),
                                                                     "newField": "x"})
    value = b"\x00" + later_id.to_bytes(4, "big") + body.getvalue()
    assert records.read(value) == ("connection", doc)
    assert records.read(records.avro("vda5050.connection", "connection", doc)) == ("connection", doc)
    other = registry.register("other-value", Schema.avro({"type": "record", "name": "X", "fields": []})).id
    with pytest.raises(MessageInvalid, match="is X, not a VDA 5050 record"):
        records.read(b"\x00" + other.to_bytes(4, "big"))
