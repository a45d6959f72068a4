"""Launch a fleet coordinator instance: `ros2 launch swarm_bridge fleet_coordinator.launch.py instance_id:=coord-a`.

Start several (distinct instance_id, same config) to split the shards; a survivor takes over a dead one's.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from swarm_bridge.signals import EXIT_WITH_PARENT


def generate_launch_description() -> LaunchDescription:
    default_config = os.path.join(get_package_share_directory("swarm_bridge"), "config", "coordinator.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=default_config, description="coordinator YAML"),
        DeclareLaunchArgument("instance_id", default_value="coord-a", description="unique per instance"),
        Node(
            package="swarm_bridge",
            executable="fleet_coordinator",
            name="fleet_coordinator",
            arguments=["--config", LaunchConfiguration("config"), "--instance-id", LaunchConfiguration("instance_id")],
            output="screen",
            additional_env={EXIT_WITH_PARENT: "1"},  # a killed launch takes it down too (no orphan)
        ),
    ])
