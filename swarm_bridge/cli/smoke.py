"""`swarm-bridge smoke`: ROS messages from two robots through MQTT and Kafka, and what arrived (a quick check of a
machine's install; the fleet demo is `swarm-bridge demo`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from swarm_bridge.cli.demo import mqtt_endpoint
from swarm_bridge.cli.errors import UsageError
from swarm_bridge.config.common import ROUTE_FORMATS

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the `smoke` command."""
    parser = sub.add_parser(
        "smoke",
        help="quick check: two robots' ROS messages -> robot bridges -> MQTT and Kafka, and what arrived",
        description=(
            "Two robots publish RobotState and TaskStatus on ROS; amr_001's bridge sends them over MQTT, "
            "drone_002's over Kafka; taps read them back and the report compares counts and content. "
            "Brokers not given are started privately (Mosquitto and single-node Kafka) and stopped after."
        ),
    )
    parser.add_argument("--mqtt", metavar="URL", help="use this MQTT broker (mqtt://host:port)")
    parser.add_argument("--kafka", metavar="BOOTSTRAP", help="use this Kafka cluster (host:port)")
    parser.add_argument("--format", choices=tuple(ROUTE_FORMATS), default="avro",
                        help="record format (default avro: single-object on MQTT, Confluent framing with the "
                        "embedded file registry on Kafka; protobuf applies to the MQTT robot, Kafka keeps avro)")
    parser.add_argument("--count", type=int, default=200, help="messages per stream per robot (default 200)")
    parser.add_argument("--rate", type=float, default=100.0, help="publish rate in Hz (default 100)")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: pid-based)")
    parser.add_argument("--run-dir", type=Path, default=None, help="where broker logs go (default: temp)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait at each stage")
    parser.add_argument("--report-json", type=Path, help="also write the report as JSON here")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Start what is missing, run the smoke fleet, print the report; 0 when every record arrived."""
    from swarm_bridge.brokers import BrokerError, Kafka, Mosquitto, free_port
    from swarm_bridge.demo import SmokeFleet, robot_config, ros_context
    from swarm_bridge.transport import LinkError

    if args.count < 1 or args.rate <= 0:
        print("smoke: --count must be >= 1 and --rate > 0", file=sys.stderr)
        return 2
    domain_id = args.domain_id if args.domain_id is not None else 1 + os.getpid() % 100
    with ExitStack() as stack:
        run_dir = args.run_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="swarm-demo-")))
        try:
            mqtt_host, mqtt_port = mqtt_endpoint(args.mqtt)
            if args.mqtt is None:
                mqtt_port = _start_private(stack, Mosquitto(run_dir=run_dir / "mosquitto", port=free_port()))
            kafka_host, kafka_port = _kafka_endpoint(args.kafka)
            if args.kafka is None:
                kafka_port = _start_private(stack, Kafka(run_dir=run_dir / "kafka", port=free_port()))
        except (BrokerError, ValueError) as exc:
            print(f"smoke: {exc}", file=sys.stderr)
            return 2
        registry = str(run_dir / "registry")
        configs = [
            robot_config("amr_001", uplink="mqtt", host=mqtt_host, port=mqtt_port, fmt=args.format),
            robot_config("drone_002", uplink="kafka", host=kafka_host, port=kafka_port,
                         fmt=args.format if "kafka" in ROUTE_FORMATS[args.format] else "avro", registry=registry),
        ]
        started = time.monotonic()
        try:
            with ros_context(domain_id) as context, SmokeFleet(context, configs) as fleet:
                fleet.open()
                ok = fleet.run(count=args.count, rate_hz=args.rate, timeout_s=args.timeout)
                results = list(fleet.results.values())
        except LinkError as exc:
            print(f"smoke: {exc}", file=sys.stderr)
            return 3
        report = _report(results, time.monotonic() - started)
        _print(report)
        if args.report_json:
            args.report_json.write_text(json.dumps(report, indent=2) + "\n")
        return 0 if ok else 1
    return 1  # pragma: no cover - ExitStack does not swallow


def _start_private(stack: ExitStack, broker: Any) -> int:
    """Start `broker` for this run only (stopped when `stack` closes); returns its port."""
    print(f"smoke: starting a private {broker.name} ...", flush=True)
    broker.start()
    stack.callback(broker.stop)
    port: int = broker.port
    return port



def _kafka_endpoint(bootstrap: str | None) -> tuple[str, int]:
    if bootstrap is None:
        return "127.0.0.1", 0
    host, _, port = bootstrap.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--kafka {bootstrap!r}", "expected host:port",
                         "e.g. --kafka 127.0.0.1:9092, or leave --kafka out to start a private broker")
    return host, int(port)


def _report(results: list[Any], elapsed_s: float) -> dict[str, Any]:
    streams = []
    for r in results:
        seqs = [e.seq for e in r.arrived]
        sample = r.arrived[-1].body if r.arrived else None
        streams.append({
            "robot_id": r.robot_id, "uplink": r.uplink, "format": r.format, "stream": r.stream,
            "destination": r.destination,
            "published": r.published, "bridged": r.bridged, "arrived": len(r.arrived),
            "duplicates": len(seqs) - len(set(seqs)), "missing": max(0, r.published - len(set(seqs))),
            "complete": r.complete, "last_record": sample,
        })
    return {"elapsed_s": round(elapsed_s, 2), "all_arrived": all(s["complete"] for s in streams),
            "streams": streams}


def _print(report: dict[str, Any]) -> None:
    header = f"{'robot':<10} {'uplink':<6} {'format':<8} {'stream':<12} {'destination':<38} {'ROS':>5} " \
             f"{'sent':>5} {'arrived':>7} {'dup':>4} {'miss':>4}"
    print("\n" + header + "\n" + "-" * len(header))
    for s in report["streams"]:
        print(f"{s['robot_id']:<10} {s['uplink']:<6} {s['format']:<8} {s['stream']:<12} {s['destination']:<38} "
              f"{s['published']:>5} {s['bridged']:>5} {s['arrived']:>7} {s['duplicates']:>4} {s['missing']:>4}")
    for s in report["streams"]:
        if s["last_record"] is not None:
            body = json.dumps(s["last_record"])
            print(f"\nlast {s['stream']} of {s['robot_id']} via {s['uplink']}: "
                  f"{body[:300]}{'...' if len(body) > 300 else ''}")
    verdict = "every record arrived, in order, once" if report["all_arrived"] else "RECORDS MISSING"
    print(f"\n{verdict} ({report['elapsed_s']} s)")
