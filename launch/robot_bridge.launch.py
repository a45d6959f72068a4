"""Launch one robot's bridge: `ros2 launch swarm_bridge robot_bridge.launch.py robot_id:=amr-7`.

`robot_id` (default: the config's) may be any id the bridge accepts (`amr-7`, `007`): it is passed to the bridge,
not used as a ROS name. The node runs in the robot's ROS namespace, the same one `{robot_id}` becomes in the
config's topics: the id with '-' as '_' and '_' before a leading digit (`amr-7` -> `/amr_7`, `007` -> `/_007`).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from swarm_bridge.routing.naming import robot_namespace
from swarm_bridge.signals import EXIT_WITH_PARENT


def _bridge(context: LaunchContext) -> list[Node]:
    robot_id = LaunchConfiguration("robot_id").perform(context)
    override = ["--robot-id", robot_id] if robot_id else []
    return [Node(
        package="swarm_bridge",
        executable="robot_bridge",
        name="robot_bridge",
        namespace=robot_namespace(robot_id) if robot_id else None,
        arguments=["--config", LaunchConfiguration("config"), *override],
        output="screen",
        additional_env={EXIT_WITH_PARENT: "1"},  # a killed launch takes it down too (no orphan)
    )]


def generate_launch_description() -> LaunchDescription:
    default_config = os.path.join(get_package_share_directory("swarm_bridge"), "config", "robot_bridge.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("robot_id", default_value="", description="robot id; overrides the config's "
                              "(letters, digits, _ and -)"),
        DeclareLaunchArgument("config", default_value=default_config, description="robot bridge YAML"),
        OpaqueFunction(function=_bridge),
    ])
