"""The install story of a ROS workspace is true: rosdep gets what package.xml declares at versions that work,
and one pip command (requirements/robot.txt) gets the rest of what the robot side imports."""

from __future__ import annotations

import ast
import configparser
import importlib.metadata as md
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[3]

# rosdep key -> (PyPI distribution, the version Ubuntu 24.04, ROS 2 Kilted's platform, installs for it)
ROSDEP_NOBLE = {
    "python3-yaml": ("pyyaml", "6.0.1"),
    "python3-paho-mqtt": ("paho-mqtt", "1.6.1"),
    "python3-pydantic": ("pydantic", "1.10.14"),
}
# what a robot runs: the robot bridge node, the reference task executor, `swarm-bridge replay`, both uplinks
ROBOT_SIDE = ("swarm_bridge.nodes", "swarm_bridge.ros.robot_bridge", "swarm_bridge.ros.task_executor",
              "swarm_bridge.transport.mqtt", "swarm_bridge.transport.mqtt_client",
              "swarm_bridge.transport.kafka", "swarm_bridge.replay",
              "swarm_bridge.cli.replay", "swarm_bridge.codec.registry.confluent")


def _exec_depends() -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {e.text or "" for tag in ("exec_depend", "depend") for e in root.iter(tag)}


def _install_requires() -> dict[str, Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    lines = [line.strip() for line in cfg["options"]["install_requires"].splitlines() if line.strip()]
    return {canonicalize_name(Requirement(line).name): Requirement(line) for line in lines}


def test_rosdep_keys_give_versions_the_code_accepts() -> None:
    """A python3-* key rosdep resolves to a version setup.cfg refuses would install a robot that cannot start."""
    needed = _install_requires()
    for key in sorted(k for k in _exec_depends() if k.startswith("python3-")):
        assert key in ROSDEP_NOBLE, f"package.xml: {key}: add the version Ubuntu 24.04 installs to ROSDEP_NOBLE"
        dist, version = ROSDEP_NOBLE[key]
        spec = needed[canonicalize_name(dist)].specifier
        assert spec.contains(version), (f"package.xml: {key} gives {dist} {version} on Ubuntu 24.04, the code needs "
                                        f"{dist}{spec}: leave it to requirements/robot.txt")


def test_launch_files_imports_are_declared() -> None:
    """Every ROS package a launch file imports (launch, launch_ros, ament_index_python) is an exec_depend."""
    imported = set()
    for path in sorted((REPO / "launch").glob("*.launch.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
    ros = imported - {"os", "swarm_bridge"}
    assert {"launch", "launch_ros", "ament_index_python"} <= ros
    assert ros <= _exec_depends(), f"package.xml lacks exec_depend {sorted(ros - _exec_depends())}"


def _robot_requirements() -> list[Requirement]:
    lines = (REPO / "requirements/robot.txt").read_text().splitlines()
    return [Requirement(line.split("#")[0].strip()) for line in lines if line.split("#")[0].strip()]


def _closure(requirements: list[Requirement]) -> set[str]:
    """The distributions `requirements` install, with their dependencies (as installed here)."""
    seen: set[str] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in requirements]
    while todo:
        name, extras = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for line in md.requires(name) or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (*extras, "")):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return seen


def _owners(top: str, candidates: list[str], full: list[str]) -> list[str]:
    """The distributions of a top-level module that hold an imported module: a namespace package (`google`) is
    shared by several (protobuf, googleapis-common-protos), of which only some are imported."""
    if len(candidates) < 2:
        return candidates
    paths = {m.replace(".", "/") for m in full if m.startswith(f"{top}.")}
    return [d for d in candidates if any(str(f).rsplit(".", 1)[0].removesuffix("/__init__") in paths
                                         for f in md.files(d) or [])]


def _robot_side_imports_beyond_ros() -> set[str]:
    """The distributions the robot side imports that neither ROS nor swarm_bridge itself provides."""
    probe = (f"import sys; import {', '.join(ROBOT_SIDE)}\n"
             "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] not in sys.stdlib_module_names)))")
    full = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          check=True).stdout.split()
    modules = sorted({m.split(".")[0] for m in full} - {"_distutils_hack"})  # setuptools' .pth hook, not ours
    owners = md.packages_distributions()
    imported = {canonicalize_name(d) for m in modules for d in _owners(m, owners.get(m, []), full)}
    ros = {d for d in imported if d.startswith("ros-")} | {canonicalize_name("swarm_bridge")}
    ros |= {canonicalize_name(m) for m in modules if (Path(sys.prefix) / "share" / m / "package.xml").is_file()}
    return {str(name) for name in imported - ros}


def test_robot_requirements_give_what_the_robot_side_imports() -> None:
    """Imported by the robot side and not ROS: installed by `pip install -r requirements/robot.txt`."""
    missing = _robot_side_imports_beyond_ros() - _closure(_robot_requirements())
    assert not missing, f"requirements/robot.txt installs neither these nor anything needing them: {sorted(missing)}"
    assert "paho-mqtt" not in {canonicalize_name(r.name) for r in _robot_requirements()}  # tests' client only


def test_paho_is_a_test_and_bench_dependency_only() -> None:
    """paho-mqtt is the tests' independent second client: the robot side never imports it, a plain
    `pip install .` does not install it, the `test` and `bench` extras do."""
    assert "paho-mqtt" not in _robot_side_imports_beyond_ros()
    assert "paho-mqtt" not in _install_requires()
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    for extra in ("test", "bench"):
        lines = [line.strip() for line in cfg["options.extras_require"][extra].splitlines() if line.strip()]
        assert "paho-mqtt" in {canonicalize_name(Requirement(line).name) for line in lines}, extra


def test_pip_install_gives_what_the_robot_side_imports() -> None:
    """A plain `pip install .` (setup.cfg install_requires) gets every non-ROS package the robot side imports."""
    missing = _robot_side_imports_beyond_ros() - _closure(list(_install_requires().values()))
    assert not missing, f"setup.cfg install_requires installs neither these nor what needs them: {sorted(missing)}"
