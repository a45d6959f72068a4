"""Robot bridge configs with a Kafka uplink and its SASL/SCRAM `security:` section, as the uplink security tests
write them."""

from __future__ import annotations

from typing import Any

PASSWORD_ENV = "SWARM_TEST_UPLINK_KAFKA_PASSWORD"


def kafka_uplink_data(port: int, security: dict[str, Any], **uplink: Any) -> dict[str, Any]:
    """Robot amr_007 of fleet `secure` with one JSON odometry route and a Kafka uplink on `port`."""
    return {
        "robot_id": "amr_007", "fleet": "secure",
        "uplink": {"kind": "kafka", "port": port, "connect_timeout_s": 5, "security": security, **uplink},
        "routes": [{"topic": "/odom", "type": "nav_msgs/msg/Odometry", "channel": "telemetry", "stream": "odometry",
                    "qos": "sensor_data", "format": "json"}],
    }


def scram_security(**password: str) -> dict[str, str]:
    """SASL_PLAINTEXT with SCRAM-SHA-512 as amr_007; `password` names the password's source."""
    return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512", "username": "amr_007",
            **password}
