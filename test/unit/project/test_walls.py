"""The package's walls, read from its source with ast: only `transport/` imports the MQTT and Kafka client
libraries; only `ros/` imports rclpy and the other ROS 2 runtime modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "swarm_bridge"
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


COORDINATOR = PACKAGE / "coordinator"
# The pure core runs without a broker: no transport, no wire client, no sockets, threads or HTTP.
CORE_MAY_NOT = ("swarm_bridge.transport", "swarm_bridge.coordinator.kafka", "swarm_bridge.coordinator.site",
                "swarm_bridge.metrics", *CLIENTS, "rclpy", "prometheus_client", "requests", "socket", "ssl",
                "threading", "queue", "selectors", "asyncio", "http", "urllib")


def dotted_imports(source: str) -> set[str]:
    """The full dotted name of every absolute import in `source` (`from a.b import c` gives a.b and a.b.c)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(f"{prefix}.") for prefix in prefixes)


def coordinator_part(part: str) -> dict[str, set[str]]:
    """Each module of coordinator/`part`/ -> the dotted names it imports (an empty dict when the folder is none)."""
    return {path.relative_to(PACKAGE).as_posix(): dotted_imports(path.read_text(encoding="utf-8"))
            for path in sorted((COORDINATOR / part).glob("*.py"))}


def test_dotted_imports_sees_modules_and_names() -> None:
    source = "import socket\nfrom swarm_bridge.coordinator import kafka\ndef f():\n    from a.b import c\n"
    assert dotted_imports(source) == {"socket", "swarm_bridge.coordinator", "swarm_bridge.coordinator.kafka", "a.b",
                                      "a.b.c"}
    assert within("swarm_bridge.transport.mqtt", ("swarm_bridge.transport",))
    assert not within("swarm_bridge.transporter", ("swarm_bridge.transport",))


def test_the_coordinator_core_is_pure() -> None:
    core = coordinator_part("core")
    assert {"coordinator/core/tasks.py", "coordinator/core/dispatch.py"} <= set(core), (
        "swarm_bridge/coordinator/core/ (the pure task model, fleet view, assignment and dispatch) is missing")
    offenders = {module: sorted(n for n in names if within(n, CORE_MAY_NOT)) for module, names in core.items()}
    offenders = {module: names for module, names in offenders.items() if names}
    assert not offenders, (f"the coordinator's pure core imports I/O: {offenders}; put that part in the Kafka "
                           "runner (coordinator/kafka/), the single-site runner (coordinator/site/) or the wiring "
                           "both share (coordinator/wiring.py)")


def test_the_coordinator_runners_do_not_import_each_other() -> None:
    runners = {"kafka": coordinator_part("kafka"), "site": coordinator_part("site")}
    assert all(runners.values()), "swarm_bridge/coordinator/kafka/ and site/ (the two runners) are missing"
    crossing = {module: sorted(n for n in names if within(n, (f"swarm_bridge.coordinator.{other}",)))
                for mine, other in (("kafka", "site"), ("site", "kafka")) for module, names in runners[mine].items()}
    crossing = {module: names for module, names in crossing.items() if names}
    assert not crossing, (f"a coordinator runner imports the other: {crossing}; move what both need to "
                          "coordinator/wiring.py or coordinator/core/")


def test_the_coordinator_core_loads_no_transport_even_indirectly() -> None:
    """Importing every core module in a fresh interpreter loads neither transport/ nor a wire client."""
    modules = sorted(f"swarm_bridge.coordinator.core.{path.stem}" for path in (COORDINATOR / "core").glob("*.py"))
    assert modules, "swarm_bridge/coordinator/core/ is missing"
    walled = ("swarm_bridge.transport", *sorted(CLIENTS), "rclpy", "prometheus_client")
    script = (f"import sys\nfor name in {modules!r}:\n    __import__(name)\n"
              f"print(sorted(m for m in sys.modules if any(m == w or m.startswith(w + '.') for w in {walled!r})))")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", f"importing the coordinator core loads {loaded.strip()}"
