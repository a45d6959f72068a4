"""The embedded FileRegistry (ids, versions, identical re-registration, levels, two processes at once,
persistence) and subject naming; the Confluent backend's behaviour without a server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from swarm_bridge.codec import (
    FileRegistry,
    IncompatibleSchema,
    RegistryError,
    Schema,
    SchemaParseError,
    SchemaReference,
    SchemaRegistry,
    UnknownSchema,
    avro_fingerprint,
    open_registry,
    subject_name_strategy,
)
from swarm_bridge.codec.registry import record_name, topic_name, topic_record_name

REPO = Path(__file__).resolve().parents[3]
SCHEMAS = REPO / "schemas"


def _avro(*fields: dict[str, Any], name: str = "Thing", doc: str | None = None) -> Schema:
    schema: dict[str, Any] = {"type": "record", "name": name, "namespace": "test", "fields": list(fields)}
    if doc is not None:
        schema["doc"] = doc
    return Schema.avro(schema)


A = {"name": "a", "type": "int"}
B_DEFAULT = {"name": "b", "type": ["null", "string"], "default": None}
B_REQUIRED = {"name": "b", "type": "string"}


@pytest.fixture()
def registry(tmp_path: Path) -> FileRegistry:
    return FileRegistry(tmp_path / "registry")


def test_ids_start_at_one_and_versions_count_per_subject(registry: FileRegistry) -> None:
    first = registry.register("things-value", _avro(A))
    second = registry.register("things-value", _avro(A, B_DEFAULT))
    other = registry.register("others-value", _avro(A, name="Other"))
    assert (first.id, first.version, first.subject) == (1, 1, "things-value")
    assert (second.id, second.version) == (2, 2)
    assert (other.id, other.version) == (3, 1)
    assert registry.versions("things-value") == [1, 2]
    assert registry.latest("things-value") == second
    assert registry.version("things-value", 1) == first
    assert registry.by_id(2) == _avro(A, B_DEFAULT)
    assert registry.subjects() == ["others-value", "things-value"]


def test_identical_schema_returns_the_existing_registration(registry: FileRegistry) -> None:
    first = registry.register("things-value", _avro(A))
    registry.register("things-value", _avro(A, B_DEFAULT))
    # same schema, different key order and spacing: still the same
    again = registry.register("things-value", Schema.avro('{"fields": [{"type": "int", "name": "a"}],\n'
                                                          ' "namespace": "test", "name": "Thing", "type": "record"}'))
    assert again == registry.version("things-value", 1) and again.id == first.id
    assert registry.versions("things-value") == [1, 2]
    # the same schema under another subject keeps its id and starts that subject at version 1
    elsewhere = registry.register("copies-value", _avro(A))
    assert (elsewhere.id, elsewhere.version) == (first.id, 1)


def test_incompatible_schema_is_refused_naming_field_and_rule_and_nothing_is_written(registry: FileRegistry) -> None:
    registry.register("things-value", _avro(A))
    before = sorted(p.relative_to(registry.root) for p in registry.root.rglob("*"))
    with pytest.raises(IncompatibleSchema) as caught:
        registry.register("things-value", _avro(A, B_REQUIRED))
    assert (caught.value.rule, caught.value.field) == ("BACKWARD", "Thing.b")
    assert "missing default" in caught.value.problem
    assert sorted(p.relative_to(registry.root) for p in registry.root.rglob("*")) == before
    with pytest.raises(IncompatibleSchema, match=r"field 'Thing\.b'"):
        registry.check("things-value", _avro(A, B_REQUIRED))
    registry.check("things-value", _avro(A, B_DEFAULT))  # would pass; writes nothing
    assert registry.versions("things-value") == [1]


def test_levels_default_to_backward_and_can_be_set_per_subject_or_globally(tmp_path: Path) -> None:
    registry = FileRegistry(tmp_path)
    assert registry.compatibility() == registry.compatibility("any") == "BACKWARD"
    registry.set_compatibility("things-value", "forward")
    assert registry.compatibility("things-value") == "FORWARD"
    registry.register("things-value", _avro(A))
    registry.register("things-value", _avro(A, B_REQUIRED))  # FORWARD: old readers ignore the new field
    registry.set_compatibility(None, "NONE")
    assert registry.compatibility("other") == "NONE" and registry.compatibility("things-value") == "FORWARD"
    registry.register("other-value", _avro(A))
    registry.register("other-value", _avro({"name": "a", "type": "string"}))  # NONE: anything goes
    assert FileRegistry(tmp_path, default_compatibility="FULL").compatibility("fresh") == "NONE"  # config.json wins
    assert FileRegistry(tmp_path / "new", default_compatibility="full").compatibility() == "FULL"
    with pytest.raises(RegistryError, match=r"level 'STRICT' is not valid\. Valid options are: BACKWARD"):
        registry.set_compatibility(None, "STRICT")


def test_transitive_levels_check_every_version(registry: FileRegistry) -> None:
    registry.set_compatibility("t-value", "BACKWARD_TRANSITIVE")
    registry.register("t-value", _avro(A))
    registry.register("t-value", _avro(A, {"name": "b", "type": "int", "default": 0}))
    with pytest.raises(IncompatibleSchema, match="cannot read data of version 1"):
        registry.register("t-value", _avro(A, {"name": "b", "type": "int"}))
    registry.set_compatibility("t-value", "BACKWARD")
    assert registry.register("t-value", _avro(A, {"name": "b", "type": "int"})).version == 3


def test_a_subject_keeps_its_schema_kind(registry: FileRegistry) -> None:
    registry.register("mixed-value", _avro(A))
    proto = Schema.protobuf('syntax = "proto3";\npackage t.v1;\nmessage Thing { int32 a = 1; }\n')
    with pytest.raises(IncompatibleSchema, match="schema kind PROTOBUF differs from AVRO of version 1"):
        registry.register("mixed-value", proto)


def test_protobuf_schemas_register_as_text_or_descriptor(registry: FileRegistry) -> None:
    v1 = Schema.from_file(SCHEMAS / "task_status.v1.proto")
    v2 = Schema.from_file(SCHEMAS / "task_status.v2.proto")
    registry.set_compatibility("status-proto", "FULL")
    assert registry.register("status-proto", v1).version == 1
    assert registry.register("status-proto", v2).version == 2
    descriptor = Schema.protobuf(v2.parsed())
    assert descriptor.text != v2.text and descriptor.parsed() == v2.parsed()
    breaking = v2.text.replace("float progress = 5;", "string progress = 5;")
    with pytest.raises(IncompatibleSchema, match="field type changed"):
        registry.register("status-proto", Schema.protobuf(breaking))


def test_unknown_ids_subjects_versions_and_fingerprints(registry: FileRegistry) -> None:
    registry.register("things-value", _avro(A))
    with pytest.raises(UnknownSchema, match="unknown schema id 99"):
        registry.by_id(99)
    with pytest.raises(UnknownSchema, match="subject 'nope'"):
        registry.latest("nope")
    with pytest.raises(UnknownSchema, match="subject 'nope'"):
        registry.versions("nope")
    with pytest.raises(UnknownSchema, match="version 5 of subject 'things-value'"):
        registry.version("things-value", 5)
    with pytest.raises(UnknownSchema, match="fingerprint 0x0000000000000007"):
        registry.by_fingerprint(7)


def test_by_fingerprint_finds_the_writer_schema_for_single_object_frames(registry: FileRegistry) -> None:
    with_doc = _avro(A, doc="documented")
    first = registry.register("things-value", _avro(A))
    registry.register("docs-value", with_doc)  # same canonical form (doc is not part of it), other id
    found = registry.by_fingerprint(avro_fingerprint(json.loads(with_doc.text)))
    assert (found.id, found.subject, found.version) == (first.id, "things-value", 1)


def test_bad_schemas_are_parse_errors_naming_the_subject(registry: FileRegistry) -> None:
    with pytest.raises(SchemaParseError, match="subject things-value: not JSON"):
        registry.register("things-value", Schema("AVRO", "{not json"))
    with pytest.raises(SchemaParseError, match=r"subject things-value: .*Missing"):
        registry.register("things-value", _avro({"name": "a", "type": "Missing"}))
    with pytest.raises(SchemaParseError, match="kind 'XML' is not valid"):
        Schema("XML", "<a/>")
    with pytest.raises(RegistryError, match="subject must be a non-empty string"):
        registry.register("", _avro(A))


def test_persistence_across_instances_and_file_layout(tmp_path: Path) -> None:
    first = FileRegistry(tmp_path)
    registered = first.register("fleet.state.robot_state-value", Schema.from_file(SCHEMAS / "robot_state.v1.avsc"))
    first.set_compatibility("fleet.state.robot_state-value", "FULL")
    second = FileRegistry(tmp_path)
    assert second.latest("fleet.state.robot_state-value") == registered
    assert second.compatibility("fleet.state.robot_state-value") == "FULL"
    assert second.register("fleet.state.robot_state-value", Schema.from_file(SCHEMAS / "robot_state.v2.avsc")).id == 2
    subject_dir = tmp_path / "subjects" / "fleet%2Estate%2Erobot_state-value"
    assert sorted(p.name for p in subject_dir.iterdir()) == ["config.json", "v1.json", "v2.json"]
    assert json.loads((tmp_path / "schemas" / "1.json").read_text())["subject"] == "fleet.state.robot_state-value"
    assert not list(tmp_path.rglob("*.tmp")), "atomic writes leave no temporary files"


def test_odd_subject_names_stay_inside_the_registry(registry: FileRegistry) -> None:
    subjects = ["..", ".", "a/b", "x%2Fy", "ünï code", "swarm_bridge.fleet.RobotState"]
    for subject in subjects:
        registry.register(subject, _avro(A))
        assert registry.latest(subject).subject == subject
    assert registry.subjects() == sorted(subjects)
    folders = set((registry.root / "subjects").iterdir())
    assert len(folders) == len(subjects)
    assert {p.parent for p in (registry.root / "subjects").rglob("v1.json")} == folders


def test_avro_references_are_inlined_for_checks_and_fingerprints(registry: FileRegistry) -> None:
    pose = Schema.avro({"type": "record", "name": "Pose", "namespace": "test",
                        "fields": [{"name": "x", "type": "double"}]})
    registry.register("test.Pose", pose)
    user = Schema.avro({"type": "record", "name": "Holder", "namespace": "test",
                        "fields": [{"name": "p", "type": "test.Pose"}]},
                       references=[SchemaReference("test.Pose", "test.Pose", 1)])
    registered = registry.register("holders-value", user)
    assert registry.by_id(registered.id).references == (SchemaReference("test.Pose", "test.Pose", 1),)
    inlined = {"type": "record", "name": "Holder", "namespace": "test",
               "fields": [{"name": "p", "type": json.loads(pose.text)}]}
    assert registry.by_fingerprint(avro_fingerprint(inlined)).id == registered.id


# --- two processes at once ----------------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import json, sys
    from swarm_bridge.codec import FileRegistry, Schema
    root, tag = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    sys.stdin.readline()  # the go: both workers have imported everything and start at once
    registry = FileRegistry(root)
    out = []
    for i in range(15):
        doc = f"{tag}-{i}"
        schema = Schema.avro({"type": "record", "name": "R", "doc": doc, "fields": [{"name": "a", "type": "int"}]})
        r = registry.register("shared-value", schema)
        same = registry.register("same-value", Schema.avro({"type": "record", "name": "S", "fields": []}))
        out.append([doc, r.id, r.version, same.id, same.version])
    print(json.dumps(out))
    """
)


def test_two_processes_register_concurrently_without_losing_or_duplicating(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path / "reg"), tag], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for tag in ("p1", "p2")
    ]
    for proc in procs:  # both have imported and wait for the go
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n", proc.communicate(timeout=120)[1]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results += json.loads(out)
    registry = FileRegistry(tmp_path / "reg")
    assert registry.versions("shared-value") == list(range(1, 31))
    ids = sorted(r[1] for r in results)
    assert len(set(ids)) == 30
    for doc, schema_id, version, same_id, same_version in results:
        stored = registry.version("shared-value", version)
        assert stored.id == schema_id and json.loads(stored.schema.text)["doc"] == doc
        assert same_version == 1 and same_id == registry.latest("same-value").id
    assert registry.versions("same-value") == [1]
    assert len(list((tmp_path / "reg" / "schemas").glob("*.json"))) == 31


# --- subject naming ------------------------------------------------------------------------------


def test_subject_name_strategies() -> None:
    topic, record = "fleet.state.robot_state", "swarm_bridge.fleet.RobotState"
    assert topic_name(topic, record) == "fleet.state.robot_state-value"
    assert record_name(topic, record) == "swarm_bridge.fleet.RobotState"
    assert topic_record_name(topic, record) == "fleet.state.robot_state-swarm_bridge.fleet.RobotState"
    assert subject_name_strategy("topic_name") is topic_name
    with pytest.raises(RegistryError, match="'topic_names' is not valid \\(did you mean 'topic_name'\\?\\)"):
        subject_name_strategy("topic_names")
    with pytest.raises(RegistryError, match="Valid options are: topic_name, record_name, topic_record_name"):
        subject_name_strategy("by_robot")


# --- the interface and the Confluent backend without a server -------------------------------------


def test_both_backends_implement_the_interface(tmp_path: Path) -> None:
    from swarm_bridge.codec import ConfluentRegistry

    assert isinstance(FileRegistry(tmp_path), SchemaRegistry)
    remote = ConfluentRegistry("http://127.0.0.1:9/apis/ccompat/v7")
    assert isinstance(remote, SchemaRegistry)
    remote.close()
    assert isinstance(open_registry(tmp_path), FileRegistry)
    assert isinstance(open_registry(f"file://{tmp_path}"), FileRegistry)
    assert isinstance(open_registry("http://127.0.0.1:9", timeout_s=1), ConfluentRegistry)


def test_confluent_backend_reports_an_unreachable_registry(tmp_path: Path) -> None:
    from swarm_bridge.brokers import free_port
    from swarm_bridge.codec import ConfluentRegistry

    url = f"http://127.0.0.1:{free_port()}/apis/ccompat/v7"
    with ConfluentRegistry(url, timeout_s=2, max_retries=0) as remote:
        started = time.monotonic()
        with pytest.raises(RegistryError, match=r"cannot reach .*Fix: check the URL and that the registry is running"):
            remote.register("things-value", _avro(A))
        with pytest.raises(RegistryError, match="cannot reach"):
            remote.by_id(1)
        assert time.monotonic() - started < 10


def test_confluent_backend_rejects_unknown_client_options() -> None:
    from swarm_bridge.codec import ConfluentRegistry

    with pytest.raises(RegistryError, match="Unrecognized properties: colour"):
        ConfluentRegistry("http://127.0.0.1:9", conf={"colour": "blue"})


def test_the_codec_imports_no_broker_or_ros_library() -> None:
    script = (
        "import sys, swarm_bridge.codec\n"
        "print(sorted(m for m in ('confluent_kafka', 'paho', 'mqtt5', 'rclpy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
