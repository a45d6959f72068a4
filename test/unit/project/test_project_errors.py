"""Errors a user can see are project errors (issue #16): no bare builtin raise anywhere in swarm_bridge, and every
exception class it defines is a SwarmBridgeError that still is the builtin it replaced."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
from collections import Counter
from pathlib import Path

import pytest

import swarm_bridge
from swarm_bridge.errors import SwarmBridgeError

ROOT = Path(__file__).resolve().parents[3] / "swarm_bridge"
# Every subpackage and top-level module, read from the tree: a new package is covered the day it appears.
PARTS = sorted(p.name for p in ROOT.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file())
BUILTIN_ERRORS = {name for name, value in vars(builtins).items()
                  if isinstance(value, type) and issubclass(value, BaseException)}

# (file under swarm_bridge/, enclosing function, builtin) -> how many, and why no user can see it.
ALLOWED: dict[tuple[str, str, str], tuple[int, str]] = {
    ("codec/cdr_gen.py", "field", "NotImplementedError"): (1, "abstract method of the code generator base"),
    ("codec/cdr_gen.py", "flush", "NotImplementedError"): (1, "abstract method of the code generator base"),
    ("codec/cdr_gen.py", "advance", "NotImplementedError"): (1, "abstract method of the code generator base"),
    ("codec/cdr_gen.py", "emit_align", "NotImplementedError"): (1, "abstract method of the code generator base"),
    ("codec/cdr_gen.py", "finish", "NotImplementedError"): (1, "abstract method of the code generator base"),
    ("codec/transcode.py", "field_pieces", "NotImplementedError"): (1, "abstract method of the transcoder base"),
    ("codec/framing.py", "__getattr__", "AttributeError"): (1, "module __getattr__ must raise AttributeError"),
    ("codec/wire.py", "__call__", "TypeError"): (1, "type guard of an internal callback; callers pass a Schema"),
    ("signals.py", "_interrupt", "KeyboardInterrupt"): (1, "SIGTERM taken as Ctrl-C: must pass every `except "
                                                        "Exception` as Ctrl-C does"),
}
# Exception classes that are not SwarmBridgeErrors, each with why no user sees one: private signals, raised and
# caught inside their own module.
NOT_PROJECT_ERRORS: dict[str, str] = {
    "swarm_bridge.gateway.translate._Refused": "a record the translator refuses; caught there, becomes a DeadLetter",
    "swarm_bridge.replay.bag._Unreplayable": "a bag connection that cannot be replayed; caught there, the topic "
                                             "is skipped with the reason printed",
    "swarm_bridge.transport.mqtt_client._Broken": "ends the client's connection loop; the LinkError inside is what "
                                                  "is logged and kept in stats.last_error",
    "swarm_bridge.transport.mqtt_sessions._Broken": "ends one session's connection; the LinkError inside is what "
                                                    "is logged",
}


class _Raises(ast.NodeVisitor):
    """Counts `raise <BuiltinError>` by (file, innermost enclosing function, builtin)."""

    def __init__(self, file: str) -> None:
        self.file, self.functions, self.found = file, ["<module>"], Counter[tuple[str, str, str]]()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Raise(self, node: ast.Raise) -> None:
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        if isinstance(exc, ast.Name) and exc.id in BUILTIN_ERRORS:
            self.found[(self.file, self.functions[-1], exc.id)] += 1


def _bare_raises() -> Counter[tuple[str, str, str]]:
    found: Counter[tuple[str, str, str]] = Counter()
    for part in PARTS:
        for path in sorted((ROOT / part).rglob("*.py")) if (ROOT / part).is_dir() else [ROOT / part]:
            visitor = _Raises(path.relative_to(ROOT).as_posix())
            visitor.visit(ast.parse(path.read_text(), filename=str(path)))
            found += visitor.found
    return found


def _exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined at module level in swarm_bridge, by dotted name (each module imported)."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(swarm_bridge.__path__, "swarm_bridge."):
        if info.name.endswith(".__main__"):
            continue  # runs the command line when imported
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == info.name:
                found[f"{info.name}.{name}"] = value
    return found


def test_every_part_of_the_package_is_scanned() -> None:
    assert {"coordinator", "gateway", "transport", "fleetbench", "sim", "metrics", "nodes.py"} <= set(PARTS)
    assert all((ROOT / part).exists() for part in PARTS)


def test_no_bare_builtin_raise_outside_the_allow_list() -> None:
    found = _bare_raises()
    unexpected = {key: count for key, count in found.items() if count > ALLOWED.get(key, (0, ""))[0]}
    assert not unexpected, ("raise a project error (a SwarmBridgeError subclass that also subclasses the builtin) "
                            f"instead of: {unexpected}")
    stale = {key for key, (count, _why) in ALLOWED.items() if found.get(key, 0) < count}
    assert not stale, f"allow-list entries that no longer match the code; remove them: {stale}"


def test_every_exception_class_is_a_swarm_bridge_error() -> None:
    classes = _exception_classes()
    outside = {name for name, cls in classes.items() if not issubclass(cls, SwarmBridgeError)}
    unexpected = outside - set(NOT_PROJECT_ERRORS)
    assert not unexpected, ("subclass SwarmBridgeError (keeping the builtin base, e.g. "
                            f"`class X(SwarmBridgeError, ValueError)`): {sorted(unexpected)}")
    stale = set(NOT_PROJECT_ERRORS) - outside
    assert not stale, f"NOT_PROJECT_ERRORS entries that no longer match the code; remove them: {sorted(stale)}"


@pytest.mark.parametrize(("module", "name", "builtin"), [
    ("swarm_bridge.codec.errors", "CodecError", ValueError),
    ("swarm_bridge.codec.errors", "RecordTypeError", TypeError),
    ("swarm_bridge.config.errors", "ConfigError", ValueError),
    ("swarm_bridge.config.errors", "ConfigValueError", ValueError),
    ("swarm_bridge.routing.errors", "RouteError", ValueError),
    ("swarm_bridge.spool.spool", "SpoolError", RuntimeError),
    ("swarm_bridge.spool.spool", "SpoolLimitError", ValueError),
    ("swarm_bridge.ros.errors", "QosPresetError", ValueError),
    ("swarm_bridge.ros.errors", "MessageFieldError", ValueError),
    ("swarm_bridge.ros.types", "RosTypeError", LookupError),
    ("swarm_bridge.cli.errors", "UsageError", ValueError),
    ("swarm_bridge.commands.errors", "GateSettingError", ValueError),
    ("swarm_bridge.commands.keys", "KeyringError", ValueError),
    ("swarm_bridge.brokers.errors", "BrokerError", RuntimeError),
    ("swarm_bridge.brokers.errors", "BrokerSettingError", ValueError),
    ("swarm_bridge.replay.errors", "ReplayError", Exception),
    ("swarm_bridge.demo.errors", "DemoError", Exception),
    ("swarm_bridge.demo.errors", "DemoSettingError", ValueError),
    ("swarm_bridge.transport.link", "LinkError", ConnectionError),
    ("swarm_bridge.transport.link", "LinkBusy", RuntimeError),
    ("swarm_bridge.transport.link", "LinkSettingError", ValueError),
    ("swarm_bridge.transport.topics", "TopicError", ConnectionError),
    ("swarm_bridge.transport.topics", "ReplicationError", ValueError),
    ("swarm_bridge.transport.mqtt_errors", "MqttRefused", ConnectionError),
    ("swarm_bridge.transport.mqtt_errors", "MqttUnreachable", ConnectionError),
    ("swarm_bridge.transport.mqtt_errors", "SubscribeRefused", ConnectionError),
    ("swarm_bridge.transport.mqtt_errors", "PacketTooLarge", ValueError),
    ("swarm_bridge.transport.mqtt_errors", "InflightFull", RuntimeError),
    ("swarm_bridge.transport.mqtt_wire", "Malformed", ValueError),
    ("swarm_bridge.gateway.errors", "GatewaySettingError", ValueError),
    ("swarm_bridge.gateway.schemas", "SchemaTrouble", Exception),
    ("swarm_bridge.fleetbench.errors", "BenchError", RuntimeError),
    ("swarm_bridge.fleetbench.errors", "BenchTimeout", TimeoutError),
    ("swarm_bridge.fleetbench.errors", "BenchSettingError", ValueError),
    ("swarm_bridge.metrics.endpoint", "MetricsPortError", OSError),
    ("swarm_bridge.brokers.domains", "DomainsExhausted", RuntimeError),
])
def test_project_errors_are_swarm_bridge_errors_and_keep_their_builtin(module: str, name: str,
                                                                       builtin: type[Exception]) -> None:
    error = getattr(__import__(module, fromlist=[name]), name)
    assert issubclass(error, SwarmBridgeError) and issubclass(error, builtin)


def test_refusals_name_the_value_and_the_fix(tmp_path: Path) -> None:
    from swarm_bridge.brokers.errors import BrokerSettingError
    from swarm_bridge.brokers.kafka import KafkaBrokerSecurity
    from swarm_bridge.cli.demo import mqtt_endpoint
    from swarm_bridge.cli.errors import UsageError
    from swarm_bridge.codec.envelope import Envelope
    from swarm_bridge.codec.errors import RecordTypeError
    from swarm_bridge.codec.json_codec import encode_json
    from swarm_bridge.commands.errors import GateSettingError
    from swarm_bridge.commands.gate import CommandGate
    from swarm_bridge.demo.errors import DemoSettingError
    from swarm_bridge.demo.plan import fleet_of
    from swarm_bridge.routing.errors import RouteError
    from swarm_bridge.routing.naming import mqtt_topic
    from swarm_bridge.spool import SpoolLimitError
    from swarm_bridge.spool.spool import Spool

    with pytest.raises(RouteError, match=r"robot_id 'a/b' is not one MQTT topic level .*Fix: give robot_id"):
        mqtt_topic("swarm", "demo", "a/b", "telemetry", "odom")
    with pytest.raises(SpoolLimitError, match=r"s\.db: limits must be > 0 .*Fix: .*spool\.max_mb"):
        Spool(tmp_path / "s.db", max_bytes=0)
    with pytest.raises(GateSettingError, match=r"commands\.max_age_s must be > 0 \(got -1\)\. Fix"):
        CommandGate("amr_1", max_age_s=-1)
    with pytest.raises(UsageError, match=r"--mqtt 'http://x': expected mqtt://host:port\. Fix: e\.g\."):
        mqtt_endpoint("http://x")
    with pytest.raises(BrokerSettingError, match=r"kafka: SCRAM user name 'a,b' .*Fix: use letters"):
        KafkaBrokerSecurity("admin", "pw", {"a,b": "x"})
    with pytest.raises(DemoSettingError, match=r"--robots must be >= 1 \(got 0\)\. Fix"):
        fleet_of([Path("/bags/b0")], 0)
    envelope = Envelope(robot_id="amr_1", stream="odom", seq=1, stamp_ns=0, ros_type="std_msgs/msg/String",
                        body={"data": {1, 2}}, schema_version=1)
    with pytest.raises(RecordTypeError, match="cannot write a set as JSON; give the body as plain values"):
        encode_json(envelope)



def test_transport_gateway_and_bench_refusals_name_the_value_and_the_fix() -> None:
    import argparse

    from swarm_bridge.fleetbench.errors import BenchSettingError
    from swarm_bridge.fleetbench.run import add_arguments, options_from
    from swarm_bridge.gateway.dedup import Dedup
    from swarm_bridge.gateway.errors import GatewaySettingError
    from swarm_bridge.transport.link import LinkSettingError
    from swarm_bridge.transport.mqtt_client import MqttOptions
    from swarm_bridge.transport.mqtt_errors import check_publish_qos
    from swarm_bridge.transport.topics import ReplicationError, replication_plan

    with pytest.raises(LinkSettingError, match=r"mqtt://h:1: publish qos must be 0 or 1 \(got 2\)\. Fix: give"):
        check_publish_qos("mqtt://h:1", 2)
    with pytest.raises(LinkSettingError, match=r"MqttOptions for h:1: keepalive_s must be 0\.\.65535 .*\. Fix: "):
        MqttOptions(host="h", port=1, client_id="c", keepalive_s=-1)
    with pytest.raises(LinkSettingError, match=r"MqttOptions for h:1: read_gather_s must be 0\.\.0\.1 s \(got 1\)"):
        MqttOptions(host="h", port=1, client_id="c", read_gather_s=1)
    with pytest.raises(ReplicationError, match=r"replication_factor 3 needs 3 brokers .*Fix: lower replication"):
        replication_plan(1, replication_factor=3)
    with pytest.raises(GatewaySettingError, match=r"dedup\.window 0, .*must be >= 1\. Fix: set dedup\.window"):
        Dedup(window=0)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(BenchSettingError, match=r"--warmup -1 .*Fix: e\.g\. --warmup 15"):
        options_from(parser.parse_args(["--warmup", "-1"]))
