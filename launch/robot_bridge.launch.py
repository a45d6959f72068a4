"""Launch one robot's bridge: `ros2 launch swarm_bridge robot_bridge.launch.py robot_id:=amr_007`."""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    default_config = os.path.join(get_package_share_directory("swarm_bridge"), "config", "robot_bridge.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("robot_id", default_value="amr_007", description="robot id; overrides the config"),
        DeclareLaunchArgument("config", default_value=default_config, description="robot bridge YAML"),
        Node(
            package="swarm_bridge",
            executable="robot_bridge",
            name="robot_bridge",
            namespace=LaunchConfiguration("robot_id"),
            arguments=["--config", LaunchConfiguration("config"), "--robot-id", LaunchConfiguration("robot_id")],
            output="screen",
        ),
    ])
