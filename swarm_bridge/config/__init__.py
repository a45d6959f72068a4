"""Config files as frozen, validated pydantic models; errors name file, key path and fix."""

from swarm_bridge.config.common import TlsConfig
from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.config.errors import ConfigError, ConfigProblem
from swarm_bridge.config.gateway import GatewayConfig
from swarm_bridge.config.loader import load_config, validate_config
from swarm_bridge.config.robot import (
    QOS_PRESETS,
    RobotBridgeConfig,
    RouteConfig,
    SpoolConfig,
    default_registry,
)
from swarm_bridge.config.tasks import ActionTaskConfig, TasksConfig
from swarm_bridge.config.uplinks import UPLINK_KINDS, KafkaUplink, MqttUplink, UplinkConfig

__all__ = [
    "QOS_PRESETS",
    "UPLINK_KINDS",
    "ActionTaskConfig",
    "ConfigError",
    "ConfigProblem",
    "CoordinatorConfig",
    "GatewayConfig",
    "KafkaUplink",
    "MqttUplink",
    "RobotBridgeConfig",
    "RouteConfig",
    "SpoolConfig",
    "TasksConfig",
    "TlsConfig",
    "UplinkConfig",
    "default_registry",
    "load_config",
    "validate_config",
]
