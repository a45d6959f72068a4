"""Launch an edge gateway: `ros2 launch swarm_bridge edge_gateway.launch.py config:=/etc/swarm/gateway.yaml`.

`gateway_id:=hub_b` overrides the config's gateway_id, so one config can start each gateway of a split group
(`split.groups`) or each hub's gateway.

The gateway is not a ROS node (a hub needs no ROS): this runs the `swarm-bridge gateway` process, through the
package's own `lib/swarm_bridge/swarm-bridge` (a colcon install puts no `swarm-bridge` on PATH).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.launch_context import LaunchContext
from launch.substitutions import LaunchConfiguration
from launch_ros.substitutions import ExecutableInPackage

from swarm_bridge.signals import EXIT_WITH_PARENT


def _gateway(context: LaunchContext) -> list[ExecuteProcess]:
    """The gateway process, with `--set gateway_id=` only when the launch argument names one."""
    gateway_id = LaunchConfiguration("gateway_id").perform(context)
    override = ["--set", f"gateway_id={gateway_id}"] if gateway_id else []
    return [ExecuteProcess(
        cmd=[ExecutableInPackage("swarm-bridge", "swarm_bridge"), "gateway",
             "--config", LaunchConfiguration("config"), *override],
        name="edge_gateway",
        output="screen",
        additional_env={EXIT_WITH_PARENT: "1"},  # a killed launch takes it down too (no orphan)
        sigterm_timeout="30",  # the gateway drains and acks what Kafka confirmed before it exits
    )]


def generate_launch_description() -> LaunchDescription:
    default_config = os.path.join(get_package_share_directory("swarm_bridge"), "config", "edge_gateway.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=default_config, description="edge gateway YAML"),
        DeclareLaunchArgument("gateway_id", default_value="",
                              description="overrides the config's gateway_id (empty: the config's)"),
        OpaqueFunction(function=_gateway),
    ])
