"""The same tree installs with pip (node shims where ros2 run/launch look) and builds with colcon."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from launch_harness import LaunchRun, colcon_command, demo_delivers, gateway_forwards, launch_path, source_copy

from swarm_bridge.brokers import Kafka, Mosquitto

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
VENV = Path(sys.prefix)
PYVER = f"python{sys.version_info.major}.{sys.version_info.minor}"
NODES = sorted(p.name for p in (REPO / "nodes").iterdir())


def _run(cmd: list[str], *, env: dict[str, str] | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=cwd)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _env(prefix: Path, site: Path, extra_lib: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{VENV / 'bin'}:{os.environ['PATH']}", "PYTHONPATH": str(site),
           "AMENT_PREFIX_PATH": f"{prefix}:{VENV}"}
    if extra_lib is not None:
        env["LD_LIBRARY_PATH"] = f"{extra_lib}:{os.environ.get('LD_LIBRARY_PATH', '')}"
    return env


def _check_ros_layout(prefix: Path, env: dict[str, str]) -> None:
    """What launch_ros needs: the ament index marker, lib/<pkg>/<exe>, share/<pkg>/{launch,config}."""
    assert (prefix / "share/ament_index/resource_index/packages/swarm_bridge").is_file()
    assert (prefix / "share/swarm_bridge/launch/robot_bridge.launch.py").is_file()
    assert (prefix / "share/swarm_bridge/config/robot_bridge.yaml").is_file()
    for node in NODES:
        exe = prefix / "lib/swarm_bridge" / node
        assert exe.is_file() and os.access(exe, os.X_OK), exe
        usage = _run([str(exe), "--help"], env=env).stdout
        assert usage.startswith(f"usage: {node}")
    found = _run([sys.executable, "-c", "from ament_index_python.packages import get_package_prefix as g;"
                  "print(g('swarm_bridge'))"], env=env).stdout.strip()
    assert found == str(prefix)


def test_pip_install_puts_nodes_where_ros2_launch_finds_them(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    # --ignore-installed: without it pip uninstalls the venv's editable swarm_bridge first
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--ignore-installed",
          "--disable-pip-version-check", "--prefix", str(prefix), str(source_copy(tmp_path / "source"))])
    site = Path(sysconfig.get_path("purelib", vars={"base": str(prefix)}))
    assert (site / "swarm_bridge/nodes.py").is_file()
    assert (site / "swarm_bridge/codec/_generated/task_command/v2_pb2.py").is_file()  # protoc ran at build time
    assert (prefix / "bin/swarm-bridge").is_file()
    _check_ros_layout(prefix, _env(prefix, site))


@pytest.fixture(scope="module")
def colcon_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A colcon workspace with this repository in src/, built with the venv (ROS wheels) as underlay."""
    workspace = tmp_path_factory.mktemp("colcon") / "ws"
    (workspace / "src").mkdir(parents=True)
    source_copy(workspace / "src/swarm_bridge")
    env = {**os.environ, "PATH": f"{VENV / 'bin'}:{os.environ['PATH']}",
           "AMENT_PREFIX_PATH": str(VENV), "CMAKE_PREFIX_PATH": str(VENV)}
    _run(["colcon", "build", "--cmake-args", "-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}"],
         cwd=workspace, env=env)
    return workspace


def test_colcon_build_generates_interfaces_and_installs_nodes(colcon_workspace: Path, tmp_path: Path) -> None:
    workspace = colcon_workspace
    prefix = workspace / "install/swarm_bridge"
    site = prefix / "lib" / PYVER / "site-packages"
    run_env = _env(prefix, site, extra_lib=prefix / "lib")
    _check_ros_layout(prefix, run_env)
    # the interfaces come from this build (not the venv) and serialize through their typesupport
    assert (site / "swarm_bridge/codec/_generated/task_command/v1_pb2.py").is_file()  # protoc ran at build time
    probe = ("import swarm_bridge_msgs, swarm_bridge; from swarm_bridge_msgs.msg import TaskCommand;"
             "from rclpy.serialization import serialize_message as s;"
             "print(swarm_bridge_msgs.__file__, swarm_bridge.__file__, len(s(TaskCommand(task_id='t'))))")
    msgs_file, pkg_file, size = _run([sys.executable, "-c", probe], env=run_env, cwd=tmp_path).stdout.split()
    assert msgs_file.startswith(str(site)) and pkg_file.startswith(str(site))
    assert int(size) > 0


@pytest.mark.integration
@pytest.mark.timeout(1800)  # may build the workspace and install ros2 launch first
def test_colcon_install_runs_the_launch_files_that_start_swarm_bridge(
        colcon_workspace: Path, ros2_launch: Path, ros_env: dict[str, str], tmp_path: Path, mosquitto: Mosquitto,
        kafka: Kafka, shared_bags: Path) -> None:
    """After `colcon build` and `source install/setup.bash` (the venv as the sourced ROS underlay, no swarm-bridge on
    PATH), edge_gateway.launch.py carries MQTT to Kafka and fleet_demo.launch.py runs the demo to its report."""
    env = {**ros_env, "PATH": launch_path(tmp_path, ros2_launch), "AMENT_PREFIX_PATH": str(VENV),
           "ROS_LOG_DIR": str(tmp_path / "ros-log")}
    for name in ("PYTHONPATH", "CMAKE_PREFIX_PATH"):
        env.pop(name, None)

    def launch(file: str, **arguments: object) -> LaunchRun:
        command = ["ros2", "launch", "swarm_bridge", file, *(f"{k}:={v}" for k, v in arguments.items())]
        return LaunchRun(colcon_command(colcon_workspace, command), env=env, cwd=tmp_path)

    (tmp_path / "gateway").mkdir()
    gateway_forwards(tmp_path / "gateway", mosquitto, kafka, lambda config: launch("edge_gateway.launch.py",
                                                                                   config=config))
    (tmp_path / "demo").mkdir()
    demo_delivers(tmp_path / "demo", shared_bags, lambda arguments: launch("fleet_demo.launch.py", **arguments))


def _launched_nodes(path: Path) -> list[tuple[str, str]]:
    """(package, executable) of every Node(...) in a launch file, read without importing launch."""
    found = []
    for call in ast.walk(ast.parse(path.read_text())):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Node":
            kw = {k.arg: k.value for k in call.keywords}
            found.append((ast.literal_eval(kw["package"]), ast.literal_eval(kw["executable"])))
    return found


def _launched_commands(path: Path) -> list[ast.expr]:
    """The program of every ExecuteProcess(cmd=[...]) in a launch file (processes that are not ROS nodes)."""
    return [kw.value.elts[0] for call in ast.walk(ast.parse(path.read_text()))
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "ExecuteProcess"
            for kw in call.keywords if kw.arg == "cmd" and isinstance(kw.value, ast.List)]


@pytest.mark.parametrize("launch_file", sorted((REPO / "launch").glob("*.launch.py")), ids=lambda p: p.name)
def test_launch_files_name_installed_executables(launch_file: Path) -> None:
    nodes = _launched_nodes(launch_file)
    commands = _launched_commands(launch_file)
    assert nodes or commands, f"{launch_file.name} starts no node"
    for command in commands:  # the package's own executable (a colcon install puts no console script on PATH)
        assert isinstance(command, ast.Call) and getattr(command.func, "id", None) == "ExecutableInPackage", \
            f"{launch_file.name}: {ast.unparse(command)} is not found by ROS: use ExecutableInPackage(exe, pkg)"
        executable, package = (ast.literal_eval(a) for a in command.args)
        assert package == "swarm_bridge" and executable in NODES, f"{launch_file.name}: no nodes/{executable} shim"
    for package, executable in nodes:
        assert package == "swarm_bridge"
        assert executable in NODES, f"{launch_file.name}: no nodes/{executable} shim"


def test_docker_files_reference_what_exists() -> None:
    """The compose file parses; every image's Dockerfile and COPY sources exist; every mounted config validates
    against its model and names compose services; every command is a node shim or a `swarm-bridge` command
    the CLI accepts (the same commands the tests run)."""
    import yaml

    from swarm_bridge.cli import build_parser
    from swarm_bridge.config import CoordinatorConfig, GatewayConfig, RobotBridgeConfig, load_config

    compose = yaml.safe_load((REPO / "docker/compose.yaml").read_text())
    services = compose["services"]
    models: dict[str, type[Any]] = {"robot_bridge": RobotBridgeConfig, "gateway": GatewayConfig,
                                     "coordinator": CoordinatorConfig}
    hosts: dict[str, Any] = {}
    for name, service in services.items():
        if "build" not in service:
            continue
        dockerfile = REPO / "docker" / service["build"]["context"] / service["build"]["dockerfile"]
        assert dockerfile.is_file(), name
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY ") and not line.startswith("COPY . "):
                assert (REPO / line.split()[1]).exists(), f"{dockerfile.name}: {line}"
        command = service["command"]
        if dockerfile.name == "hub.Dockerfile":  # ENTRYPOINT swarm-bridge
            build_parser().parse_args(command)
        elif command[0] == "swarm-bridge":
            build_parser().parse_args(command[1:])
        else:
            assert command[0] in NODES, f"{name}: no nodes/{command[0]} shim"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and source.endswith(".yaml"):
                hosts[name] = load_config(REPO / "docker" / source, models[name])
    assert hosts["robot_bridge"].uplink.host == "mosquitto"
    assert hosts["gateway"].kafka.bootstrap == "kafka:9092"
    assert hosts["coordinator"].kafka.host == "kafka"
    assert {"mosquitto", "kafka"} <= set(services)


def test_fleet_demo_launch_arguments_are_demo_options() -> None:
    """Every launch argument of fleet_demo.launch.py maps to an option `swarm-bridge demo` accepts."""
    from swarm_bridge.cli import build_parser

    tree = ast.parse((REPO / "launch/fleet_demo.launch.py").read_text())
    arguments = next(ast.literal_eval(node.value) for node in tree.body
                     if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ARGUMENTS")
    parser = build_parser()
    for name, default, option, _description in arguments:
        argv = ["demo", option, default or "1"]
        parsed = parser.parse_args(argv)
        assert getattr(parsed, name) is not None, f"{name}: {option} not taken by swarm-bridge demo"
