"""Bad input on the gateway's MQTT path: arbitrary and mutated payloads, oversized ones, hostile topics.

Every payload becomes records or dead letters with a reason, never an exception; a topic that is not one robot's
(wildcards, NUL, empty levels, foreign fleets) is unroutable; commands are never published on a wildcard topic.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarm_bridge.codec.framing import frame_batch
from swarm_bridge.codec.registry import FileRegistry
from swarm_bridge.config import GatewayConfig
from swarm_bridge.gateway.heads import avro_head, json_head
from swarm_bridge.gateway.rules import down_routes, up_rules
from swarm_bridge.gateway.schemas import SchemaBook
from swarm_bridge.gateway.translate import Translation, Translator
from swarm_bridge.sim import DEFAULT_MIX, SimRobot

EXAMPLES = 300
MAX_PAYLOAD = 4096
CONFIG = GatewayConfig.model_validate({"gateway_id": "gw", "fleet": "f"})
RULES = up_rules(CONFIG)
ODOM, _IMU, BATTERY, _STATE = DEFAULT_MIX
REASONS = {"malformed_batch", "too_large", "bad_record", "unknown_framing", "envelope_mismatch", "unknown_schema",
           "incompatible_schema"}
CONTENT_TYPES = [None, "avro/binary; encoding=single-object", "application/x-protobuf", "application/json",
                 "application/x-protobuf; messageType=nope", "\x00"]
HOSTILE_IDS = ["a/b", "+", "#", "amr+1", "amr#", "a\x00b", "", "x" * 300, "ロボット", "amr_1/#", "amr_1/+/x"]


@pytest.fixture(scope="module")
def translator(tmp_path_factory: pytest.TempPathFactory) -> Translator:
    return Translator(SchemaBook(FileRegistry(tmp_path_factory.mktemp("registry"))), max_payload=MAX_PAYLOAD)


def _robot_records() -> list[bytes]:
    robot = SimRobot("amr_1", "f", [BATTERY])
    return [robot.record(BATTERY) for _ in range(3)]


GOOD = _robot_records()
ROUTE = RULES.route(SimRobot("amr_1", "f", [BATTERY]).topic(BATTERY))


def _accounted(out: Translation, payload: bytes) -> None:
    """Every record of `payload` is a record or a dead letter with a known reason and a detail."""
    assert all(d.reason in REASONS and d.detail for d in out.dead), [(d.reason, d.detail) for d in out.dead]
    assert out.records or out.dead, f"{payload[:32]!r}: neither a record nor a dead letter"
    for record in out.records:
        assert record.head is not None and record.head.robot_id == "amr_1"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600), st.sampled_from(CONTENT_TYPES))
def test_fuzz_arbitrary_bytes_become_records_or_dead_letters(translator: Translator, payload: bytes,
                                                             content_type: str | None) -> None:
    assert ROUTE is not None
    _accounted(translator.translate(ROUTE, payload, content_type), payload)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(range(len(GOOD))), min_size=1, max_size=6), st.data())
def test_fuzz_mutated_batches_keep_the_good_records_and_dead_letter_the_rest(
        translator: Translator, picks: list[int], data: st.DataObject) -> None:
    assert ROUTE is not None
    parts = [GOOD[i] for i in picks]
    spoiled = data.draw(st.sets(st.integers(0, len(parts) - 1)))
    for index in spoiled:
        at = data.draw(st.integers(0, len(parts[index]) - 1))
        cut = data.draw(st.booleans())
        parts[index] = parts[index][:at] if cut else parts[index][:at] + bytes([parts[index][at] ^ 0xFF]) \
            + parts[index][at + 1:]
    payload = frame_batch(parts)
    if data.draw(st.booleans()):  # spoil the batch framing itself
        at = data.draw(st.integers(0, len(payload) - 1))
        payload = payload[:at] + bytes([payload[at] ^ data.draw(st.integers(1, 255))]) + payload[at + 1:]
        _accounted(translator.translate(ROUTE, payload, "avro/binary"), payload)
        return
    out = translator.translate(ROUTE, payload, "avro/binary")
    _accounted(out, payload)
    assert len(out.records) + len(out.dead) == len(parts)
    untouched = [i for i in range(len(parts)) if i not in spoiled and parts[i] == GOOD[picks[i]]]
    assert len(out.records) >= len(untouched)


def test_oversized_payload_and_record_are_dead_letters_naming_the_limit(translator: Translator) -> None:
    assert ROUTE is not None
    big = frame_batch([GOOD[1], b"{" + b" " * MAX_PAYLOAD + b"}"])
    out = translator.translate(ROUTE, big, "avro/binary")
    assert [d.reason for d in out.dead] == ["malformed_batch"] or [d.reason for d in out.dead] == ["too_large"]
    assert f"max_payload {MAX_PAYLOAD}" in out.dead[0].detail or str(MAX_PAYLOAD) in out.dead[0].detail
    single = b"{" + b" " * (MAX_PAYLOAD + 10) + b"}"
    out = translator.translate(ROUTE, single, "application/json")
    assert out.records == [] and len(out.dead) == 1 and str(MAX_PAYLOAD) in out.dead[0].detail


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_envelope_heads_raise_only_record_errors(data: bytes) -> None:
    from swarm_bridge.codec.errors import RecordError

    for read in (avro_head, json_head):
        try:
            head = read(data)
        except RecordError as exc:
            assert str(exc)
        else:
            assert isinstance(head.seq, int) and isinstance(head.robot_id, str)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["swarm", "f", "amr_1", "telemetry", "odometry", "+", "#", "", "\x00"]),
                          st.text(max_size=12)), max_size=8))
def test_fuzz_topics_resolve_to_one_robot_or_none(levels: list[str]) -> None:
    topic = "/".join(levels)
    route = RULES.route(topic)
    if route is not None:
        assert route.robot_id and not any(c in route.robot_id for c in "/+#")
        assert route.mqtt_topic == topic


@pytest.mark.parametrize("robot_id", HOSTILE_IDS)
def test_hostile_robot_ids_in_topics_are_unroutable_or_a_single_level(robot_id: str) -> None:
    topic = f"swarm/f/{robot_id}/telemetry/odometry"
    route = RULES.route(topic)
    if any(c in robot_id for c in "/") or robot_id == "":
        assert route is None, f"{topic!r} routed as robot {route.robot_id if route else None!r}"
    elif route is not None:
        assert route.robot_id == robot_id  # one level: the envelope must then name the same robot


@pytest.mark.parametrize("robot_id", [i for i in HOSTILE_IDS if any(c in i for c in "/+#\0") or not i])
def test_commands_are_never_published_on_a_wildcard_topic(robot_id: str) -> None:
    for route in down_routes(CONFIG):
        with pytest.raises(ValueError, match="is not a robot id"):
            route.mqtt_topic(robot_id)
        assert "+" not in route.mqtt_topic("amr_1") and "#" not in route.mqtt_topic("amr_1")


def test_simulated_robots_never_publish_on_a_wildcard_topic() -> None:
    robot = SimRobot("amr_1", "f", list(DEFAULT_MIX))
    topics = [robot.topic(spec) for spec in DEFAULT_MIX] + [robot.presence_topic]
    assert all("+" not in t and "#" not in t and "\x00" not in t for t in topics)
    assert all(RULES.route(robot.topic(spec)) is not None for spec in DEFAULT_MIX)
    for robot_id in [i for i in HOSTILE_IDS if any(c in i for c in "/+#\0") or not i]:
        hostile = SimRobot(robot_id, "f", list(DEFAULT_MIX))
        with pytest.raises(ValueError, match=r"robot_id .* is not one MQTT topic level"):
            hostile.next(ODOM)


def test_a_record_of_another_robot_on_this_robots_topic_is_a_dead_letter(translator: Translator) -> None:
    foreign = SimRobot("amr_2", "f", [BATTERY]).record(BATTERY)
    assert ROUTE is not None
    out = translator.translate(ROUTE, foreign, "avro/binary")
    assert [d.reason for d in out.dead] == ["envelope_mismatch"] and "amr_2" in out.dead[0].detail


def test_payload_refusals_name_the_reason_and_the_topic(translator: Translator, tmp_path: Path) -> None:
    assert ROUTE is not None
    out = translator.translate(ROUTE, b"\x07garbage", None)
    headers = dict(out.dead[0].headers(None))
    assert headers["reason"] == b"unknown_framing" and headers["mqtt_topic"] == ROUTE.mqtt_topic.encode()
