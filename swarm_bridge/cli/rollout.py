"""`swarm-bridge schema check --config` and `schema pin`: what an operator needs to roll a schema version out to some
robots and back. The check is a dry run (nothing registered): per route, the subject the robot registers under and
whether its schema is there, would be added, or would break (subject, rule, field); a pin must resolve."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from swarm_bridge.codec.envelope import Envelope
from swarm_bridge.codec.errors import CodecError, IncompatibleSchema, UnknownSchema

__all__ = ["check_config", "pin_route"]

EXIT_BREAKS = 1
EXIT_USAGE = 2
EXIT_REGISTRY = 3


def _load(path: Path) -> Any:
    from swarm_bridge.config import ConfigError, RobotBridgeConfig, load_config

    try:
        return load_config(path, RobotBridgeConfig)
    except ConfigError as exc:
        print(f"schema: invalid config\n{exc}", file=sys.stderr)
        return None


def _routes(config: Any) -> list[Any]:
    """The config's routes with a type (match routes take theirs from the ROS graph), up and down."""
    from swarm_bridge.routing import routes_for

    return [route for route in routes_for(config) if route.ros_type]


def _subject(config: Any, route: Any) -> str:
    from swarm_bridge.codec.wire import route_subject

    return route_subject(config.subject_name_strategy, route.kafka_topic, route.ros_type)


def _verdict(registry: Any, subject: str, route: Any, types: Any) -> tuple[bool, str]:
    """(breaks, what registering the route's schema under `subject` would do), writing nothing."""
    from swarm_bridge.codec.avro import avro_schema
    from swarm_bridge.codec.registry import Schema

    if route.format == "json":
        return False, "no schema (json)"
    if route.format == "protobuf" and route.scheme == "mqtt":
        return False, "not registered by the robot (the gateway's protobuf_format decides what Kafka holds)"
    if route.format == "protobuf":
        return _proto_verdict(registry, subject, route.ros_type, types)
    schema = Schema.avro(avro_schema(route.ros_type, types))
    try:
        versions = registry.versions(subject)
    except UnknownSchema:
        return False, "new subject, version 1"
    for number in versions:
        found = registry.version(subject, number)
        if found.schema.identity() == schema.identity():
            return False, f"registered as version {number} (id {found.id})"
    try:
        registry.check(subject, schema)
    except IncompatibleSchema as exc:
        return True, f"WOULD BREAK: {exc}"
    return False, f"new version {versions[-1] + 1}, compatible ({registry.compatibility(subject)})"


def _proto_verdict(registry: Any, subject: str, ros_type: str, types: Any) -> tuple[bool, str]:
    """Each .proto file of the record under its subject, by the level's rules (the record's file under `subject`)."""
    from swarm_bridge.codec.protobuf_schema import file_descriptors
    from swarm_bridge.codec.registry import check_compatibility

    files = file_descriptors(ros_type, types)
    new = []
    for file in files:
        name = subject if file is files[-1] else file.name
        try:
            history = [registry.version(name, v).schema.parsed() for v in registry.versions(name)]
        except UnknownSchema:
            new.append(name)
            continue
        if history[-1] == file:
            continue
        try:
            check_compatibility(name, registry.compatibility(name), "PROTOBUF", file, history)
        except IncompatibleSchema as exc:
            return True, f"WOULD BREAK: {exc}"
        new.append(name)
    return False, f"new versions of {', '.join(new)}" if new else "registered (every file)"


def _resolves(route: Any, pinned: Any, types: Any) -> None:
    """CodecError unless the route's own message resolves to the pinned version (a default message is written)."""
    from swarm_bridge.codec.formats import FORMATS
    from swarm_bridge.codec.records import record_codec
    from swarm_bridge.codec.rostypes import default_types

    pinning = FORMATS[route.format].pin
    if pinning is None:
        raise CodecError(f"{route.ros_type}: format {route.format} cannot be pinned (avro can)")
    types = types or default_types()
    frame = pinning(route.ros_type, types, route.scheme, pinned)
    message = types.default_message(route.ros_type)
    frame(record_codec(route.ros_type, route.format, types).encode(
        Envelope("check", route.stream, 0, 0, route.ros_type, message)))


def check_config(path: Path, location: str | None, types: Any) -> int:
    """Print, per route of the robot config at `path`, what its schema would do in the registry; 1 if any breaks."""
    from swarm_bridge.codec.registry import open_registry
    from swarm_bridge.config import default_registry

    config = _load(path)
    if config is None:
        return EXIT_USAGE
    breaks = 0
    try:
        registry = open_registry(location or config.registry or default_registry())
        for route in _routes(config):
            subject = _subject(config, route)
            broken, what = _verdict(registry, subject, route, types)
            if route.schema_version is not None and not broken:
                try:
                    pinned = registry.version(subject, route.schema_version)
                    _resolves(route, pinned, types)
                    what += f"; pinned to version {pinned.version} (id {pinned.id}): resolves"
                except CodecError as exc:
                    broken, what = True, f"WOULD BREAK: pinned to version {route.schema_version}: {exc}"
            breaks += broken
            print(f"{route}: subject {subject}: {what}")
    except CodecError as exc:
        print(f"schema check: {exc}", file=sys.stderr)
        return EXIT_REGISTRY
    print(f"{breaks} route(s) would break" if breaks else "nothing would break")
    return EXIT_BREAKS if breaks else 0


def pin_route(path: Path, stream: str, version: int | None, *, registry: str | None, write: bool) -> int:
    """Pin the route of `stream` to `version` of its subject (None: unpin), after checking the robot's schema
    resolves to it; print the override, or rewrite the config with `write`."""
    from swarm_bridge.codec.registry import open_registry
    from swarm_bridge.config import RobotBridgeConfig, default_registry, validate_config

    config = _load(path)
    if config is None:
        return EXIT_USAGE
    index = next((i for i, rc in enumerate(config.routes) if rc.stream == stream), None)
    route = next((r for r in _routes(config) if r.stream == stream and r.direction == "up"), None)
    if index is None or route is None or route.format != "avro":
        streams = ", ".join(rc.stream for rc in config.routes if rc.direction == "up" and rc.format == "avro")
        print(f"schema pin: {path}: no up route of format avro with stream {stream!r}. Valid options are: {streams}",
              file=sys.stderr)
        return EXIT_USAGE
    subject = _subject(config, route)
    if version is not None:
        try:
            pinned = open_registry(registry or config.registry or default_registry()).version(subject, version)
            _resolves(route, pinned, None)
        except CodecError as exc:
            print(f"schema pin: {route}: {exc}", file=sys.stderr)
            return EXIT_BREAKS
        print(f"{route}: subject {subject}: version {pinned.version} (id {pinned.id}): the robot's "
              f"{route.ros_type} resolves to it")
    override = f"routes.{index}.schema_version={'null' if version is None else version}"
    if not write:
        print(f"start the robot with --set {override}, or run again with --write")
        return 0
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if version is None:
        data["routes"][index].pop("schema_version", None)
    else:
        data["routes"][index]["schema_version"] = version
    validate_config(data, RobotBridgeConfig, source=str(path))
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    print(f"{path}: routes[{index}] ({stream}) {'unpinned' if version is None else f'pinned to version {version}'}"
          " (comments are not kept); restart the robot bridge")
    return 0
