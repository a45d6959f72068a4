"""The package's walls, read from its source with ast: only `transport/` imports the MQTT and Kafka client
libraries; only `ros/` imports rclpy and the other ROS 2 runtime modules."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "swarm_bridge"
CLIENTS = frozenset({"confluent_kafka", "paho", "mqtt5"})
# The ROS 2 runtime (rosbags, the pure-Python bag reader, is not one: replay/ reads bags without ROS).
ROS_RUNTIME = frozenset({"rclpy", "rosidl_runtime_py", "rosidl_parser", "rosbag2_py", "rmw", "rpyutils"})


def imports(source: str) -> set[str]:
    """The top-level package of every absolute import in `source`, lazy ones (inside functions) included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def package_imports() -> dict[str, set[str]]:
    """Each module of the package (path relative to it) -> the top-level packages it imports."""
    return {path.relative_to(PACKAGE).as_posix(): imports(path.read_text(encoding="utf-8"))
            for path in sorted(PACKAGE.rglob("*.py"))}


def test_imports_sees_lazy_and_dotted_imports() -> None:
    source = "import os.path\nfrom confluent_kafka.admin import AdminClient\ndef f():\n    import paho.mqtt.client\n"
    assert imports(source) == {"os", "confluent_kafka", "paho"}
    assert imports("from . import sibling\nfrom .x import y\n") == set()


def test_only_transport_imports_the_mqtt_and_kafka_clients() -> None:
    offenders = {module: sorted(found & CLIENTS) for module, found in package_imports().items()
                 if found & CLIENTS and not module.startswith("transport/")}
    assert not offenders, (f"modules outside swarm_bridge/transport/ import client libraries: {offenders}; "
                           "give transport/ the piece they need (transport/kafka_clients.py, topics.py, acls.py, "
                           "registry_client.py, mqtt_client.py) and import it from there")


def test_only_ros_imports_rclpy() -> None:
    offenders = {module: sorted(found & ROS_RUNTIME) for module, found in package_imports().items()
                 if found & ROS_RUNTIME and not module.startswith("ros/")}
    assert not offenders, (f"modules outside swarm_bridge/ros/ import the ROS 2 runtime: {offenders}; put the ROS "
                           "part in ros/ (ros/context.py: contexts, nodes, a process's node; ros/spin.py: executors) "
                           "and call it from there")
