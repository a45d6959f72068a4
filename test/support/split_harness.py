"""What the split gateway tests share: one split table written into each gateway's config, what each gateway
said it produced, and the records of a group of robots that Kafka holds."""

from __future__ import annotations

import collections
import re
from pathlib import Path
from typing import Any

from gateway_harness import write_config

from swarm_bridge.sim import SimRobot


def split_configs(tmp: Path, groups: dict[str, list[SimRobot]], **common: Any) -> dict[str, Path]:
    """One config per gateway of the hub, each with the same split table and its own gateway_id."""
    table = {"groups": {gateway: [r.robot_id for r in robots] for gateway, robots in groups.items()}}
    tmp.mkdir(parents=True, exist_ok=True)
    return {gateway: write_config(tmp / f"{gateway}.yaml", gateway_id=gateway, split=table, **common)
            for gateway in groups}


def produced(output: str) -> int:
    """Records the gateway said Kafka confirmed, from its last status line (`... produced N ...`)."""
    found = re.findall(r"stopped: .*?produced (\d+)", output)
    assert found, output[-2000:]
    return int(found[-1])


def by_robot(heads: collections.Counter[tuple[str, str, int]]) -> collections.Counter[str]:
    """Records in Kafka per robot (each copy counted)."""
    out: collections.Counter[str] = collections.Counter()
    for (robot, _stream, _seq), copies in heads.items():
        out[robot] += copies
    return out


def sent_by(robots: list[SimRobot]) -> int:
    """Records the robots numbered."""
    return sum(sum(r.sent.values()) for r in robots)
