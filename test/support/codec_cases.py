"""Shared helpers of the codec tests: `codec_types()` (installed types plus a kitchen-sink package that uses every
kind of field), `messages(types, ros_type)`, a hypothesis strategy for valid messages of any type, and the
round trip every record codec must pass."""

from __future__ import annotations

import atexit
import math
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from swarm_bridge.codec import (
    Envelope,
    RosField,
    RosTypes,
)

PACKAGES = ("std_msgs", "geometry_msgs", "sensor_msgs", "nav_msgs", "diagnostic_msgs", "tf2_msgs",
            "builtin_interfaces", "swarm_bridge_msgs")
# A package of test messages that use every kind of field the .msg format has.
KITCHEN = {
    "Everything": """
bool b
byte by
char ch
int8 i8
uint8 u8
int16 i16
uint16 u16
int32 i32
uint32 u32
int64 i64
uint64 u64
float32 f32
float64 f64
string s
wstring ws
string<=5 bs
wstring<=4 bws
bool[3] fb
int8[2] fi8
uint16[3] fu16
int64[2] fi64
uint64[2] fu64
float32[2] ff32
float64[3] ff64
string[2] fs
wstring[2] fws
uint8[4] fu8
byte[3] fby
char[2] fch
int32[] si32
uint64[] su64
float32[] sf32
float64[] sf64
bool[] sb
string[] ss
wstring[] sws
uint8[] su8
byte[] sby
int16[<=3] bi16
string<=3[<=2] bss
uint8[<=5] bu8
float64[<=4] bf64
Inner inner
Inner[2] finner
Inner[] sinner
Inner[<=2] binner
builtin_interfaces/Time t
builtin_interfaces/Duration[] durations
std_msgs/Empty empty
std_msgs/Empty[] empties
""",
    "Inner": "uint8 a\nfloat64 x\nstring name\nint16[] values\n",
    # No wstring, so that rosbags (which has none) can check the layout independently.
    "Aligned": "uint8 a\nfloat64[] d\nbool c\nint64 e\nstring s\nuint16[] h\nfloat64 f\nInner[] inner\n"
               "uint8[] bytes\nint32 last\n",
    "Fixed": "uint8 a\nuint16 b\nbool c\n",
}
EXTRA_TYPES = tuple(sorted(f"codec_test_msgs/msg/{name}" for name in KITCHEN))
# ~20 examples per type keeps each codec test file under ~20 s; SWARM_CODEC_EXAMPLES=500 for a long soak.
settings.register_profile(
    "swarm_codec", max_examples=int(os.environ.get("SWARM_CODEC_EXAMPLES", "20")), deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
CODEC_EXAMPLES = settings.get_profile("swarm_codec")  # used as a decorator: other tests keep their profile


@cache
def codec_types() -> RosTypes:
    """Installed types plus the kitchen-sink package `codec_test_msgs` (written to a temp dir)."""
    root = Path(tempfile.mkdtemp(prefix="codec_test_msgs_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    (root / "codec_test_msgs" / "msg").mkdir(parents=True)
    for name, text in KITCHEN.items():
        (root / "codec_test_msgs" / "msg" / f"{name}.msg").write_text(text)
    return RosTypes(extra_msg_dirs=[root])


def covered_types() -> list[str]:
    """Every message type of the packages the issue names, plus the kitchen sink."""
    found = [t for t in codec_types().message_types() if t.split("/")[0] in PACKAGES]
    return [*found, *EXTRA_TYPES]


_RANGES = {
    "byte": (0, 255), "char": (0, 255), "uint8": (0, 255), "int8": (-128, 127), "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1), "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}
_TEXT = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")  # CDR strings end at NUL


def _string(f: RosField) -> st.SearchStrategy[str]:
    text = st.text(_TEXT, max_size=20)
    if not f.str_bound:
        return text
    bound = f.str_bound
    if f.type == "wstring":
        return text.map(lambda s: s.encode("utf-16-le")[: 2 * bound].decode("utf-16-le", "ignore"))
    return text.map(lambda s: s.encode()[:bound].decode("utf-8", "ignore"))


def _primitive(f: RosField) -> st.SearchStrategy[Any]:
    if f.type == "bool":
        return st.booleans()
    if f.type == "float32":
        return st.floats(width=32)
    if f.type == "float64":
        return st.floats()
    if f.type in ("string", "wstring"):
        return _string(f)
    low, high = _RANGES[f.type]
    return st.one_of(st.sampled_from([low, high, 0]), st.integers(low, high))


def messages(types: RosTypes, ros_type: str) -> st.SearchStrategy[dict[str, Any]]:
    """Valid message dicts of `ros_type`: full ranges, NaN/inf, empty and long arrays, unicode, nesting."""
    return _messages(types, ros_type)


@cache
def _messages(types: RosTypes, ros_type: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({f.name: _field(types, f) for f in types.fields(ros_type)})


def _field(types: RosTypes, f: RosField) -> st.SearchStrategy[Any]:
    element = st.deferred(lambda: _messages(types, f.type)) if f.is_message else _primitive(f)
    if f.kind in ("base", "nested"):
        return element
    if f.kind == "array":
        if f.is_bytes:
            return st.binary(min_size=f.size, max_size=f.size)
        return st.lists(element, min_size=f.size, max_size=f.size)
    short = f.size or (3 if f.is_message else 5)
    if f.is_bytes:
        return st.binary(max_size=short) if f.size else st.one_of(st.binary(max_size=5), st.binary(min_size=300,
                                                                                                  max_size=2000))
    lists = st.lists(element, max_size=short)
    return lists if f.size or f.is_message else st.one_of(lists, st.lists(element, min_size=100, max_size=300))


def same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to NaN and bytes as equal to the same list of ints."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, (bytes, bytearray)) or isinstance(b, (bytes, bytearray)):
        return list(a) == list(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def edge_envelope(ros_type: str, body: dict[str, Any]) -> Envelope:
    """An envelope at the edges of its field ranges, around `body`."""
    return Envelope(robot_id="amr_007", stream="telemetry", seq=2**63 - 1, stamp_ns=-(2**63), ros_type=ros_type,
                    body=body, schema_version=3)


@cache
def cached_codec(cls: Any, ros_type: str) -> Any:
    """One record codec of `cls` per ROS type for the whole run (building one generates code)."""
    return cls(ros_type, codec_types())


def check_round_trip(codec: Any, ros_type: str, message: dict[str, Any]) -> tuple[bytes, bytes]:
    """dict -> record -> dict is lossless and raw CDR -> record -> raw CDR is byte-identical;
    returns (the record from the dict, the record from CDR)."""
    types = codec_types()
    envelope = edge_envelope(ros_type, message)
    payload = codec.encode(envelope)
    decoded = codec.decode(payload)
    assert same(decoded.body, message)
    assert decoded == Envelope(**{**envelope.__dict__, "body": decoded.body})
    raw = types.dict_to_cdr(message, ros_type)
    fast = codec.encode_cdr(raw, robot_id="amr_007", stream="telemetry", seq=2**63 - 1, stamp_ns=-(2**63),
                            schema_version=3)
    header, back = codec.decode_cdr(fast)
    assert back == raw
    assert header == Envelope(**{**envelope.__dict__, "body": {}})
    return payload, fast
