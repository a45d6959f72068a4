"""Config loading: valid files load, every bad key is reported with its path and a fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from swarm_bridge.config import ConfigError, RobotBridgeConfig, load_config, validate_config

REPO = Path(__file__).resolve().parents[3]

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
    assert [r.stream for r in config.routes] == ["robot_state", "task_status", "odometry", "sensors", "task_command"]
    assert [r.direction for r in config.routes] == ["up", "up", "up", "up", "down"]


def test_ros_parameters_file_is_unwrapped(tmp_path: Path) -> None:
    path = _write(tmp_path, {"robot_bridge": {"ros__parameters": GOOD}})
    assert load_config(path, RobotBridgeConfig).fleet == "warehouse_a"


def test_unknown_key_suggests_the_near_miss(tmp_path: Path) -> None:
    bad = {**GOOD, "routes": [{**GOOD["routes"][0], "max_rate": 5, "colour": "red"}]}
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, bad), RobotBridgeConfig)
    message = str(info.value)
    assert "robot.yaml: routes[0]: unknown key 'max_rate' (did you mean 'max_rate_hz'?)" in message
    assert ("robot.yaml: routes[0]: unknown key 'colour'; known keys: channel, compression, compression_level, "
            "direction, format,") in message


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


def test_down_routes_are_not_decimated() -> None:
    route = {**GOOD["routes"][0], "direction": "down", "max_rate_hz": 5}
    with pytest.raises(ConfigError, match=r"routes\[0\]: max_rate_hz applies to direction 'up' only"):
        validate_config({**GOOD, "routes": [route]}, RobotBridgeConfig)


def test_a_pin_takes_an_avro_up_route_and_on_mqtt_a_registry() -> None:
    route = {**GOOD["routes"][0], "schema_version": 1}
    with pytest.raises(ConfigError, match=r"routes\[0\]: schema_version pins an up route of format avro "):
        validate_config({**GOOD, "routes": [route]}, RobotBridgeConfig)
    avro = {**route, "format": "avro"}
    with pytest.raises(ConfigError, match=r"routes\[0\].schema_version: a pinned version is read from the registry"):
        validate_config({**GOOD, "routes": [avro]}, RobotBridgeConfig)
    config = validate_config({**GOOD, "registry": "/tmp/registry", "routes": [avro]}, RobotBridgeConfig)
    assert config.routes[0].schema_version == 1


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


def test_uplink_security_and_limits_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWARM_TEST_PASSWORD", raising=False)
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here; the TLS library reads it")
    bad = {**GOOD, "uplink": {"kind": "mqtt", "port": 8883, "password_env": "SWARM_TEST_PASSWORD",
                              "tls": {"ca_file": str(tmp_path / "missing.pem")}}}
    with pytest.raises(ConfigError) as info:
        validate_config(bad, RobotBridgeConfig)
    message = str(info.value)
    assert "uplink.password_env: environment variable SWARM_TEST_PASSWORD is not set" in message
    assert f"uplink.tls.ca_file: no such file: {tmp_path / 'missing.pem'}" in message
    backoff = {**GOOD, "uplink": {"kind": "mqtt", "port": 1883, "reconnect_min_s": 5, "reconnect_max_s": 1}}
    with pytest.raises(ConfigError, match=r"uplink: reconnect_max_s \(1.0\) must be >= reconnect_min_s \(5.0\)"):
        validate_config(backoff, RobotBridgeConfig)
    monkeypatch.setenv("SWARM_TEST_PASSWORD", "s3cret")
    good = {**GOOD, "uplink": {"kind": "mqtt", "port": 8883, "password_env": "SWARM_TEST_PASSWORD",
                               "tls": {"ca_file": str(ca)}}}
    assert validate_config(good, RobotBridgeConfig).uplink.password == "s3cret"  # type: ignore[union-attr]


def test_tls_client_certificate_needs_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "robot.pem"
    cert.write_text("x")
    bad = {**GOOD, "uplink": {"kind": "mqtt", "port": 8883, "tls": {"cert_file": str(cert)}}}
    with pytest.raises(ConfigError, match=r"uplink\.tls: cert_file and key_file go together"):
        validate_config(bad, RobotBridgeConfig)


def test_spool_path_defaults_per_robot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    config = validate_config(GOOD, RobotBridgeConfig)
    expected = tmp_path / "swarm_bridge/warehouse_a/amr_007/spool.db"
    assert config.spool.file_for(config.fleet, config.robot_id) == expected
    assert config.spool.max_mb == 256


def test_routes_name_their_topics_exactly_one_way() -> None:
    base = {k: v for k, v in GOOD["routes"][0].items() if k != "topic"}
    cases = [
        ({**base}, "routes[0]: give either topic or match (exactly one)"),
        ({**base, "topic": "/a", "match": {"allow": ["/a.*"]}}, "routes[0]: give either topic or match"),
        ({**base, "match": {"allow": ["/a.*"]}, "direction": "down"}, "routes[0]: a down route needs an exact topic"),
        ({**base, "match": {"allow": ["/ok", "(bad"]}}, "routes[0].match: allow[1]: not a valid regular expression"),
    ]
    for route, expected in cases:
        with pytest.raises(ConfigError) as info:
            validate_config({**GOOD, "routes": [route]}, RobotBridgeConfig)
        assert expected in str(info.value)
    untyped = {k: v for k, v in GOOD["routes"][0].items() if k != "type"}
    assert validate_config({**GOOD, "routes": [untyped]}, RobotBridgeConfig).routes[0].type is None
