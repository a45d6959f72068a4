"""Pure parts of broker security: the Kafka `security:` config model, a gateway's ACL grants, SCRAM users."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from swarm_bridge.brokers import free_port
from swarm_bridge.brokers.kafka import Kafka, KafkaBrokerSecurity
from swarm_bridge.brokers.kafka_acls import KafkaGrant
from swarm_bridge.config import ConfigError, GatewayConfig, validate_config
from swarm_bridge.config.security import KafkaSecurity
from swarm_bridge.gateway.grants import gateway_grants

SASL = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512", "username": "gw"}


def _gateway(**kafka: Any) -> dict[str, Any]:
    return {"gateway_id": "gw1", "fleet": "f", "kafka": kafka}


def test_plaintext_is_the_default_and_adds_only_the_protocol() -> None:
    config = validate_config(_gateway(), GatewayConfig)
    assert config.kafka.security.client_settings() == {"security.protocol": "plaintext"}
    assert config.kafka.security.principal is None


def test_sasl_reads_the_password_from_its_variable_when_a_client_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_PW", "first")
    security = validate_config(_gateway(security={**SASL, "password_env": "GW_PW"}), GatewayConfig).kafka.security
    monkeypatch.setenv("GW_PW", "rotated")
    assert security.client_settings() == {"security.protocol": "sasl_plaintext", "sasl.mechanism": "SCRAM-SHA-512",
                                          "sasl.username": "gw", "sasl.password": "rotated"}
    assert security.principal == "User:gw"
    assert "rotated" not in security.describe() + repr(security) + str(security.model_dump())


def test_a_password_file_and_tls_files_become_librdkafka_settings(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    security = KafkaSecurity.model_validate({**SASL, "security_protocol": "SASL_SSL", "password_file": str(secret),
                                             "tls": {"ca_file": str(ca)}})
    assert security.client_settings() == {"security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512",
                                          "sasl.username": "gw", "sasl.password": "from-file",
                                          "ssl.ca.location": str(ca)}
    assert security.describe() == f"SASL_SSL SCRAM-SHA-512 as 'gw' (password from file {secret})"


@pytest.mark.parametrize(("security", "problem"), [
    ({"security_protocol": "SASL_PLAINTEXT"}, "security_protocol SASL_PLAINTEXT needs sasl_mechanism and username"),
    (SASL, "needs exactly one of password_env, password_file"),
    ({**SASL, "password_env": "HOME", "password_file": "/etc/hostname"}, "needs exactly one of password_env"),
    ({"username": "gw"}, "username need security_protocol SASL_PLAINTEXT or SASL_SSL (got PLAINTEXT)"),
    ({**SASL, "password_env": "HOME", "tls": {}}, "tls needs security_protocol SSL or SASL_SSL"),
    ({**SASL, "password_env": "SWARM_SURELY_UNSET_VAR"}, "environment variable SWARM_SURELY_UNSET_VAR is not set"),
    ({**SASL, "password": "inline"}, "unknown key 'password' (did you mean 'password_env'?)"),
    ({**SASL, "sasl_mechanism": "GSSAPI", "password_env": "HOME"}, "sasl_mechanism: Input should be"),
])
def test_bad_security_sections_are_refused_by_path(security: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(_gateway(security=security), GatewayConfig, source="gw.yaml")
    assert "gw.yaml: kafka.security" in str(caught.value)
    assert problem in str(caught.value)
    assert "inline" not in str(caught.value)  # a password written into the file is never echoed


def test_gateway_grants_are_the_rules_topics_and_nothing_more() -> None:
    config = validate_config({**_gateway(), "dedup": {"rebuild_records": 0}}, GatewayConfig)
    assert {str(g) for g in gateway_grants(config)} == {
        "write topic:fleet.telemetry.*", "create topic:fleet.telemetry.*",
        "write topic:fleet.event.*", "create topic:fleet.event.*",
        "write topic:fleet.state.*", "create topic:fleet.state.*",
        "write topic:fleet.presence.status", "create topic:fleet.presence.status",
        "write topic:fleet.dlq", "create topic:fleet.dlq",
        "write topic:fleet.health.gateway", "create topic:fleet.health.gateway",
        "read topic:fleet.command.task_command", "read group:swarm_gateway_commands",
    }


def test_rebuilding_dedup_windows_adds_read_on_the_up_topics_only() -> None:
    config = validate_config(_gateway(), GatewayConfig)  # rebuild_records defaults to 20000
    reads = {str(g) for g in gateway_grants(config) if g.operation == "read"}
    assert reads == {"read topic:fleet.telemetry.*", "read topic:fleet.event.*", "read topic:fleet.state.*",
                     "read topic:fleet.presence.status", "read topic:fleet.command.task_command",
                     "read group:swarm_gateway_commands"}


def test_a_rule_topic_starting_with_a_capture_cannot_be_granted_narrowly() -> None:
    config = validate_config({**_gateway(), "up": [{"mqtt": "{prefix}/{fleet}/{robot_id}/{channel}/{stream}",
                                                   "kafka_topic": "{channel}.{stream}"}]}, GatewayConfig)
    with pytest.raises(ValueError, match=r"starts with a capture: no topic prefix to grant"):
        gateway_grants(config)
    assert KafkaGrant("topic", "a.", "prefixed", "read") < KafkaGrant("topic", "b", "literal", "read")


def test_scram_users_are_stored_salted_never_in_plain_text(tmp_path: Path) -> None:
    security = KafkaBrokerSecurity("admin", "admin-pw", {"gw": "gw-pw"})
    credentials = security.scram_credentials()
    assert len(credentials) == 2 and all("-pw" not in c for c in credentials)
    found = re.fullmatch(r'SCRAM-SHA-512=\[name=gw,iterations=8192,salt="([^"]+)",saltedpassword="([^"]+)"\]',
                         credentials[1])
    assert found is not None
    salt = base64.b64decode(found.group(1))
    assert base64.b64decode(found.group(2)) == hashlib.pbkdf2_hmac("sha512", b"gw-pw", salt, 8192)
    assert "gw-pw" not in repr(security) and "admin-pw" not in repr(security)
    with pytest.raises(ValueError, match="SCRAM user name"):
        KafkaBrokerSecurity("admin", "x", {"bad,name": "y"})


def test_a_secured_kafka_config_has_a_scram_listener_acls_and_a_plain_controller(tmp_path: Path) -> None:
    broker = Kafka(run_dir=tmp_path, port=free_port(), controller_port=free_port(),
                   security=KafkaBrokerSecurity("admin", "admin-pw"))
    text = broker._server_config()
    settings = dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))
    assert settings["listeners"] == f"SASL_PLAINTEXT://127.0.0.1:{broker.port},CONTROLLER://127.0.0.1:" \
                                    f"{broker.controller_port}"
    assert settings["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
    assert settings["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert settings["super.users"] == "User:admin;User:ANONYMOUS"
    assert settings["allow.everyone.if.no.acl.found"] == "false"
    assert "PLAINTEXT://" not in settings["advertised.listeners"].replace("SASL_PLAINTEXT://", "")
