"""Config loading: valid files load, every bad key is reported with its path and a fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from swarm_bridge.config import ConfigError, RobotBridgeConfig, load_config, validate_config

REPO = Path(__file__).resolve().parents[1]

GOOD: dict[str, Any] = {
    "robot_id": "amr_007",
    "fleet": "warehouse_a",
    "uplink": {"kind": "mqtt", "port": 1883},
    "routes": [
        {"topic": "/amr_007/odom", "type": "nav_msgs/msg/Odometry", "channel": "telemetry",
         "stream": "odometry", "qos": "sensor_data", "format": "json"},
    ],
}


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_example_config_is_valid() -> None:
    config = load_config(REPO / "config" / "robot_bridge.yaml", RobotBridgeConfig)
    assert config.robot_id == "amr_007"
    assert [r.stream for r in config.routes] == ["robot_state", "task_status", "odometry"]


def test_ros_parameters_file_is_unwrapped(tmp_path: Path) -> None:
    path = _write(tmp_path, {"robot_bridge": {"ros__parameters": GOOD}})
    assert load_config(path, RobotBridgeConfig).fleet == "warehouse_a"


def test_unknown_key_suggests_the_near_miss(tmp_path: Path) -> None:
    bad = {**GOOD, "routes": [{**GOOD["routes"][0], "max_rat": 5}]}
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, bad), RobotBridgeConfig)
    message = str(info.value)
    assert "robot.yaml: routes[0]: unknown key 'max_rat'" in message
    assert "known keys:" in message  # no near miss among route keys


def test_misspelled_key_gets_did_you_mean(tmp_path: Path) -> None:
    bad = {**GOOD, "uplink": {"kind": "mqtt", "prot": 1883}}
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, bad), RobotBridgeConfig)
    message = str(info.value)
    assert "uplink: unknown key 'prot' (did you mean 'port'?)" in message
    assert "uplink.port: Field required" in message


def test_every_error_is_collected_with_its_path(tmp_path: Path) -> None:
    bad = {**GOOD, "robot_id": "amr 007", "uplink": {"kind": "amqp", "port": 0}}
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, bad), RobotBridgeConfig)
    locations = [p.location for p in info.value.problems]
    assert locations == ["robot_id", "uplink.kind", "uplink.port"]
    assert "(got 0)" in str(info.value)
    assert "'mqtt' or 'kafka'" in str(info.value)


def test_duplicate_stream_is_refused() -> None:
    bad = {**GOOD, "routes": [GOOD["routes"][0], GOOD["routes"][0]]}
    with pytest.raises(ConfigError, match=r"routes\[1\].stream 'odometry' is already used by routes\[0\]"):
        validate_config(bad, RobotBridgeConfig)


def test_qos_preset_is_required_and_named() -> None:
    route = {k: v for k, v in GOOD["routes"][0].items() if k != "qos"}
    with pytest.raises(ConfigError, match=r"routes\[0\]\.qos: Field required"):
        validate_config({**GOOD, "routes": [route]}, RobotBridgeConfig)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "expected a mapping of keys at the top level (got an empty file)"),
     ("- a\n- b\n", "(got list)"),
     ("robot_id: [unclosed\n", "line 2, column 1: not valid YAML")],
)
def test_unusable_files_are_named(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "robot.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, RobotBridgeConfig)
    assert str(info.value).startswith(str(path))
    assert expected in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read file"):
        load_config(tmp_path / "nope.yaml", RobotBridgeConfig)


def test_config_is_frozen() -> None:
    config = validate_config(GOOD, RobotBridgeConfig)
    with pytest.raises(ValueError):
        config.robot_id = "other"  # type: ignore[misc]
