"""Launch the whole-fleet demo: `ros2 launch swarm_bridge fleet_demo.launch.py bags:=/data/bags robots:=6`.

Runs `swarm-bridge demo`, the README's first command: every bag replayed as a robot (or dealt to `robots`), a
robot_bridge process and a task executor per robot, an MQTT broker unless `mqtt` is given, an edge gateway and
Kafka when `kafka` is given, and the report at the end. The same command the tests run, so the two never drift;
run through the package's own `lib/swarm_bridge/swarm-bridge` (a colcon install puts no `swarm-bridge` on PATH).
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.substitutions import ExecutableInPackage

from swarm_bridge.signals import EXIT_WITH_PARENT

ARGUMENTS = (  # (launch argument, default, demo option, description); "" leaves the demo's own default
    ("bags", "", "--bags", "folder of bags (default: $SWARM_BRIDGE_BAGS, else ../shared/data/bags)"),
    ("robots", "", "--robots", "robots in the fleet (default: one per bag)"),
    ("rate", "", "--rate", "replay speed (bag clock x rate; default: picked from the bags' peak and the cores)"),
    ("mqtt", "", "--mqtt", "MQTT broker URL (default: a private Mosquitto)"),
    ("kafka", "", "--kafka", "Kafka bootstrap host:port: adds the edge gateway and Kafka"),
    ("tasks", "", "--tasks", "tasks: N, actions[:N] (through ROS 2 actions) or vda5050[:N] (VDA 5050 vehicles join)"),
    ("vda5050_schemas", "", "--vda5050-schemas", "with tasks:=vda5050: the official VDA 5050 JSON Schemas folder"),
    ("report_json", "", "--report-json", "write the report's figures here"),
    ("plot", "fleet_demo.png", "--plot", "PNG of throughput and latency"),
)


def _demo(context: LaunchContext) -> list[ExecuteProcess]:
    options: list[str] = []
    for name, _default, option, _description in ARGUMENTS:
        value = LaunchConfiguration(name).perform(context)
        if value:
            options += [option, value]
    return [ExecuteProcess(cmd=[ExecutableInPackage("swarm-bridge", "swarm_bridge"), "demo", "--no-progress", *options],
                           name="fleet_demo", output="screen", sigterm_timeout="30",
                           additional_env={EXIT_WITH_PARENT: "1"})]  # a killed launch takes it down too


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=description)
          for name, default, _option, description in ARGUMENTS),
        OpaqueFunction(function=_demo),
    ])
