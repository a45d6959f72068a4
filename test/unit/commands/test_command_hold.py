"""CommandHold, pure: commands waiting for a ROS subscriber keep their order, their age and their bound."""

from __future__ import annotations

import pytest

from swarm_bridge.commands import CommandHold

S = 1_000_000_000


def test_held_commands_leave_in_order_and_the_hold_is_empty_after() -> None:
    hold: CommandHold[str] = CommandHold(hold_s=10, max_items=5)
    for i, item in enumerate("abc"):
        assert hold.add(item, i * S) is None
    assert hold.oldest_ns() == 0
    assert [h.item for h in hold.take()] == ["a", "b", "c"]
    assert len(hold) == 0 and hold.oldest_ns() is None


def test_only_commands_older_than_hold_s_expire() -> None:
    hold: CommandHold[str] = CommandHold(hold_s=2, max_items=5)
    hold.add("a", 0)
    hold.add("b", 1 * S)
    hold.add("c", 3 * S)
    assert hold.expired(int(1.5 * S)) == []
    assert [h.item for h in hold.expired(3 * S)] == ["a", "b"]
    assert [h.item for h in hold.take()] == ["c"]


def test_a_full_hold_gives_up_its_oldest() -> None:
    hold: CommandHold[str] = CommandHold(hold_s=10, max_items=2)
    hold.add("a", 0)
    hold.add("b", 0)
    pushed = hold.add("c", 0)
    assert pushed is not None and pushed.item == "a"
    assert [h.item for h in hold.take()] == ["b", "c"]


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({"hold_s": -1, "max_items": 1}, "hold_s must be >= 0 (got -1)"),
    ({"hold_s": 1, "max_items": 0}, "commands.hold_max must be >= 1 (got 0)"),
])
def test_bad_bounds_are_named(kwargs: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        CommandHold(**kwargs)  # type: ignore[arg-type]
