"""JSON records: lossless round trip of the envelope and body, clear errors for bad payloads."""

from __future__ import annotations

import math

import pytest

from swarm_bridge.codec import Envelope, RecordError, decode_json, encode_json


def _envelope(**body: object) -> Envelope:
    return Envelope(robot_id="amr_007", stream="odometry", seq=41, stamp_ns=1_700_000_000_123_456_789,
                    ros_type="nav_msgs/msg/Odometry", body=dict(body))


def test_round_trip_keeps_every_field() -> None:
    original = _envelope(x=1.5, name="ünï", ids=[1, 2, 3], nested={"a": {"b": True}}, big=2**64 - 1)
    assert decode_json(encode_json(original)) == original


def test_non_finite_floats_survive() -> None:
    decoded = decode_json(encode_json(_envelope(nan=math.nan, up=math.inf, down=-math.inf)))
    assert math.isnan(decoded.body["nan"])
    assert decoded.body["up"] == math.inf and decoded.body["down"] == -math.inf


def test_bytes_become_int_lists() -> None:
    assert decode_json(encode_json(_envelope(data=b"\x00\xff"))).body["data"] == [0, 255]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [(b"\xff\xfe", "not a JSON record"),
     (b"[1, 2]", "expected a JSON object, got list"),
     (b'{"robot_id": "a"}', "stream: missing"),
     (b'{"robot_id":"a","stream":"s","seq":"7","stamp_ns":1,"ros_type":"t","schema_version":1,"body":{}}',
      "seq: must be an integer"),
     (b'{"robot_id":"a","stream":"s","seq":7,"stamp_ns":1,"ros_type":"t","schema_version":1,"body":[]}',
      "body: must be an object")],
)
def test_bad_payloads_name_the_problem(payload: bytes, expected: str) -> None:
    with pytest.raises(RecordError, match=expected):
        decode_json(payload)
