"""Evolution rules: the Avro checker agrees with fastavro's real schema resolution, levels refuse exactly
where they should (naming field and rule), transitive forms look at every version, Protobuf field-number rules."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import fastavro
import pytest
from google.protobuf import descriptor_pool, message_factory

from swarm_bridge.codec import IncompatibleSchema, RegistryError, SchemaParseError
from swarm_bridge.codec.fleet_protos import compile_proto
from swarm_bridge.codec.registry import LEVELS, avro_violation, check_compatibility, protobuf_violation


def _record(*fields: dict[str, Any], name: str = "Thing", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "test", "fields": list(fields), **extra}


def _f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def _read(reader: Any, writer: Any, datum: Any) -> Any:
    """Write `datum` with `writer`, read it with `reader`: fastavro's own resolution."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(writer), datum)
    buffer.seek(0)
    return fastavro.schemaless_reader(buffer, fastavro.parse_schema(writer), fastavro.parse_schema(reader))


def _fastavro_reads_all(reader: Any, writer: Any, data: list[Any]) -> bool:
    try:
        for datum in data:
            _read(reader, writer, datum)
    except Exception:  # fastavro raises SchemaResolutionError and others
        return False
    return True


@dataclass(frozen=True)
class Evolution:
    """v1 -> v2 with data of each (covering every union branch and enum symbol); expected verdicts."""

    name: str
    v1: Any
    v2: Any
    v1_data: list[Any]
    v2_data: list[Any]
    backward: bool  # v2 reader reads v1 data
    forward: bool  # v1 reader reads v2 data
    field: str = ""  # the field the first refusal names (paths start at the reader's type name)
    rule: str = ""  # the Avro rule a refusal names
    forward_field: str = ""  # the field a FORWARD-only check names, when not `field`


POSE = _record(_f("x", "double"), _f("y", "double"), name="Pose")
SCENARIOS = [
    Evolution(
        "add field with default",
        _record(_f("a", "int")),
        _record(_f("a", "int"), _f("b", ["null", "string"], default=None)),
        [{"a": 1}],
        [{"a": 1, "b": None}, {"a": 2, "b": "x"}],
        True,
        True,
    ),
    Evolution(
        "add field without default",
        _record(_f("a", "int")),
        _record(_f("a", "int"), _f("b", "string")),
        [{"a": 1}],
        [{"a": 1, "b": "x"}],
        False,
        True,
        "Thing.b",
        "missing default",
    ),
    Evolution(
        "remove field that had a default",
        _record(_f("a", "int"), _f("b", "string", default="")),
        _record(_f("a", "int")),
        [{"a": 1, "b": "x"}],
        [{"a": 1}],
        True,
        True,
    ),
    Evolution(
        "remove field without default",
        _record(_f("a", "int"), _f("b", "string")),
        _record(_f("a", "int")),
        [{"a": 1, "b": "x"}],
        [{"a": 1}],
        True,
        False,
        "Thing.b",
        "missing default",
    ),
    Evolution(
        "promote int to long",
        _record(_f("a", "int")),
        _record(_f("a", "long")),
        [{"a": 7}],
        [{"a": 1 << 40}],
        True,
        False,
        "Thing.a",
        "type mismatch",
    ),
    Evolution(
        "promote float to double",
        _record(_f("a", "float")),
        _record(_f("a", "double")),
        [{"a": 1.5}],
        [{"a": 2.5}],
        True,
        False,
        "Thing.a",
        "type mismatch",
    ),
    Evolution(
        "string to bytes",
        _record(_f("a", "string")),
        _record(_f("a", "bytes")),
        [{"a": "text"}],
        [{"a": b"raw"}],
        True,
        True,
    ),
    Evolution(
        "int to string",
        _record(_f("a", "int")),
        _record(_f("a", "string")),
        [{"a": 1}],
        [{"a": "1"}],
        False,
        False,
        "Thing.a",
        "type mismatch",
    ),
    Evolution(
        "enum gains a symbol",
        _record(_f("e", {"type": "enum", "name": "E", "symbols": ["A", "B"]})),
        _record(_f("e", {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]})),
        [{"e": "A"}, {"e": "B"}],
        [{"e": "A"}, {"e": "C"}],
        True,
        False,
        "Thing.e",
        "enum symbol",
    ),
    Evolution(
        "enum gains a symbol, reader enum has a default",
        _record(_f("e", {"type": "enum", "name": "E", "symbols": ["UNKNOWN", "B"], "default": "UNKNOWN"})),
        _record(_f("e", {"type": "enum", "name": "E", "symbols": ["UNKNOWN", "B", "C"], "default": "UNKNOWN"})),
        [{"e": "B"}],
        [{"e": "C"}],
        True,
        True,
    ),
    Evolution(
        "union widens",
        _record(_f("u", ["null", "string"])),
        _record(_f("u", ["null", "string", "int"])),
        [{"u": None}, {"u": "s"}],
        [{"u": None}, {"u": "s"}, {"u": 3}],
        True,
        False,
        "Thing.u",
        "union branch",
    ),
    Evolution(
        "plain type becomes optional",
        _record(_f("s", "string")),
        _record(_f("s", ["null", "string"], default=None)),
        [{"s": "x"}],
        [{"s": None}, {"s": "y"}],
        True,
        False,
        "Thing.s",
        "type mismatch",
    ),
    Evolution(
        "record renamed without alias",
        _record(_f("a", "int"), name="Thing"),
        _record(_f("a", "int"), name="Other"),
        [{"a": 1}],
        [{"a": 1}],
        False,
        False,
        "Other",
        "name mismatch",
        "Thing",
    ),
    Evolution(
        "record renamed with alias (namespace moved too)",
        _record(_f("a", "int"), name="Thing"),
        {**_record(_f("a", "int"), name="Other", aliases=["Thing"]), "namespace": "elsewhere"},
        [{"a": 1}],
        [{"a": 1}],
        True,
        False,
        "Thing",
        "name mismatch",
    ),
    Evolution(
        "field renamed with alias",
        _record(_f("old", "int")),
        _record(_f("new", "int", aliases=["old"])),
        [{"old": 1}],
        [{"new": 1}],
        True,
        False,
        "Thing.old",
        "missing default",
    ),
    Evolution(
        "nested field narrowed",
        _record(_f("pose", POSE)),
        _record(_f("pose", _record(_f("x", "double"), _f("y", "float"), name="Pose"))),
        [{"pose": {"x": 1.0, "y": 2.0}}],
        [{"pose": {"x": 1.0, "y": 2.5}}],
        False,
        True,
        "Thing.pose.y",
        "type mismatch",
    ),
    Evolution(
        "array items promoted",
        _record(_f("xs", {"type": "array", "items": "int"})),
        _record(_f("xs", {"type": "array", "items": "long"})),
        [{"xs": [1, 2]}],
        [{"xs": [1 << 40]}],
        True,
        False,
        "Thing.xs[]",
        "type mismatch",
    ),
    Evolution(
        "map values changed",
        _record(_f("m", {"type": "map", "values": "string"})),
        _record(_f("m", {"type": "map", "values": "int"})),
        [{"m": {"k": "v"}}],
        [{"m": {"k": 1}}],
        False,
        False,
        "Thing.m{}",
        "type mismatch",
    ),
    Evolution(
        "fixed size changed",
        _record(_f("h", {"type": "fixed", "name": "H", "size": 4})),
        _record(_f("h", {"type": "fixed", "name": "H", "size": 8})),
        [{"h": b"1234"}],
        [{"h": b"12345678"}],
        False,
        False,
        "Thing.h",
        "fixed size",
    ),
    Evolution(
        "recursive type gains an optional field",
        _record(_f("v", "int"), _f("next", ["null", "Node"]), name="Node"),
        _record(_f("v", "int"), _f("next", ["null", "Node"]), _f("w", "int", default=0), name="Node"),
        [{"v": 1, "next": {"v": 2, "next": None}}],
        [{"v": 1, "next": {"v": 2, "next": None, "w": 5}, "w": 3}],
        True,
        True,
    ),
]


@pytest.mark.parametrize("case", SCENARIOS, ids=lambda c: c.name)
def test_checker_agrees_with_fastavro_both_ways(case: Evolution) -> None:
    backward = avro_violation(case.v2, case.v1)  # v2 reader, v1 writer
    forward = avro_violation(case.v1, case.v2)  # v1 reader, v2 writer
    assert (backward is None) == case.backward, backward
    assert (forward is None) == case.forward, forward
    assert _fastavro_reads_all(case.v2, case.v1, case.v1_data) == case.backward
    assert _fastavro_reads_all(case.v1, case.v2, case.v2_data) == case.forward
    refusal = backward or forward
    if refusal is not None:
        assert (refusal.field, refusal.rule) == (case.field, case.rule)


@pytest.mark.parametrize("case", SCENARIOS, ids=lambda c: c.name)
@pytest.mark.parametrize("level", ["BACKWARD", "FORWARD", "FULL", "NONE"])
def test_levels_refuse_exactly_where_the_rules_say(case: Evolution, level: str) -> None:
    allowed = {
        "BACKWARD": case.backward,
        "FORWARD": case.forward,
        "FULL": case.backward and case.forward,
        "NONE": True,
    }[level]
    if allowed:
        check_compatibility("things-value", level, "AVRO", case.v2, [case.v1])
        return
    with pytest.raises(IncompatibleSchema) as caught:
        check_compatibility("things-value", level, "AVRO", case.v2, [case.v1])
    error = caught.value
    field = case.forward_field if level == "FORWARD" and case.forward_field else case.field
    assert (error.subject, error.rule, error.field) == ("things-value", level, field)
    assert case.rule in error.problem
    assert f"under {level}: field '{field}'" in str(error)


def test_refusal_message_reads_well() -> None:
    v1 = _record(_f("a", "int"))
    v2 = _record(_f("a", "int"), _f("b", "string"))
    with pytest.raises(IncompatibleSchema) as caught:
        check_compatibility("fleet.state.robot_state-value", "BACKWARD", "AVRO", v2, [v1])
    assert str(caught.value) == (
        "subject fleet.state.robot_state-value: incompatible under BACKWARD: field 'Thing.b': the new schema "
        "cannot read data of version 1: missing default: the reader field is not in the writer's record and has "
        "no default"
    )


# --- transitive forms over three versions ------------------------------------------------------------

# v3 needs `b` without a default: fine against v2 (which writes b), not against v1 (which does not).
B1 = _record(_f("a", "int"))
B2 = _record(_f("a", "int"), _f("b", "int", default=0))
B3 = _record(_f("a", "int"), _f("b", "int"))
# v1 readers default `b`; v2 drops it; v3 brings `b` back as a string: v1 readers cannot read that.
F1 = _record(_f("a", "int"), _f("b", "int", default=0))
F2 = _record(_f("a", "int"))
F3 = _record(_f("a", "int"), _f("b", "string"))


def test_backward_transitive_checks_every_earlier_version() -> None:
    check_compatibility("s", "BACKWARD", "AVRO", B3, [B1, B2])
    assert _fastavro_reads_all(B3, B2, [{"a": 1, "b": 2}])
    with pytest.raises(IncompatibleSchema, match=r"'Thing\.b': the new schema cannot read data of version 1"):
        check_compatibility("s", "BACKWARD_TRANSITIVE", "AVRO", B3, [B1, B2])
    assert not _fastavro_reads_all(B3, B1, [{"a": 1}])
    with pytest.raises(IncompatibleSchema, match="FULL_TRANSITIVE"):
        check_compatibility("s", "FULL_TRANSITIVE", "AVRO", B3, [B1, B2])


def test_forward_transitive_checks_every_earlier_version() -> None:
    check_compatibility("s", "FORWARD", "AVRO", F3, [F1, F2])
    assert _fastavro_reads_all(F2, F3, [{"a": 1, "b": "x"}])
    with pytest.raises(IncompatibleSchema, match="readers of version 1 cannot read data of the new schema") as caught:
        check_compatibility("s", "FORWARD_TRANSITIVE", "AVRO", F3, [F1, F2])
    assert caught.value.field == "Thing.b" and "type mismatch" in caught.value.problem
    assert not _fastavro_reads_all(F1, F3, [{"a": 1, "b": "x"}])


def test_full_transitive_passes_a_clean_history() -> None:
    v1 = _record(_f("a", "int"))
    v2 = _record(_f("a", "int"), _f("b", ["null", "string"], default=None))
    v3 = _record(_f("a", "int"), _f("b", ["null", "string"], default=None), _f("c", "long", default=0))
    check_compatibility("s", "FULL_TRANSITIVE", "AVRO", v3, [v1, v2], versions=[1, 2])
    for reader in (v1, v2, v3):
        for writer, datum in ((v1, {"a": 1}), (v2, {"a": 1, "b": "x"}), (v3, {"a": 1, "b": None, "c": 9})):
            assert _fastavro_reads_all(reader, writer, [datum])


def test_transitive_messages_name_the_real_version_numbers() -> None:
    with pytest.raises(IncompatibleSchema, match="cannot read data of version 4"):
        check_compatibility("s", "BACKWARD_TRANSITIVE", "AVRO", B3, [B1, B2], versions=[4, 7])


def test_bad_level_and_bad_kind_name_the_valid_options() -> None:
    valid = r"compatibility level 'SIDEWAYS' is not valid\. Valid options are: BACKWARD, BACKWARD_TRANSITIVE"
    with pytest.raises(RegistryError, match=valid):
        check_compatibility("s", "SIDEWAYS", "AVRO", B1, [B1])
    assert "backward_transitive".upper() in LEVELS
    check_compatibility("s", "backward", "AVRO", B2, [B1])  # case does not matter
    with pytest.raises(RegistryError, match="schema kind 'JSON' is not valid"):
        check_compatibility("s", "BACKWARD", "JSON", B1, [B1])


def test_unparsable_avro_is_a_parse_error() -> None:
    with pytest.raises(SchemaParseError, match="not JSON"):
        avro_violation("{oops", B1)
    with pytest.raises(SchemaParseError, match="avro schema"):
        avro_violation(_record(_f("a", "Missing")), B1)


# --- Protobuf ------------------------------------------------------------------------------------


def _proto(body: str, *, package: str = "test.v1", syntax: str = "proto3") -> Any:
    return compile_proto(f'syntax = "{syntax}";\npackage {package};\n{body}\n')


FIELDS = "string s = 2; repeated int64 xs = 3;"
BASE = f"message M {{ int32 a = 1; {FIELDS} Inner inner = 4; }}\nmessage Inner {{ int32 v = 1; }}"


def _protobuf_refusal(new: Any, old: Any, level: str = "FULL", history: list[Any] | None = None) -> IncompatibleSchema:
    with pytest.raises(IncompatibleSchema) as caught:
        check_compatibility("m-value", level, "PROTOBUF", new, [*(history or []), old])
    return caught.value


def _message_class(fdp: Any, name: str) -> Any:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{fdp.package}.{name}"))


def test_protobuf_compatible_changes_read_both_ways() -> None:
    old = _proto(BASE)
    new = _proto(
        "message M { int64 a = 1; bytes s = 2; repeated int64 xs = 3; Inner inner = 4; optional string note = 5; }"
        "\nmessage Inner { int32 v = 1; }\nmessage Added { int32 z = 1; }",
        package="test.v2",
    )
    check_compatibility("m-value", "FULL_TRANSITIVE", "PROTOBUF", new, [old])
    old_cls, new_cls = _message_class(old, "M"), _message_class(new, "M")
    data = old_cls(a=-5, s="hé", xs=[1, 2], inner={"v": 3}).SerializeToString()
    read = new_cls.FromString(data)
    assert (read.a, read.s, list(read.xs), read.inner.v) == (-5, "hé".encode(), [1, 2], 3)
    back = old_cls.FromString(new_cls(a=9, s=b"ok", note="n").SerializeToString())
    assert (back.a, back.s) == (9, "ok")


@pytest.mark.parametrize(
    ("new_body", "field", "rule"),
    [
        (f"message M {{ string a = 1; {FIELDS} Inner inner = 4; }}", "M.a", "field type changed"),
        (f"message M {{ sint32 a = 1; {FIELDS} Inner inner = 4; }}", "M.a", "field type changed"),
        ("message M { int32 a = 1; string s = 2; int64 xs = 3; Inner inner = 4; }", "M.xs", "label changed"),
        (f"message M {{ int32 a = 1; {FIELDS} Other inner = 4; }}\nmessage Other {{ int32 v = 1; }}",
         "M.inner", "named type changed"),
        (f"message M {{ int32 a = 1; {FIELDS} oneof o {{ Inner inner = 4; }} }}", "M.inner", "oneof changed"),
        (f"message Renamed {{ int32 a = 1; {FIELDS} Inner inner = 4; }}", "M", "message removed or renamed"),
    ],
)
def test_protobuf_incompatible_changes_name_field_and_rule(new_body: str, field: str, rule: str) -> None:
    old = _proto(BASE)
    new = _proto(new_body + ("\nmessage Inner { int32 v = 1; }" if "message Inner" not in new_body else ""))
    error = _protobuf_refusal(new, old, level="BACKWARD")
    assert error.field.startswith(field) and rule in error.problem and error.rule == "BACKWARD"


def test_protobuf_a_string_field_read_as_int_really_breaks() -> None:
    old = _proto("message M { string a = 1; }")
    new = _proto("message M { int32 a = 1; }")
    assert protobuf_violation(new, old, direction="BACKWARD") is not None
    from google.protobuf.message import DecodeError

    wire = _message_class(old, "M")(a="text").SerializeToString()
    try:
        value = _message_class(new, "M").FromString(wire)
    except DecodeError:
        return
    assert value.ListFields() == []  # the string was not understood: it went to the unknown fields


def test_protobuf_a_removed_number_may_not_return_with_another_type() -> None:
    v1 = _proto("message M { int32 a = 1; string gone = 2; }")
    v2 = _proto("message M { int32 a = 1; }")
    v3 = _proto("message M { int32 a = 1; int64 back = 2; }")
    check_compatibility("m-value", "BACKWARD", "PROTOBUF", v2, [v1])
    assert protobuf_violation(v3, v2, direction="BACKWARD") is None  # v2 alone cannot see it
    error = _protobuf_refusal(v3, v2, level="BACKWARD", history=[v1])
    assert error.field == "M.back (was gone)"
    assert "field numbers are permanent (version 1)" in error.problem and "was string, now int64" in error.problem


def test_protobuf_reserved_numbers_stay_reserved() -> None:
    old = _proto("message M { int32 a = 1; reserved 2, 5 to 7; }")
    new = _proto("message M { int32 a = 1; string b = 6; }")
    error = _protobuf_refusal(new, old)
    assert error.field == "M.b" and "reserved number reused" in error.problem


def test_protobuf_required_fields_depend_on_the_direction() -> None:
    old = _proto("message M { optional int32 a = 1; }", syntax="proto2")
    new = _proto("message M { optional int32 a = 1; required int32 b = 2; }", syntax="proto2")
    check_compatibility("m-value", "FORWARD", "PROTOBUF", new, [old])
    assert "required field added" in _protobuf_refusal(new, old, level="BACKWARD").problem
    check_compatibility("m-value", "BACKWARD", "PROTOBUF", old, [new])
    assert "required field removed" in _protobuf_refusal(old, new, level="FORWARD").problem


def test_protobuf_package_may_change_only_its_version_component() -> None:
    old = _proto(BASE, package="fleet.v1")
    check_compatibility("m-value", "FULL", "PROTOBUF", _proto(BASE, package="fleet.v2"), [old])
    error = _protobuf_refusal(_proto(BASE, package="other.v2"), old)
    assert error.field == "<package>" and "package changed" in error.problem


def test_protobuf_nested_messages_are_compared_too() -> None:
    old = _proto("message M { message N { int32 v = 1; } N n = 1; }")
    new = _proto("message M { message N { string v = 1; } N n = 1; }")
    assert _protobuf_refusal(new, old).field == "M.N.v"
