"""Benchmark: the bridge's CDR <-> record translation against the bare encoders, in one run, no ROS needed.

For nav_msgs/msg/Odometry and sensor_msgs/msg/Imu (CDR samples written by RosTypes):
  avro encode      codec.encode_cdr(raw CDR)    vs  fastavro schemaless_writer on a prebuilt record dict
  avro decode      codec.decode_cdr(payload)    vs  fastavro schemaless_reader
  protobuf encode  codec.encode_cdr(raw CDR)    vs  upb SerializeToString of a prebuilt message
  protobuf decode  codec.decode_cdr(payload)    vs  upb FromString
Ratio = bridge time / bare time per record (goal: <= 2.0). Each figure is the best of several rounds,
bridge and bare measured alternately. Last line: one JSON object with every figure.

  python bench/codec.py [--quick]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time
from collections.abc import Callable
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from swarm_bridge.codec import AvroRecordCodec, Envelope, ProtoRecordCodec, RosTypes
from swarm_bridge.signals import terminate_as_interrupt

TYPES = ("nav_msgs/msg/Odometry", "sensor_msgs/msg/Imu")
GOAL = 2.0


def sample_message(types: RosTypes, ros_type: str) -> dict[str, Any]:
    """A realistic message: stamped, framed, every float non-zero."""
    message = types.default_message(ros_type)
    counter = iter(range(1, 1000))

    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return math.sqrt(next(counter)) / 7 if isinstance(value, float) else value

    message = fill(message)
    message["header"] = {"stamp": {"sec": 1_767_225_600, "nanosec": 123_456_789}, "frame_id": "amr_007/odom"}
    if "child_frame_id" in message:
        message["child_frame_id"] = "amr_007/base_link"
    return message


def per_second(run: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        run()
    return count / (time.perf_counter() - start)


def compare(bridge: Callable[[], object], bare: Callable[[], object], count: int, rounds: int) -> dict[str, float]:
    """Best rate of each over `rounds` alternating rounds of `count` calls."""
    best_bridge = best_bare = 0.0
    for _ in range(rounds):
        best_bare = max(best_bare, per_second(bare, count))
        best_bridge = max(best_bridge, per_second(bridge, count))
    return {"bridge_per_s": round(best_bridge), "bare_per_s": round(best_bare),
            "ratio": round(best_bare / best_bridge, 3)}


def bench_type(types: RosTypes, ros_type: str, count: int, rounds: int) -> list[dict[str, Any]]:
    message = sample_message(types, ros_type)
    raw = types.dict_to_cdr(message, ros_type)
    envelope = Envelope("amr_007", "odometry", 41, 1_767_225_600_123_456_789, ros_type, message)
    avro, proto = AvroRecordCodec(ros_type, types), ProtoRecordCodec(ros_type, types)
    record = {"robot_id": envelope.robot_id, "stream": envelope.stream, "seq": envelope.seq,
              "stamp_ns": envelope.stamp_ns, "ros_type": ros_type, "schema_version": 1, "body": message}
    avro_payload = avro.encode(envelope)
    proto_payload = proto.encode(envelope)
    prebuilt = proto.record_class.FromString(proto_payload)
    parsed = avro._parsed  # the parsed schema the codec itself uses

    def cdr_to_avro() -> bytes:
        return avro.encode_cdr(raw, robot_id="amr_007", stream="odometry", seq=41, stamp_ns=envelope.stamp_ns)

    def fastavro_write() -> bytes:
        out = io.BytesIO()
        schemaless_writer(out, parsed, record)
        return out.getvalue()

    def cdr_to_proto() -> bytes:
        return proto.encode_cdr(raw, robot_id="amr_007", stream="odometry", seq=41, stamp_ns=envelope.stamp_ns)

    cases = [
        ("avro", "encode", cdr_to_avro, fastavro_write),
        ("avro", "decode", lambda: avro.decode_cdr(avro_payload),
         lambda: schemaless_reader(io.BytesIO(avro_payload), parsed, None)),
        ("protobuf", "encode", cdr_to_proto, prebuilt.SerializeToString),
        ("protobuf", "decode", lambda: proto.decode_cdr(proto_payload),
         lambda: proto.record_class.FromString(proto_payload)),
    ]
    results = []
    for fmt, direction, bridge, bare in cases:
        figures = compare(bridge, bare, count, rounds)
        results.append({"type": ros_type, "format": fmt, "direction": direction, **figures})
    sizes = {"cdr": len(raw), "avro": len(avro_payload), "protobuf": len(proto_payload),
             "protobuf_upb": len(prebuilt.SerializeToString())}  # upb leaves default values out
    for result in results:
        result["bytes"] = sizes
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (a few seconds)")
    args = parser.parse_args()
    count, rounds = (1_000, 3) if args.quick else (10_000, 7)
    types = RosTypes()
    results = [row for ros_type in TYPES for row in bench_type(types, ros_type, count, rounds)]
    print(f"{'type':<24} {'format':<9} {'direction':<9} {'bridge/s':>10} {'bare/s':>10} {'bridge/limit':>13}")
    for row in results:
        verdict = "ok" if row["ratio"] <= GOAL else "over goal"
        print(f"{row['type']:<24} {row['format']:<9} {row['direction']:<9} {row['bridge_per_s']:>10,} "
              f"{row['bare_per_s']:>10,} {row['ratio']:>12.2f}x  {verdict}")
    print(f"(ratio = bridge time / bare time per record; goal <= {GOAL}; {count} calls x {rounds} rounds, best round)")
    summary = {
        "bench": "codec", "quick": args.quick, "count": count, "rounds": rounds, "goal_ratio": GOAL,
        "results": results,
        "ratios": {f"{r['type'].rsplit('/', 1)[1]}.{r['format']}.{r['direction']}": r["ratio"] for r in results},
        "max_ratio": max(r["ratio"] for r in results),
    }
    print(json.dumps(summary, separators=(",", ":")))


if __name__ == "__main__":
    with terminate_as_interrupt():  # SIGTERM cleans up as Ctrl-C does
        main()
