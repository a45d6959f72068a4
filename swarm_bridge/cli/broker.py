"""`swarm-bridge broker start|stop|status`: local Mosquitto and Kafka, detached, in a run directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from swarm_bridge.brokers import BrokerError, Kafka, Mosquitto
from swarm_bridge.brokers.process import service_status, stop_service
from swarm_bridge.brokers.service import BrokerService

__all__ = ["register"]

_SERVICES: dict[str, type[BrokerService]] = {"mosquitto": Mosquitto, "kafka": Kafka}
_CHOICES = (*_SERVICES, "all")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `broker` command and its `start`, `stop` and `status` subcommands."""
    broker = sub.add_parser(
        "broker",
        help="start, stop or inspect a local Mosquitto/Kafka",
        description="Run a real Mosquitto and a single-node Kafka on loopback for tests and demos. "
        "Config, data, logs (<name>.log) and pidfiles live in the run directory; "
        "restarting on the same run directory keeps the data.",
    )
    actions = broker.add_subparsers(dest="broker_command", metavar="ACTION", required=True)

    start = actions.add_parser("start", help="start brokers detached; print where to connect")
    start.add_argument("service", choices=_CHOICES)
    _add_run_dir(start)
    start.add_argument("--mqtt-port", type=int, default=1883, help="Mosquitto port (default: 1883)")
    start.add_argument("--kafka-port", type=int, default=9092, help="Kafka client port (default: 9092)")
    start.add_argument(
        "--kafka-controller-port", type=int, default=9093, help="Kafka KRaft controller port (default: 9093)"
    )
    start.add_argument("--mqtt-acl", type=Path, help="Mosquitto ACL file (e.g. docker/mosquitto/acl); refuses "
                       "anonymous clients (docs/broker-security.md)")
    start.add_argument("--mqtt-password-file", type=Path, help="Mosquitto password file made with mosquitto_passwd")
    start.set_defaults(run=_start)

    stop = actions.add_parser("stop", help="stop brokers started with `broker start`")
    stop.add_argument("service", choices=_CHOICES)
    _add_run_dir(stop)
    stop.set_defaults(run=_stop)

    status = actions.add_parser("status", help="show which brokers are running in the run directory")
    _add_run_dir(status)
    status.set_defaults(run=_status)


def _add_run_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run-dir", type=Path, default=Path(".run"), help="config, data, logs, pidfiles (default: .run)"
    )


def _names(choice: str) -> list[str]:
    return list(_SERVICES) if choice == "all" else [choice]


def _build(name: str, args: argparse.Namespace) -> BrokerService:
    if name == "mosquitto":
        return Mosquitto(run_dir=args.run_dir, port=args.mqtt_port, acl_file=getattr(args, "mqtt_acl", None),
                         password_file=getattr(args, "mqtt_password_file", None))
    return Kafka(run_dir=args.run_dir, port=args.kafka_port, controller_port=args.kafka_controller_port)


def _start(args: argparse.Namespace) -> int:
    """Start each chosen broker; on failure stop the ones this command started, exit 2."""
    started: list[BrokerService] = []
    try:
        for name in _names(args.service):
            service = _build(name, args)
            service.start()
            started.append(service)
            print(f"{name}: running (pid {service.pid}) at {service.address}; log {service.log_path}")
    except BrokerError as exc:
        for service in reversed(started):
            service.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _stop(args: argparse.Namespace) -> int:
    """Stop each chosen broker from its pidfile (Kafka first when stopping all)."""
    try:
        for name in reversed(_names(args.service)):
            before = stop_service(args.run_dir, name, timeout=_SERVICES[name].stop_timeout)
            print(f"{name}: stopped (was pid {before.pid})" if before.running else f"{name}: not running")
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _status(args: argparse.Namespace) -> int:
    """Print running/stopped for every broker in the run directory."""
    for name in _SERVICES:
        print(service_status(args.run_dir, name))
    return 0
