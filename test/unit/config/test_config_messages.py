"""Every validation error says a name's form in words (no bare regular expressions), and every fix a message
suggests names a command-line option or config key that exists."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from swarm_bridge.codec import UnknownRosType
from swarm_bridge.config import ConfigError, CoordinatorConfig, GatewayConfig, RobotBridgeConfig, validate_config
from swarm_bridge.config.common import PATTERN_WORDS
from swarm_bridge.config.loader import _model_in

REPO = Path(__file__).resolve().parents[3]
PACKAGE = REPO / "swarm_bridge"
MODELS = (RobotBridgeConfig, GatewayConfig, CoordinatorConfig)
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]+")
# Options of other programs that the package passes on command lines or names as such (not ours to define).
FOREIGN_OPTIONS = {
    "--add-scram": "kafka-storage format (brokers/kafka.py)",
    "--ignore-formatted": "kafka-storage format (brokers/kafka.py)",
    "--python_out": "protoc (codec/fleet_protos.py)",
    "--descriptor_set_out": "protoc (codec/fleet_protos.py)",
    "--alter": "kafka-topics.sh, the fix for a short sharded topic (transport/topics.py)",
    "--partitions": "kafka-topics.sh, the fix for a short sharded topic (transport/topics.py)",
    "--ros-args": "ROS 2 arguments every node takes, passed on to rclpy",
}
# `<section>.<key>` references in messages; words that look like one but are not config keys.
KEY_REF = re.compile(r"(?<![\w./-])(uplink|kafka|mqtt|commands|spool|dedup|policy|tasks|topics)\.([a-z_]+)\b")
NOT_KEYS = {"kafka.tools", "kafka.request", "spool.db", "spool.files", "commands.verifier"}  # Java pkg, log, file, mods


def _patterns(model: type[BaseModel], seen: set[type[BaseModel]]) -> Iterator[tuple[str, str]]:
    """(field path, pattern) of every constrained string in `model` and the models it nests."""
    if model in seen:
        return
    seen.add(model)
    for name, field in model.model_fields.items():
        for meta in field.metadata:
            pattern = getattr(meta, "pattern", None)
            if pattern is not None:
                yield f"{model.__name__}.{name}", str(pattern)
        nested = _model_in(field.annotation)
        if nested is not None:
            yield from _patterns(nested, seen)


def test_every_config_pattern_is_explained_in_words() -> None:
    found = [item for model in MODELS for item in _patterns(model, set())]
    assert len(found) > 10
    missing = [f"{where}: {pattern}" for where, pattern in found if pattern not in PATTERN_WORDS]
    assert not missing, "patterns without words in config.common.PATTERN_WORDS: " + ", ".join(missing)


@pytest.mark.parametrize(("model", "data", "expected"), [
    (RobotBridgeConfig, {"robot_id": "amr 7"}, "robot_id: must be letters, digits, '_' and '-' only"),
    (RobotBridgeConfig, {"routes": [{"topic": "odom"}]}, "routes[0].topic: must be an absolute ROS topic"),
    (RobotBridgeConfig, {"routes": [{"type": "nav_msgs/Odometry"}]}, "routes[0].type: must be a ROS message type "
                                                                     "package/msg/Name"),
    (RobotBridgeConfig, {"routes": [{"stream": "Odom"}]}, "routes[0].stream: must be lowercase letters, digits"),
    (GatewayConfig, {"kafka": {"bootstrap": "a:1, b:2"}}, "kafka.bootstrap: must be host:port, or several"),
    (CoordinatorConfig, {"topics": {"state": "fleet/state"}}, "topics.state: must be letters, digits, '.', '_'"),
    (CoordinatorConfig, {"fleet": "f", "shards": 1, "kafka": {"port": 9092}, "capabilities": {"amr": ["go far"]}},
     "'go far' is not a name (letters, digits, '_' and '-' only)"),
])
def test_pattern_errors_say_the_form_in_words(model: type[BaseModel], data: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(data, model)
    text = str(caught.value)
    assert expected in text
    assert not re.search(r"\^\[|\]\+\$|should match pattern", text), text


def _string_constants() -> Iterator[tuple[str, str, bool]]:
    """(place, text, is an add_argument name) of every string constant in the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if "_generated" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        arguments = {id(a) for node in ast.walk(tree) if isinstance(node, ast.Call)
                     and getattr(node.func, "attr", "") == "add_argument" for a in node.args}
        # an option name handed to a helper that adds it (e.g. add_web_options(parser, port_flag="--port"))
        arguments |= {id(k.value) for node in ast.walk(tree) if isinstance(node, ast.Call)
                      for k in node.keywords if (k.arg or "").endswith("_flag")}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield f"{path.relative_to(REPO)}:{node.lineno}", node.value, id(node) in arguments


def test_every_option_a_message_names_exists() -> None:
    constants = list(_string_constants())
    defined = {text for _place, text, is_argument in constants if is_argument}
    assert {"--config", "--robot-id", "--msg-dir", "--run-dir"} <= defined
    unknown = [f"{place}: {option}" for place, text, is_argument in constants if not is_argument
               for option in OPTION.findall(text) if option not in defined and option not in FOREIGN_OPTIONS]
    assert not unknown, "messages name options no command has: " + ", ".join(unknown)


def _keys(model: type[BaseModel]) -> set[str]:
    """`section.key` of every nested model field (lists of models included)."""
    out = set()
    for name, field in model.model_fields.items():
        nested = _model_in(field.annotation)
        if nested is not None:
            out |= {f"{name}.{key}" for key in nested.model_fields}
    return out


def test_every_config_key_a_message_names_exists() -> None:
    keys = set().union(*(_keys(model) for model in MODELS))
    assert {"uplink.port", "kafka.bootstrap", "commands.trusted_keys"} <= keys
    unknown = [f"{place}: {'.'.join(ref)}" for place, text, _arg in _string_constants()
               for ref in KEY_REF.findall(text) if ".".join(ref) not in keys | NOT_KEYS]
    assert not unknown, "messages name config keys that do not exist: " + ", ".join(unknown)


def test_an_unknown_ros_type_is_fixed_by_installing_its_package() -> None:
    text = str(UnknownRosType("nav_msgs/msg/Odometri", "nav_msgs/msg/Odometry"))
    assert "(did you mean 'nav_msgs/msg/Odometry'?)" in text
    assert "pip: ros-nav-msgs" in text and "--" not in text
