"""`swarm-bridge demo` refuses bad input with the key and the fix before starting anything (the real runs:
integration/cli/test_cli_demo.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from demo_cli import run_demo as _demo


@pytest.mark.parametrize(("args", "expected"), [
    (["--bags", "{empty}"], "no bags found there"),
    (["--rate", "0"], "rate"),
    (["--rate", "fast"], "--rate: must be a number > 0 or auto (got 'fast'). Fix: leave it out (auto)"),
    (["--robots", "0"], "--robots must be >= 1"),
    (["--mqtt", "http://x"], "expected mqtt://host:port"),
    (["--bag-distro", "rolling"], "--bag-distro rolling: is not a ROS 2 distribution known here. Fix: use one of"),
    (["--tasks", "vda5050", "--vda5050-schemas", "{empty}"], "no state.schema there. Fix: name the json_schemas"),
    (["--tasks", "vda"], "expected a number of tasks, or one of reference, actions, vda5050"),
])
def test_demo_bad_input_is_named(args: list[str], expected: str, tmp_path: Path, shared_bags: Path,
                                 ros_env: dict[str, str]) -> None:
    (tmp_path / "empty").mkdir()
    result = _demo(["--bags", str(shared_bags), *[a.format(empty=tmp_path / "empty") for a in args]], ros_env,
                   timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_the_schemas_come_from_the_option_else_the_shared_setting_else_none(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from swarm_bridge.cli.demo import _vda_schemas
    from swarm_bridge.cli.errors import UsageError

    release = tmp_path / "vda5050"
    (release / "json_schemas").mkdir(parents=True)
    (release / "json_schemas" / "state.schema").write_text("{}")
    monkeypatch.setenv("SWARM_BRIDGE_VDA5050", str(release))
    assert _vda_schemas(None) == release / "json_schemas"
    assert _vda_schemas(release / "json_schemas") == release / "json_schemas"
    with pytest.raises(UsageError, match=r"--vda5050-schemas .*: no state.schema there\. Fix: name the json_schemas"):
        _vda_schemas(tmp_path)
    monkeypatch.setenv("SWARM_BRIDGE_VDA5050", str(tmp_path / "nowhere"))
    assert _vda_schemas(None) is None  # the demo runs unchecked, and says so
