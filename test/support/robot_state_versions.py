"""RobotState v2 for tests of a fleet on two schema versions: `charging` removed, `battery_voltage` added, mode
grown by MODE_DOCKING; as msg text, and installed as a robot on v2 has it (an ament prefix of its own)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODE_DOCKING = 7


def v2_text() -> str:
    """The v2 RobotState.msg, made from the installed v1 (msg/RobotState.msg)."""
    v1 = (REPO / "msg" / "RobotState.msg").read_text()
    assert "bool charging" in v1
    grown = f"uint8 MODE_EMERGENCY_STOP=6\nuint8 MODE_DOCKING={MODE_DOCKING}\n"
    return v1.replace("bool charging\n", "").replace("uint8 MODE_EMERGENCY_STOP=6\n", grown) + \
        "float32 battery_voltage\n"


def v2_prefix(root: Path) -> Path:
    """An ament prefix holding only the v2 RobotState.msg: first in a process's AMENT_PREFIX_PATH, it overrides the
    installed RobotState for that process's codecs (the other interfaces still come from the installed prefix)."""
    (root / "share" / "ament_index" / "resource_index" / "rosidl_interfaces").mkdir(parents=True)
    (root / "share" / "ament_index" / "resource_index" / "rosidl_interfaces" / "swarm_bridge_msgs").write_text("")
    (root / "share" / "swarm_bridge_msgs" / "msg").mkdir(parents=True)
    (root / "share" / "swarm_bridge_msgs" / "msg" / "RobotState.msg").write_text(v2_text())
    return root
