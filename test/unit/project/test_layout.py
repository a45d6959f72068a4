"""The test tree keeps its shape: unit tests in test/unit/<package>/ are pure (no integration or slow marker, no
real broker or rclpy fixture, no sleep), everything real is in test/integration/ or test/faults/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TEST = Path(__file__).resolve().parents[2]
PACKAGE = TEST.parent / "swarm_bridge"
AREAS = ("unit", "integration", "faults")
UNIT = TEST / "unit"
# Fixtures that start a real broker, rclpy or ros2 launch (test/conftest.py): integration tests only.
REAL_FIXTURES = {"mosquitto", "kafka", "proxied_kafka", "ros_context", "ros2_launch"}
SLEEP = re.compile(r"\bsleep\(")


def _unit_files() -> list[Path]:
    return sorted(UNIT.rglob("test_*.py"))


def _rel(path: Path) -> str:
    return str(path.relative_to(TEST))


def test_every_test_file_lives_in_unit_integration_or_faults() -> None:
    misplaced = [_rel(p) for p in TEST.rglob("test_*.py") if p.relative_to(TEST).parts[0] not in AREAS]
    assert not misplaced, f"test files outside test/unit/<package>/, test/integration/, test/faults/: {misplaced}"
    flat_unit = [_rel(p) for p in UNIT.glob("test_*.py")]
    assert not flat_unit, f"unit tests go in test/unit/<package>/ (the swarm_bridge package they test): {flat_unit}"
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    folders = {p.name for p in UNIT.iterdir() if p.is_dir() and p.name != "__pycache__"}
    unknown = sorted(folders - packages - {"project"})  # project: the package as a whole (walls, errors, install)
    assert not unknown, f"test/unit/<package>/ names a swarm_bridge package; no such package: {unknown}"
    modules = sorted(p.name for p in TEST.glob("*.py"))
    assert modules == ["conftest.py"], f"helpers go in test/support/, fixtures in test/conftest.py: {modules}"


def _marks(tree: ast.Module) -> set[str]:
    """Names used as `pytest.mark.<name>` anywhere in the module (decorators and `pytestmark`)."""
    return {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "mark"}


def test_no_unit_test_is_marked_integration_or_slow() -> None:
    marked = {_rel(p): sorted(found) for p in _unit_files()
              if (found := _marks(ast.parse(p.read_text())) & {"integration", "slow"})}
    assert not marked, f"move these to test/integration/ (or split the file): {marked}"


def test_no_unit_test_asks_for_a_real_broker_or_rclpy() -> None:
    asking: dict[str, list[str]] = {}
    for path in _unit_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                names = {a.arg for a in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]}
                if used := names & REAL_FIXTURES:
                    asking.setdefault(_rel(path), []).append(f"{node.name}({', '.join(sorted(used))})")
    assert not asking, f"these use real parts, move them to test/integration/: {asking}"


def test_no_unit_test_file_sleeps() -> None:
    """Also in the code of child processes they start: wait on an event, a pipe or an injected clock instead."""
    sleeping = {_rel(p): [n for n, line in enumerate(p.read_text().splitlines(), 1) if SLEEP.search(line)]
                for p in _unit_files()}
    sleeping = {path: lines for path, lines in sleeping.items() if lines}
    assert not sleeping, f"unit tests that sleep (file: lines): {sleeping}"
