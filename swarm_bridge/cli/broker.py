"""`swarm-bridge broker start|stop|status`: local Mosquitto and Kafka, detached, in a run directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from swarm_bridge.brokers import BrokerError, Kafka, KafkaCluster, Mosquitto
from swarm_bridge.brokers.process import ServiceStatus, at_once, service_status, stop_service
from swarm_bridge.brokers.service import BrokerService

__all__ = ["register"]

_SERVICES: dict[str, type[BrokerService]] = {"mosquitto": Mosquitto, "kafka": Kafka}
_CHOICES = (*_SERVICES, "all")
_CLUSTER_DIR = "kafka-cluster"  # a cluster's nodes live in <run dir>/kafka-cluster/node-<n>/


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `broker` command and its `start`, `stop` and `status` subcommands."""
    broker = sub.add_parser(
        "broker",
        help="start, stop or inspect a local Mosquitto/Kafka",
        description="Run a real Mosquitto and a Kafka (one node, or a KRaft cluster with --kafka-brokers) on "
        "loopback for tests and demos. Config, data, logs (<name>.log) and pidfiles live in the run directory "
        "(a cluster's nodes in kafka-cluster/node-<n>/); restarting on the same run directory keeps the data.",
    )
    actions = broker.add_subparsers(dest="broker_command", metavar="ACTION", required=True)

    start = actions.add_parser("start", help="start brokers detached; print where to connect")
    start.add_argument("service", choices=_CHOICES)
    _add_run_dir(start)
    start.add_argument("--mqtt-port", type=int, default=1883, help="Mosquitto port (default: 1883)")
    start.add_argument("--kafka-port", type=int, default=9092, help="Kafka client port (default: 9092)")
    start.add_argument("--kafka-brokers", type=int, default=1, metavar="N",
                       help="Kafka nodes (default 1). N > 1: a KRaft cluster on --kafka-port and the N-1 ports "
                       "after it; Kafka's own topics replicated 3, 2 in sync, from 3 nodes")
    start.add_argument("--kafka-controller-port", type=int, default=None,
                       help="Kafka KRaft controller port (default: 9093; a cluster's: the N ports after its client "
                       "ports)")
    start.add_argument("--mqtt-acl", type=Path, help="Mosquitto ACL file (e.g. docker/mosquitto/acl); refuses "
                       "anonymous clients (docs/broker-security.md)")
    start.add_argument("--mqtt-password-file", type=Path, help="Mosquitto password file made with mosquitto_passwd")
    start.add_argument("--mqtt-socket", type=Path, help="also listen on this Unix-domain socket, for a gateway on "
                       "this machine (its mqtt.unix_socket; docs/gateway.md)")
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


def _build(name: str, args: argparse.Namespace) -> BrokerService | KafkaCluster:
    if name == "mosquitto":
        return Mosquitto(run_dir=args.run_dir, port=args.mqtt_port, acl_file=getattr(args, "mqtt_acl", None),
                         password_file=getattr(args, "mqtt_password_file", None),
                         unix_socket=getattr(args, "mqtt_socket", None))
    size, controller = args.kafka_brokers, args.kafka_controller_port
    if size > 1:  # controller ports right after the client ports unless given
        return KafkaCluster(run_dir=args.run_dir / _CLUSTER_DIR, size=size, port=args.kafka_port,
                            controller_port=controller if controller is not None else args.kafka_port + size)
    return Kafka(run_dir=args.run_dir, port=args.kafka_port, controller_port=9093 if controller is None else controller)


def _started(name: str, service: BrokerService | KafkaCluster) -> list[str]:
    """What to print once `service` runs: where to connect, its pid and log (each node's, for a cluster)."""
    if isinstance(service, KafkaCluster):
        lines = [f"{name} node {node.node_id}: running (pid {node.pid}) at {node.address}; log {node.log_path}"
                 for node in service.nodes]
        return [*lines, f"{name}: {len(service.nodes)}-node cluster running; bootstrap {service.bootstrap}"]
    return [f"{name}: running (pid {service.pid}) at {service.address}; log {service.log_path}"]


def _start(args: argparse.Namespace) -> int:
    """Start each chosen broker; on failure stop the ones this command started, exit 2."""
    started: list[BrokerService | KafkaCluster] = []
    try:
        if args.kafka_brokers < 1:
            raise BrokerError("kafka", f"--kafka-brokers must be >= 1 (got {args.kafka_brokers})",
                              "give 1 (one node) or 3 (a cluster that survives a node's loss)")
        for name in _names(args.service):
            service = _build(name, args)
            service.start()
            started.append(service)
            print("\n".join(_started(name, service)))
    except (BrokerError, ValueError) as exc:  # BrokerSettingError is a ValueError
        for service in reversed(started):
            service.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _cluster_nodes(run_dir: Path) -> list[tuple[str, Path]]:
    """(label, run dir) of every node of a cluster started in `run_dir`, by node id."""
    base = run_dir / _CLUSTER_DIR
    dirs = [d for d in base.glob("node-*") if d.is_dir() and d.name[5:].isdigit()] if base.is_dir() else []
    return [(f"kafka node {d.name[5:]}", d) for d in sorted(dirs, key=lambda d: int(d.name[5:]))]


def _stop_nodes(run_dir: Path) -> list[str]:
    """Stop a cluster's nodes at once (one by one, the last would wait for a quorum already gone)."""
    nodes = _cluster_nodes(run_dir)
    lines: dict[str, str] = {}

    def stop(node: tuple[str, Path]) -> None:
        label, node_dir = node
        before = stop_service(node_dir, "kafka", timeout=Kafka.stop_timeout)
        lines[label] = f"{label}: stopped (was pid {before.pid})" if before.running else f"{label}: not running"

    errors = at_once(nodes, stop)
    if errors:
        raise errors[0]
    return [lines[label] for label, _dir in nodes]


def _stop(args: argparse.Namespace) -> int:
    """Stop each chosen broker from its pidfile (Kafka first when stopping all; a cluster's nodes too)."""
    try:
        for name in reversed(_names(args.service)):
            nodes = _stop_nodes(args.run_dir) if name == "kafka" else []
            before = stop_service(args.run_dir, name, timeout=_SERVICES[name].stop_timeout)
            if before.running or not nodes:
                print(f"{name}: stopped (was pid {before.pid})" if before.running else f"{name}: not running")
            for line in nodes:
                print(line)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _status(args: argparse.Namespace) -> int:
    """Print running/stopped for every broker in the run directory (each node of a cluster)."""
    for name in _SERVICES:
        print(service_status(args.run_dir, name))
    for label, node_dir in _cluster_nodes(args.run_dir):
        print(ServiceStatus(label, service_status(node_dir, "kafka").pid))
    return 0
