"""`swarm-bridge coordinator`, `task submit` and `fleet status` pick what they do from one table of modes."""

from __future__ import annotations

from typing import get_args

from swarm_bridge.cli.coordinator import MODES
from swarm_bridge.config import CoordinatorConfig


def test_every_mode_the_config_takes_has_a_row_of_commands() -> None:
    modes = get_args(CoordinatorConfig.model_fields["mode"].annotation)
    assert set(MODES) == set(modes) == {"kafka", "mqtt"}
    for mode in MODES.values():
        assert callable(mode.run) and callable(mode.submit) and callable(mode.status)
