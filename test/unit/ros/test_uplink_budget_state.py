"""The budget's state in the log: one line when it starts dropping, one when it keeps up again, and only after
CALM_S without a drop (under a steady overload its lanes empty between two images: no line each time)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from swarm_bridge.config.robot import BudgetConfig
from swarm_bridge.ros.uplink_budget import CALM_S, UplinkBudget
from swarm_bridge.routing.budget import SUPERSEDED, Parcel


class _Outbox:
    """What the budget hands on (nothing here reaches it)."""

    def submit(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("nothing should leave")


def test_short_is_logged_once_and_keeps_up_only_after_a_calm_spell(caplog: pytest.LogCaptureFixture) -> None:
    paced = UplinkBudget(BudgetConfig(bytes_per_s=1000.0), _Outbox(), on_drop=lambda *_: None)  # type: ignore[arg-type]
    paced.close()  # its pacing thread stopped: the test steps the state itself
    budget = paced.budget

    def drop(now: float) -> None:
        budget.offer(Parcel("camera", 0, [], [10], now), now)
        budget.offer(Parcel("camera", 0, [], [10], now), now)  # supersedes the first: a drop
        budget.drain()  # the lanes empty again, as between two images

    caplog.set_level(logging.INFO, logger="swarm_bridge.ros.uplink_budget")
    for second in range(20):  # a drop every second, the lanes empty in between
        drop(100.0 + second)
        paced._state(100.0 + second)
        paced._state(100.5 + second)
    assert budget.drops[("camera", SUPERSEDED)] == 20
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("budget: ")]
    assert [line.split(" (")[0] for line in lines] == ["budget: short"]
    paced._state(119.0 + CALM_S - 0.5)
    assert not any("keeps up" in r.getMessage() for r in caplog.records)
    paced._state(119.0 + CALM_S + 0.1)
    assert [r.getMessage().split(" (")[0] for r in caplog.records][-1] == "budget: keeps up again"
