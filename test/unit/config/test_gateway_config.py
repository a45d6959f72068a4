"""Gateway config: the example file is complete and valid; bad rules and keys are named with a fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from swarm_bridge.config import ConfigError, GatewayConfig, load_config, validate_config

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "edge_gateway.yaml"


def _keys_missing(model: type[BaseModel], data: dict[str, Any], where: str = "") -> list[str]:
    """Model fields the example does not spell out (nested models and lists of them too)."""
    missing = []
    for name, field in model.model_fields.items():
        if name not in data:
            missing.append(f"{where}{name}")
            continue
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel) and isinstance(data[name], dict):
            missing += _keys_missing(nested, data[name], f"{where}{name}.")
    return missing


def test_example_config_is_valid_and_names_every_key() -> None:
    config = load_config(EXAMPLE, GatewayConfig)
    data = yaml.safe_load(EXAMPLE.read_text())
    assert _keys_missing(GatewayConfig, data) == []
    assert config.fleet == "warehouse_a" and config.kafka.dlq_topic == "fleet.dlq"
    assert [r.kafka_topic for r in config.up] == ["fleet.{channel}.{stream}", "fleet.presence.status"]
    # the example spells out the defaults: a minimal config behaves the same
    assert config == GatewayConfig(gateway_id="hub_a_1", fleet="warehouse_a")


def _problems(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(data, GatewayConfig, source="gw.yaml")
    return str(info.value)


BASE: dict[str, Any] = {"gateway_id": "gw", "fleet": "f"}


def test_unknown_key_gets_a_did_you_mean() -> None:
    message = _problems({**BASE, "kafka": {"bootstrp": "x:1"}})
    assert "gw.yaml: kafka: unknown key 'bootstrp' (did you mean 'bootstrap'?)" in message


@pytest.mark.parametrize(("rule", "expected"), [
    ({"mqtt": "swarm/{fleet}/{stream}", "kafka_topic": "fleet.x"}, "must capture {robot_id}"),
    ({"mqtt": "swarm/+/{robot_id}", "kafka_topic": "fleet.x"}, "use {name} placeholders instead of MQTT wildcards"),
    ({"mqtt": "swarm/{robot_id}/{stream}", "kafka_topic": "fleet.{channel}"}, "{channel} is not captured"),
    ({"mqtt": "swarm/{robot_id}/x{stream}", "kafka_topic": "fleet.x"}, "must be a whole topic level"),
    ({"mqtt": "swarm/{robot_id}", "where": {"stream": ["a"]}, "kafka_topic": "t"}, "where: 'stream' is not captured"),
    ({"mqtt": "swarm/{robot_id}", "kafka_topic": "fleet x"}, "may hold only letters"),
    ({"mqtt": "swarm/{robot_id}", "kafka_topic": "t", "payload": "raw", "json_format": "avro"},
     "needs payload: record"),
])
def test_bad_up_rules_are_explained(rule: dict[str, Any], expected: str) -> None:
    message = _problems({**BASE, "up": [rule]})
    assert "gw.yaml: up[0]" in message and expected in message


def test_down_rule_needs_the_robot_and_topics_stay_apart() -> None:
    message = _problems({**BASE, "down": [{"kafka_topic": "fleet.cmd", "mqtt": "swarm/{fleet}/all/command"}]})
    assert "down[0].mqtt" in message and "must contain {robot_id}" in message
    message = _problems({**BASE, "kafka": {"dlq_topic": "fleet.command.task_command"}})
    assert "is also a down rule's kafka_topic" in message


def test_cli_exits_2_on_a_bad_config_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump({**BASE, "mqtt": {"port": 0}}))
    result = subprocess.run([sys.executable, "-m", "swarm_bridge.cli", "gateway", "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{path}: mqtt.port: Input should be greater than or equal to 1 (got 0)" in result.stderr


def test_cli_exits_3_when_kafka_is_unreachable(tmp_path: Path) -> None:
    from swarm_bridge.brokers import free_port

    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump({**BASE, "registry": str(tmp_path / "reg"),
                                    "kafka": {"bootstrap": f"127.0.0.1:{free_port()}", "connect_timeout_s": 1}}))
    result = subprocess.run([sys.executable, "-m", "swarm_bridge.cli", "gateway", "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert "no cluster metadata" in result.stderr and "Fix:" in result.stderr


def test_launch_file_runs_the_gateway_command_with_a_config_argument() -> None:
    """Read without importing launch (not installed here): the command, its config argument and default."""
    import ast
    import configparser

    tree = ast.parse((REPO / "launch" / "edge_gateway.launch.py").read_text())
    calls = {getattr(c.func, "id", None) or getattr(c.func, "attr", None): c for c in ast.walk(tree)
             if isinstance(c, ast.Call)}
    command = {k.arg: k.value for k in calls["ExecuteProcess"].keywords}["cmd"]
    assert isinstance(command, ast.List)
    words = [ast.literal_eval(e) if isinstance(e, ast.Constant) else ast.unparse(e) for e in command.elts]
    # the package's own lib/swarm_bridge/swarm-bridge (PATH has none after a colcon build); run for real in
    # test_launch.py and test_packaging.py
    assert words == ["ExecutableInPackage('swarm-bridge', 'swarm_bridge')", "gateway", "--config",
                     "LaunchConfiguration('config')", "*override"]
    declared = [ast.literal_eval(c.args[0]) for c in ast.walk(tree)
                if isinstance(c, ast.Call) and getattr(c.func, "id", None) == "DeclareLaunchArgument"]
    assert declared == ["config", "gateway_id"]
    joined = [ast.literal_eval(a) for a in calls["join"].args[1:]]
    assert (REPO.joinpath(*joined)).is_file()  # installed to share/swarm_bridge/config/ by setup.py
    scripts = configparser.ConfigParser()
    scripts.read(REPO / "setup.cfg")
    console = scripts["options.entry_points"]["console_scripts"]
    assert "swarm-bridge = swarm_bridge.cli:main" in console
    # a pip install runs the robot side of the shipped configs too: the bridge and the reference task executor
    assert {"robot_bridge = swarm_bridge.nodes:robot_bridge", "task_executor = swarm_bridge.nodes:task_executor"} <= {
        line.strip() for line in console.splitlines()}


def test_docs_show_the_complete_example_config() -> None:
    """docs/gateway.md's reference block is the example file (without its header) and validates."""
    doc = (REPO / "docs" / "gateway.md").read_text()
    block = doc.split("## Config reference", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    example = EXAMPLE.read_text()
    assert block.strip() in example and example.index(block.strip()) < 400  # only the header comes before
    assert validate_config(yaml.safe_load(block), GatewayConfig) == load_config(EXAMPLE, GatewayConfig)


def test_a_unix_socket_with_tls_is_refused_naming_both(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("a CA")
    message = _problems({**BASE, "mqtt": {"unix_socket": "/run/mosquitto/mqtt.sock",
                                          "tls": {"ca_file": str(tmp_path / "ca.pem")}}})
    assert "gw.yaml: mqtt:" in message and "unix_socket ('/run/mosquitto/mqtt.sock') and tls both set" in message
    assert validate_config({**BASE, "mqtt": {"unix_socket": "/run/m.sock"}}, GatewayConfig).mqtt.unix_socket \
        == "/run/m.sock"


@pytest.mark.parametrize(("value", "expected"), [(-1, "greater than or equal to 0"),
                                                  (250, "less than or equal to 100")])
def test_a_gather_interval_out_of_range_is_refused_naming_the_key(value: float, expected: str) -> None:
    message = _problems({**BASE, "mqtt": {"gather_ms": value}})
    assert "gw.yaml: mqtt.gather_ms" in message and expected in message
