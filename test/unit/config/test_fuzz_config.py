"""Bad config files: random YAML documents and mutated valid configs give a ConfigError naming the key (never
another exception), hostile robot ids are refused, and the CLIs exit 2 with the message, not a traceback."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from swarm_bridge.config import ConfigError, CoordinatorConfig, GatewayConfig, RobotBridgeConfig, load_config

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = 200
MODELS: dict[str, type[BaseModel]] = {"robot_bridge.yaml": RobotBridgeConfig, "edge_gateway.yaml": GatewayConfig,
                                      "coordinator.yaml": CoordinatorConfig}
VALID = {name: yaml.safe_load((REPO / "config" / name).read_text()) for name in MODELS}
HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=20))
documents = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                         max_leaves=20)


def _load(path: Path, model: type[BaseModel]) -> ConfigError | None:
    """Load; a ConfigError is returned, anything else raised (the bug this file looks for)."""
    try:
        load_config(path, model)
    except ConfigError as exc:
        return exc
    return None


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=HEALTH)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                 documents.map(lambda d: yaml.safe_dump(d))), st.sampled_from(sorted(MODELS)))
def test_fuzz_random_documents_are_config_errors(tmp_path: Path, text: str, name: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    error = _load(path, MODELS[name])
    if error is not None:
        assert error.path == str(path) and error.problems and all(str(p) for p in error.problems)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a parsed config."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            out += _paths(value, (*prefix, index))
    return out


def _mutate(doc: Any, path: tuple[Any, ...], how: str, value: Any) -> Any:
    doc = copy.deepcopy(doc)
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "delete" and isinstance(parent, dict):
        del parent[last]
    elif how == "rename" and isinstance(parent, dict):
        parent[f"{last}x"] = parent.pop(last)
    else:
        parent[last] = value
    return doc


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=HEALTH)
@given(st.sampled_from(sorted(MODELS)), st.data())
def test_fuzz_mutated_valid_configs_name_the_key(tmp_path: Path, name: str, data: st.DataObject) -> None:
    doc = VALID[name]
    path = data.draw(st.sampled_from(_paths(doc)))
    how = data.draw(st.sampled_from(["delete", "rename", "replace"]))
    mutated = _mutate(doc, path, how, data.draw(scalars))
    file = tmp_path / name
    file.write_text(yaml.safe_dump(mutated))
    error = _load(file, MODELS[name])
    if error is None:
        return  # some mutations stay valid (an optional key deleted, a string for a string)
    assert all(p.location or p.problem for p in error.problems)
    if how == "rename" and isinstance(path[-1], str):
        text = str(error)
        assert f"{path[-1]}x" in text or str(path[-1]) in text, text


HOSTILE = {"slash": "amr/1", "plus": "amr+1", "hash": "amr#", "nul": "amr\x00", "long": "a" * 257,
           "unicode": "ロボット", "newline": "amr\n1", "empty": "", "space": "amr 1"}


@pytest.mark.parametrize("robot_id", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_robot_ids_are_refused_naming_robot_id(tmp_path: Path, robot_id: str) -> None:
    file = tmp_path / "robot.yaml"
    file.write_text(yaml.safe_dump({**VALID["robot_bridge.yaml"], "robot_id": robot_id}))
    error = _load(file, RobotBridgeConfig)
    assert error is not None and error.problems[0].location == "robot_id", robot_id


CLIS = {
    "gateway": [sys.executable, "-m", "swarm_bridge.cli", "gateway", "--config"],
    "coordinator": [sys.executable, "-m", "swarm_bridge.cli", "coordinator", "--config"],
    "robot_bridge": [sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge", "--config"],
}


@pytest.mark.parametrize("cli", sorted(CLIS))
@pytest.mark.parametrize("bad", ["not: [valid", "- a list\n", "unknown_key: 1\n"])
def test_the_clis_exit_2_on_a_bad_config_without_a_traceback(tmp_path: Path, cli: str, bad: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(bad)
    done = subprocess.run([*CLIS[cli], str(file)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout and str(file) in done.stderr


def test_robot_bridge_refuses_a_hostile_robot_id_override_with_exit_2(tmp_path: Path) -> None:
    done = subprocess.run([*CLIS["robot_bridge"], str(REPO / "config" / "robot_bridge.yaml"), "--robot-id",
                           "amr/#"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "robot_id" in done.stderr and "--robot-id" in done.stderr
