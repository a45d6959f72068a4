"""ConfluentRegistry against a real Confluent-API registry (Apicurio Registry 3.0, started by the test),
and the SchemaRegistryServer runner's errors."""

from __future__ import annotations

import io
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest

from swarm_bridge.brokers import BrokerError, free_port
from swarm_bridge.brokers.registry import APICURIO_VERSION, SchemaRegistryServer
from swarm_bridge.codec import (
    ConfluentRegistry,
    IncompatibleSchema,
    Schema,
    SchemaRegistry,
    UnknownSchema,
    avro_fingerprint,
    parse_confluent,
)

REPO = Path(__file__).resolve().parents[3]
SCHEMAS = REPO / "schemas"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaRegistryServer]:
    """A private Apicurio Registry for this module, stopped at the end."""
    registry = SchemaRegistryServer(run_dir=tmp_path_factory.mktemp("schema-registry"), port=free_port())
    registry.start()
    yield registry
    registry.stop()


@pytest.fixture()
def remote(server: SchemaRegistryServer) -> Iterator[ConfluentRegistry]:
    with ConfluentRegistry(server.url, timeout_s=10) as client:
        yield client


def _subject(request: pytest.FixtureRequest) -> str:
    return re.sub(r"\W", "_", request.node.name) + "-value"


def _avro(*fields: dict[str, Any]) -> Schema:
    return Schema.avro({"type": "record", "name": "Thing", "namespace": "test", "fields": list(fields)})


A = {"name": "a", "type": "int"}


def test_register_by_id_latest_versions(remote: ConfluentRegistry, request: pytest.FixtureRequest) -> None:
    subject = _subject(request)
    assert isinstance(remote, SchemaRegistry)
    v1 = Schema.from_file(SCHEMAS / "robot_state.v1.avsc")
    v2 = Schema.from_file(SCHEMAS / "robot_state.v2.avsc")
    first = remote.register(subject, v1)
    second = remote.register(subject, v2)
    assert (first.version, second.version, first.subject) == (1, 2, subject)
    assert first.id != second.id
    assert json.loads(remote.by_id(first.id).text) == json.loads(v1.text)
    assert remote.latest(subject).id == second.id
    assert remote.versions(subject) == [1, 2]
    assert remote.version(subject, 1).id == first.id
    assert subject in remote.subjects()
    again = remote.register(subject, v1)  # identical: the existing registration
    assert (again.id, again.version) == (first.id, 1)
    assert remote.versions(subject) == [1, 2]


def test_incompatible_schema_is_refused_with_field_and_rule(
    remote: ConfluentRegistry, request: pytest.FixtureRequest
) -> None:
    subject = _subject(request)
    remote.set_compatibility(subject, "BACKWARD")
    assert remote.compatibility(subject) == "BACKWARD"
    remote.register(subject, _avro(A))
    with pytest.raises(IncompatibleSchema) as caught:
        remote.register(subject, _avro(A, {"name": "b", "type": "string"}))
    error = caught.value
    assert (error.subject, error.rule, error.field) == (subject, "BACKWARD", "Thing.b")
    assert "missing default" in error.problem and "(registry: " in error.problem  # the server's own words too
    with pytest.raises(IncompatibleSchema, match=r"field 'Thing\.b'"):
        remote.check(subject, _avro(A, {"name": "b", "type": "string"}))
    remote.check(subject, _avro(A, {"name": "b", "type": "string", "default": ""}))
    assert remote.versions(subject) == [1]


def test_fleet_schemas_evolve_under_full_transitive(remote: ConfluentRegistry, request: pytest.FixtureRequest) -> None:
    for message in ("task_command", "task_status", "robot_state", "heartbeat", "fleet_event"):
        subject = f"{_subject(request)}-{message}"
        remote.set_compatibility(subject, "FULL_TRANSITIVE")
        assert remote.register(subject, Schema.from_file(SCHEMAS / f"{message}.v1.avsc")).version == 1
        assert remote.register(subject, Schema.from_file(SCHEMAS / f"{message}.v2.avsc")).version == 2


def test_transitive_level_is_enforced_by_the_server(remote: ConfluentRegistry, request: pytest.FixtureRequest) -> None:
    subject = _subject(request)
    remote.set_compatibility(subject, "BACKWARD_TRANSITIVE")
    remote.register(subject, _avro(A))
    remote.register(subject, _avro(A, {"name": "b", "type": "int", "default": 0}))
    with pytest.raises(IncompatibleSchema, match="cannot read data of version 1") as caught:
        remote.register(subject, _avro(A, {"name": "b", "type": "int"}))
    assert caught.value.rule == "BACKWARD_TRANSITIVE"


def test_protobuf_as_text_and_as_descriptor(remote: ConfluentRegistry, request: pytest.FixtureRequest) -> None:
    text = Schema.from_file(SCHEMAS / "heartbeat.v1.proto")
    as_text = remote.register(_subject(request) + "-text", text)
    as_descriptor = remote.register(_subject(request) + "-fdp", Schema.protobuf(text.parsed()))
    assert remote.by_id(as_text.id).kind == remote.by_id(as_descriptor.id).kind == "PROTOBUF"
    assert remote.by_id(as_descriptor.id).parsed().message_type[0].name == "Heartbeat"


def test_by_fingerprint_and_unknowns(remote: ConfluentRegistry, request: pytest.FixtureRequest) -> None:
    schema = Schema.from_file(SCHEMAS / "heartbeat.v2.avsc")
    registered = remote.register(_subject(request), schema)
    fresh = ConfluentRegistry(remote.url)  # has seen nothing: scans the server once
    assert fresh.by_fingerprint(avro_fingerprint(schema.text)).id == registered.id
    with pytest.raises(UnknownSchema, match="fingerprint 0x0000000000000001"):
        fresh.by_fingerprint(1)
    with pytest.raises(UnknownSchema, match="unknown schema id 987654"):
        remote.by_id(987654)
    with pytest.raises(UnknownSchema, match="subject 'no-such-subject'"):
        remote.latest("no-such-subject")
    fresh.close()


def test_confluent_kafka_serializer_frames_match_ours(remote: ConfluentRegistry, server: SchemaRegistryServer) -> None:
    """The reference client registers and frames a record; our parser and registry read it back."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    schema_text = (SCHEMAS / "heartbeat.v1.avsc").read_text()
    record = {"robot_id": "amr_007", "seq": 1, "stamp_ns": 2, "uptime_ns": 3, "bridge_version": "0.1"}
    with SchemaRegistryClient({"url": server.url}) as client:
        serializer = AvroSerializer(client, schema_text)
        framed = serializer(record, SerializationContext("fleet.state.heartbeat", MessageField.VALUE))
    assert framed is not None
    schema_id, indexes, payload = parse_confluent(framed)
    assert indexes is None
    assert remote.latest("fleet.state.heartbeat-value").id == schema_id
    writer = fastavro.parse_schema(json.loads(remote.by_id(schema_id).text))
    assert fastavro.schemaless_reader(io.BytesIO(payload), writer, None) == record


# --- the runner ----------------------------------------------------------------------------------


def test_restart_on_the_same_run_dir_keeps_the_schemas(tmp_path: Path) -> None:
    port = free_port()
    with SchemaRegistryServer(run_dir=tmp_path, port=port) as first:
        assert first.ready_seconds is not None and first.ready_seconds < first.ready_timeout
        with ConfluentRegistry(first.url) as remote:
            registered = remote.register("kept-value", _avro(A))
    assert not (tmp_path / "schema-registry.pid").exists()
    with SchemaRegistryServer(run_dir=tmp_path, port=port) as second, ConfluentRegistry(second.url) as remote:
        assert remote.latest("kept-value").id == registered.id


def test_a_taken_port_is_refused_before_spawning(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        with pytest.raises(BrokerError, match=f"port {port} on 127.0.0.1 is already in use") as caught:
            SchemaRegistryServer(run_dir=tmp_path, port=port).start()
    assert caught.value.service == "schema-registry" and "SchemaRegistryServer(port=...)" in caught.value.fix
    assert not (tmp_path / "schema-registry.pid").exists()


def test_missing_distribution_says_where_it_comes_from(tmp_path: Path) -> None:
    empty = tmp_path / "apicurio"
    empty.mkdir()
    with pytest.raises(BrokerError, match=f"Apicurio Registry {APICURIO_VERSION} not found in {empty}") as caught:
        SchemaRegistryServer(run_dir=tmp_path / "run", port=free_port(), app_dir=empty).start()
    assert "provision/setup" in caught.value.fix and "SWARM_BRIDGE_APICURIO" in caught.value.fix


def test_missing_java_says_to_install_a_jdk(tmp_path: Path) -> None:
    app = tmp_path / "apicurio"
    (app / "lib").mkdir(parents=True)
    (app / f"apicurio-registry-app-{APICURIO_VERSION}-runner.jar").touch()
    server = SchemaRegistryServer(run_dir=tmp_path / "run", port=free_port(), app_dir=app, java="/nonexistent/java")
    with pytest.raises(BrokerError, match="not found") as caught:
        server.start()
    assert "JDK 17" in caught.value.fix


def test_apicurio_version_matches_the_pom() -> None:
    pom = (REPO / "provision" / "registry" / "pom.xml").read_text()
    found = re.search(r"<apicurio.version>(.*?)</apicurio.version>", pom)
    assert found is not None and found.group(1) == APICURIO_VERSION
