"""The coordinator's restart budget: a few restarts after Kafka ended an instance, never an endless loop."""

from __future__ import annotations

from swarm_bridge.coordinator.core.restarts import RestartBudget


def test_restarts_within_the_window_are_bounded() -> None:
    budget = RestartBudget(limit=3, window_s=600.0)
    assert [budget.take(t) for t in (0.0, 10.0, 20.0)] == [True, True, True]
    assert budget.left == 0
    assert budget.take(30.0) is False
    assert budget.take(599.0) is False


def test_restarts_older_than_the_window_are_forgotten() -> None:
    budget = RestartBudget(limit=2, window_s=100.0)
    assert budget.take(0.0) and budget.take(50.0)
    assert budget.take(99.0) is False
    assert budget.take(100.0) is True  # the first one left the window
    assert budget.take(120.0) is False
    assert budget.take(150.0) is True
