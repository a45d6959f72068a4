"""The robot's Kafka uplink security config, without a broker: keys of the other kind refused, the password source
named (through a real Kafka with SCRAM and ACLs: integration/transport/test_uplink_kafka_security.py)."""

from __future__ import annotations

import pytest
from kafka_uplink_docs import PASSWORD_ENV
from kafka_uplink_docs import kafka_uplink_data as _data
from kafka_uplink_docs import scram_security as _scram

from swarm_bridge.config import ConfigError, RobotBridgeConfig, validate_config


def test_a_kafka_uplink_takes_no_mqtt_login_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "x")
    with pytest.raises(ConfigError, match=r"uplink: .*username, password_env: MQTT login keys; a kafka uplink logs in "
                                          r"with security \(security_protocol"):
        validate_config(_data(9092, {}, username="amr_007", password_env=PASSWORD_ENV), RobotBridgeConfig)


def test_an_mqtt_uplink_takes_no_kafka_security(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "x")
    data = _data(1883, _scram(password_env=PASSWORD_ENV))
    data["uplink"]["kind"] = "mqtt"
    with pytest.raises(ConfigError, match=r"uplink: .*security applies to kind kafka; an MQTT uplink logs in with "
                                          r"username, password_env and tls"):
        validate_config(data, RobotBridgeConfig)


def test_an_unset_password_variable_is_named_with_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(ConfigError, match=rf"uplink\.security\.password_env: .*environment variable {PASSWORD_ENV} "
                                          r"is not set"):
        validate_config(_data(9092, _scram(password_env=PASSWORD_ENV)), RobotBridgeConfig)


def test_sasl_without_a_password_source_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"uplink\.security: .*SASL_PLAINTEXT needs exactly one of password_env, "
                                          r"password_file"):
        validate_config(_data(9092, _scram()), RobotBridgeConfig)
