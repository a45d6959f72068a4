"""`swarm-bridge schema check --config` (a dry run over a robot's routes) and `schema pin`: a canary robot on v2 of
RobotState, its check, its pin back to v1 (rollback) and unpin, against the embedded file registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from swarm_bridge.cli import main

REPO = Path(__file__).resolve().parents[3]
ROBOT_STATE = "swarm_bridge_msgs/msg/RobotState"
SUBJECT = "fleet.state.robot_state-value"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["schema", *args])
    out, err = capsys.readouterr()
    return status, out, err


def _msg_dir(root: Path, text: str) -> str:
    folder = root / "swarm_bridge_msgs" / "msg"
    folder.mkdir(parents=True)
    (folder / "RobotState.msg").write_text(text)
    return str(root)


@pytest.fixture()
def robot(tmp_path: Path) -> Path:
    data = yaml.safe_load((REPO / "config" / "robot_bridge.yaml").read_text())
    data["registry"] = str(tmp_path / "registry")
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_canary_is_checked_pinned_back_and_unpinned(tmp_path: Path, robot: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    registry = str(tmp_path / "registry")
    v1_text = (REPO / "msg" / "RobotState.msg").read_text()
    v2 = _msg_dir(tmp_path / "v2", v1_text.replace("bool charging\n", "") + "float32 battery_voltage\n")
    broken = _msg_dir(tmp_path / "v3", v1_text.replace("float32 battery_percent", "string battery_percent"))

    status, out, _ = _run(capsys, "check", "--config", str(robot))
    assert status == 0 and f"subject {SUBJECT}: new subject, version 1" in out and "nothing would break" in out
    assert "odometry: subject fleet.telemetry.odometry-value: no schema (json)" in out
    assert _run(capsys, "register", ROBOT_STATE, "--topic", "fleet.state.robot_state", "--registry", registry)[0] == 0
    status, out, _ = _run(capsys, "check", "--config", str(robot))
    assert status == 0 and f"subject {SUBJECT}: registered as version 1 (id 1)" in out

    # the canary's software (v2): a dry run says what its start would register, nothing is written
    status, out, _ = _run(capsys, "check", "--config", str(robot), "--msg-dir", v2)
    assert status == 0 and f"subject {SUBJECT}: new version 2, compatible (BACKWARD)" in out
    status, out, _ = _run(capsys, "check", "--config", str(robot), "--msg-dir", broken)
    assert status == 1 and "1 route(s) would break" in out
    assert (f"subject {SUBJECT}: WOULD BREAK: subject {SUBJECT}: incompatible under BACKWARD: field "
            "'RobotState.body.battery_percent'") in out
    status, out, _ = _run(capsys, "list", "--subjects", "--registry", registry)
    assert out.split() == [SUBJECT]  # the dry runs registered nothing

    # rollback: pin the route to version 1, then unpin it
    status, out, _ = _run(capsys, "pin", "--config", str(robot), "--stream", "robot_state", "--version", "1")
    assert status == 0 and "--set routes.0.schema_version=1" in out
    assert yaml.safe_load(robot.read_text())["routes"][0].get("schema_version") is None  # printed, not written
    status, out, _ = _run(capsys, "pin", "--config", str(robot), "--stream", "robot_state", "--version", "1",
                          "--write")
    assert status == 0 and "pinned to version 1" in out
    assert yaml.safe_load(robot.read_text())["routes"][0]["schema_version"] == 1
    status, out, _ = _run(capsys, "check", "--config", str(robot), "--msg-dir", v2)
    assert status == 0 and "pinned to version 1 (id 1): resolves" in out
    status, _, err = _run(capsys, "pin", "--config", str(robot), "--stream", "robot_state", "--version", "9")
    assert status == 1 and f"version 9 of subject '{SUBJECT}'" in err
    status, _, err = _run(capsys, "pin", "--config", str(robot), "--stream", "odometry", "--version", "1")
    assert status == 2 and "no up route of format avro with stream 'odometry'. Valid options are: robot_state" in err
    status, out, _ = _run(capsys, "pin", "--config", str(robot), "--stream", "robot_state", "--unpin", "--write")
    assert status == 0 and yaml.safe_load(robot.read_text())["routes"][0].get("schema_version") is None
