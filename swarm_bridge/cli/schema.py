"""`swarm-bridge schema`: the Avro/Protobuf schemas of ROS types and fleet messages, and the registry."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

__all__ = ["register"]

EXIT_INCOMPATIBLE = 1
EXIT_USAGE = 2
EXIT_REGISTRY = 3


def register(sub: Any) -> None:
    """Add the `schema` command and its subcommands."""
    from swarm_bridge.codec.registry.subjects import SUBJECT_NAME_STRATEGIES

    parser = sub.add_parser("schema", help="show, register, check and export record schemas",
                            description="Schemas of any installed ROS message type (derived, never written by "
                            "hand) and of the fleet's own messages (schemas/), and the schema registry.")
    commands = parser.add_subparsers(dest="schema_command", metavar="SUBCOMMAND", required=True)
    registry_help = "registry: a directory (embedded file registry) or http(s)://host:port/... (Confluent API); " \
                    "default $SWARM_BRIDGE_REGISTRY or ~/.local/state/swarm_bridge/registry"

    listing = commands.add_parser("list", help="list installed ROS message types, or the registry's subjects")
    listing.add_argument("--prefix", default="", help="only types starting with this, e.g. sensor_msgs/")
    listing.add_argument("--subjects", action="store_true", help="list the registry's subjects instead")
    listing.add_argument("--registry", default=None, help=registry_help)
    listing.set_defaults(run=_list)

    show = commands.add_parser("show", help="print the record schema of a ROS type")
    show.add_argument("ros_type", metavar="TYPE", help="e.g. sensor_msgs/msg/BatteryState")
    show.add_argument("--format", choices=("avro", "proto", "json"), default="avro",
                      help="avro: the Avro record schema; proto: .proto source; json: the ROS field layout")
    show.add_argument("--msg-dir", action="append", default=[], help="extra .msg definitions (<dir>/<pkg>/msg/*.msg)")
    show.set_defaults(run=_show)

    for name, run, text in (("register", _register, "register a schema (ROS type or .avsc/.proto file)"),
                            ("check", _check, "check a schema, or every route of a robot config (--config: a dry "
                             "run listing what would break), against the registry (exit 1 if any would)")):
        cmd = commands.add_parser(name, help=text)
        cmd.add_argument("source", metavar="TYPE_OR_FILE", nargs="?" if name == "check" else None,
                         help="a ROS type (Avro) or a .avsc / .proto file")
        if name == "check":
            cmd.add_argument("--config", type=Path, help="robot bridge YAML: check each route's schema (and pin) "
                             "under the subject the robot registers it, writing nothing")
        cmd.add_argument("--subject", help="registry subject (default: --topic's '<topic>-value', else the "
                         "record's full name)")
        cmd.add_argument("--topic", help="Kafka topic the records go to: subject '<topic>-value'")
        cmd.add_argument("--subject-name-strategy", choices=list(SUBJECT_NAME_STRATEGIES), default=None,
                         help="name the subject as the fleet's configs do (their subject_name_strategy key;"
                         " default: topic_name with --topic, else record_name)")
        cmd.add_argument("--registry", default=None, help=registry_help)
        cmd.add_argument("--msg-dir", action="append", default=[], help="extra .msg definitions")
        cmd.set_defaults(run=run)

    pin = commands.add_parser("pin", help="pin a robot's route to a registered version of its subject (rollout, "
                              "rollback), or unpin it")
    pin.add_argument("--config", required=True, type=Path, help="robot bridge YAML")
    pin.add_argument("--stream", required=True, help="the route's stream, e.g. robot_state")
    which = pin.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", type=int, help="the registered version to write, e.g. 1")
    which.add_argument("--unpin", action="store_true", help="write the robot's own schema again")
    pin.add_argument("--registry", default=None, help=registry_help + " (default: the config's registry)")
    pin.add_argument("--write", action="store_true", help="rewrite the config file with the pin (its comments are "
                     "not kept); without it, print the override to start the robot with")
    pin.set_defaults(run=_pin)

    export = commands.add_parser("export", help="write every schema a robot bridge config needs")
    export.add_argument("--config", required=True, type=Path, help="robot bridge YAML")
    export.add_argument("--out", type=Path, default=Path("schemas-export"), help="directory (created)")
    export.add_argument("--format", choices=("avro", "proto"), default="avro",
                        help="avro: one .avsc per record; proto: one .proto per ROS message (default: avro)")
    export.set_defaults(run=_export)


def _types(args: argparse.Namespace) -> Any:
    from swarm_bridge.codec.rostypes import RosTypes, default_types

    dirs = getattr(args, "msg_dir", [])
    return RosTypes(extra_msg_dirs=dirs) if dirs else default_types()


def _list(args: argparse.Namespace) -> int:
    if args.subjects:
        from swarm_bridge.codec.errors import CodecError
        from swarm_bridge.codec.registry import open_registry
        from swarm_bridge.config import default_registry

        try:
            for subject in open_registry(args.registry or default_registry()).subjects():
                print(subject)
        except CodecError as exc:
            print(f"schema list: {exc}", file=sys.stderr)
            return EXIT_REGISTRY
        return 0
    for ros_type in _types(args).message_types():
        if ros_type.startswith(args.prefix):
            print(ros_type)
    return 0


def _show(args: argparse.Namespace) -> int:
    from swarm_bridge.codec.avro import avro_schema
    from swarm_bridge.codec.errors import CodecError
    from swarm_bridge.codec.protobuf_schema import proto_text

    types = _types(args)
    try:
        if args.format == "avro":
            print(json.dumps(avro_schema(args.ros_type, types), indent=2))
        elif args.format == "proto":
            print(proto_text(args.ros_type, types), end="")
        else:
            print(json.dumps(_layout(args.ros_type, types), indent=2))
    except CodecError as exc:
        print(f"schema show: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _layout(ros_type: str, types: Any) -> dict[str, Any]:
    """The ROS field layout of `ros_type` and every type it uses, as plain JSON."""
    out: dict[str, Any] = {"ros_type": ros_type, "types": {}}
    pending = [ros_type]
    while pending:
        name = pending.pop()
        if name in out["types"]:
            continue
        fields = types.fields(name)
        out["types"][name] = [{k: v for k, v in asdict(f).items() if v not in (0, "")} | {"name": f.name}
                              for f in fields]
        pending += [f.type for f in fields if f.is_message]
    return out


def _schema_of(source: str, types: Any) -> Any:
    """A registry Schema for a ROS type (Avro record) or a .avsc/.proto file."""
    from swarm_bridge.codec.avro import avro_schema
    from swarm_bridge.codec.registry import Schema

    if source.endswith((".avsc", ".proto")) or Path(source).is_file():
        return Schema.from_file(source)
    return Schema.avro(avro_schema(source, types))


def _subject(args: argparse.Namespace, schema: Any) -> str:
    from swarm_bridge.codec.registry import subject_name_strategy

    if args.subject:
        return str(args.subject)
    strategy = args.subject_name_strategy or ("topic_name" if args.topic else "record_name")
    return subject_name_strategy(strategy)(args.topic or "", _full_name(schema))


def _full_name(schema: Any) -> str:
    if schema.kind == "AVRO":
        doc = json.loads(schema.text)
        namespace = doc.get("namespace")
        return f"{namespace}.{doc['name']}" if namespace and "." not in doc["name"] else str(doc["name"])
    package = next((line.split()[1].rstrip(";") for line in schema.text.splitlines()
                    if line.startswith("package ")), "")
    message = next((line.split()[1] for line in schema.text.splitlines() if line.startswith("message ")), "")
    return f"{package}.{message}".strip(".")


def _register(args: argparse.Namespace) -> int:
    return _with_registry(args, lambda registry, subject, schema: _print_registered(
        registry.register(subject, schema)))


def _check(args: argparse.Namespace) -> int:
    if args.config is not None:
        from swarm_bridge.cli.rollout import check_config

        return check_config(args.config, args.registry, _types(args))
    if args.source is None:
        print("schema check: give a TYPE_OR_FILE, or --config ROBOT.yaml", file=sys.stderr)
        return EXIT_USAGE

    def check(registry: Any, subject: str, schema: Any) -> None:
        registry.check(subject, schema)
        print(f"{subject}: compatible ({registry.compatibility(subject)})")

    return _with_registry(args, check)


def _pin(args: argparse.Namespace) -> int:
    from swarm_bridge.cli.rollout import pin_route

    return pin_route(args.config, args.stream, None if args.unpin else args.version, registry=args.registry,
                     write=args.write)


def _print_registered(registered: Any) -> None:
    print(f"{registered.subject}: version {registered.version}, id {registered.id}")


def _with_registry(args: argparse.Namespace, action: Any) -> int:
    from swarm_bridge.codec.errors import CodecError, IncompatibleSchema
    from swarm_bridge.codec.registry import open_registry
    from swarm_bridge.config import default_registry

    strategy = args.subject_name_strategy
    if strategy not in (None, "record_name") and not (args.topic or args.subject):
        print(f"schema {args.schema_command}: --subject-name-strategy {strategy} needs --topic (the Kafka topic the "
              "records go to), or give --subject", file=sys.stderr)
        return EXIT_USAGE
    try:
        schema = _schema_of(args.source, _types(args))
        registry = open_registry(args.registry or default_registry())
        action(registry, _subject(args, schema), schema)
    except IncompatibleSchema as exc:
        print(f"schema {args.schema_command}: {exc}", file=sys.stderr)
        return EXIT_INCOMPATIBLE
    except CodecError as exc:
        print(f"schema {args.schema_command}: {exc}", file=sys.stderr)
        return EXIT_USAGE if "registry" not in type(exc).__name__.lower() else EXIT_REGISTRY
    return 0


def _export(args: argparse.Namespace) -> int:
    from swarm_bridge.codec.avro import avro_schema
    from swarm_bridge.codec.errors import CodecError
    from swarm_bridge.codec.protobuf_schema import proto_text
    from swarm_bridge.config import ConfigError, RobotBridgeConfig, load_config

    try:
        config = load_config(args.config, RobotBridgeConfig)
    except ConfigError as exc:
        print(f"schema export: invalid config\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    types = _types(args)
    args.out.mkdir(parents=True, exist_ok=True)
    for route in config.routes:
        if route.type is None:
            print(f"{route.topic or route.match} (type found in the ROS graph at run time): skipped")
            continue
        name = route.type.replace("/msg/", ".").replace("/", ".")
        try:
            if args.format == "avro":
                path = args.out / f"{name}.avsc"
                path.write_text(json.dumps(avro_schema(route.type, types), indent=2) + "\n")
            else:
                path = args.out / f"{name}.proto"
                path.write_text(proto_text(route.type, types))
        except CodecError as exc:
            print(f"schema export: {args.config}: routes[{config.routes.index(route)}].type: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"{route.topic} ({route.type}) -> {path}")
    return 0
