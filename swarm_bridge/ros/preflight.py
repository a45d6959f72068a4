"""What a robot bridge config needs from the installed interfaces and key files, checked before any socket opens."""

from __future__ import annotations

from pathlib import Path

from swarm_bridge.codec import CodecError
from swarm_bridge.codec.records import record_codec
from swarm_bridge.commands import Keyring
from swarm_bridge.config import ConfigError, ConfigProblem, RobotBridgeConfig
from swarm_bridge.ros.action_tasks import check_actions
from swarm_bridge.ros.types import RosTypeError, message_class
from swarm_bridge.ros.vda_vehicle import check_vehicle

__all__ = ["check_robot_config"]


def check_robot_config(config: RobotBridgeConfig, source: Path | str) -> None:
    """ConfigError naming every route whose ROS type has no definition or no message class in its format, task
    kinds whose action or goal mapping does not fit the installed action type, and trusted key files that cannot
    be loaded; all problems at once, each with its place in `source`."""
    problems: list[ConfigProblem] = []
    for index, route in enumerate(config.routes):
        if route.type is None:
            continue  # taken from the ROS graph when the topic appears
        try:
            record_codec(route.type, route.format)  # a definition (with a did-you-mean) and a record schema
            message_class(route.type)  # a generated class to subscribe or publish with
        except (CodecError, RosTypeError) as exc:
            problems.append(ConfigProblem(f"routes[{index}].type", f"route {route.topic}: {exc}"))
    problems += [ConfigProblem(key, problem) for key, problem in check_actions(config) + check_vehicle(config)]
    try:
        Keyring.from_files(config.commands.key_files())
    except CodecError as exc:
        problems.append(ConfigProblem("commands.trusted_keys", str(exc)))
    if problems:
        raise ConfigError(source, problems)
