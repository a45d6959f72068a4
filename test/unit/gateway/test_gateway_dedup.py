"""Duplicate removal by (robot, stream, seq): exact inside the window, bounded memory, runs of a restart."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from swarm_bridge.gateway.dedup import BELOW_WINDOW, DUPLICATE, NEW, Dedup


def test_in_order_stream_with_resends() -> None:
    dedup = Dedup(window=8)
    assert [dedup.admit("r1", "odom", s) for s in (1, 2, 3)] == [NEW, NEW, NEW]
    assert [dedup.admit("r1", "odom", s) for s in (2, 3, 1)] == [DUPLICATE] * 3
    assert dedup.admit("r2", "odom", 2) == NEW  # streams of other robots are apart
    assert dedup.admit("r1", "imu", 2) == NEW
    assert dedup.highest("r1", "odom") == 3 and dedup.highest("r9", "odom") is None


def test_interleaved_gateways_leave_gaps_that_fill_later() -> None:
    dedup = Dedup(window=8)
    for seq in (1, 3, 5, 7):
        assert dedup.admit("r", "s", seq) == NEW
    for seq in (2, 4, 6):  # the other gateway's share, seen after a takeover
        assert dedup.admit("r", "s", seq) == NEW
    assert dedup.admit("r", "s", 4) == DUPLICATE


def test_a_new_run_jumps_ahead_and_old_seqs_fall_below_the_window() -> None:
    dedup = Dedup(window=4)
    run1, run2 = 1 << 32, 2 << 32
    assert dedup.admit("r", "s", run1 | 10) == NEW
    assert dedup.admit("r", "s", run2 | 0) == NEW
    assert dedup.admit("r", "s", run1 | 10) == BELOW_WINDOW
    assert dedup.admit("r", "s", run2 | 1) == NEW


def test_memory_is_bounded_by_max_streams() -> None:
    dedup = Dedup(window=4, max_streams=3)
    for robot in ("a", "b", "c", "d"):
        dedup.admit(robot, "s", 1)
    assert len(dedup) == 3 and dedup.highest("a", "s") is None and dedup.highest("d", "s") == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=200), max_size=300), st.integers(min_value=1, max_value=64))
def test_matches_a_set_inside_the_window(seqs: list[int], window: int) -> None:
    """Within `window` below the highest seq, the verdict is exactly "seen before or not"."""
    dedup, seen, high = Dedup(window=window), set(), -1
    for seq in seqs:
        verdict = dedup.admit("r", "s", seq)
        if high >= 0 and high - seq >= window:
            assert verdict == BELOW_WINDOW
        else:
            assert verdict == (DUPLICATE if seq in seen else NEW)
            seen.add(seq)
        high = max(high, seq)


def test_a_stream_new_here_or_a_new_run_is_not_placed() -> None:
    """What the gateway cannot judge alone (the robot may come from another hub) asks Kafka first."""
    run1, run2 = 1 << 32, 2 << 32
    for whole in (True, False):
        dedup = Dedup(window=8, whole=whole)
        assert not dedup.placed("r", "s", run1 | 5)  # never seen here
        dedup.admit("r", "s", run1 | 5)
        assert dedup.placed("r", "s", run1 | 5) and dedup.placed("r", "s", run1 | 6)  # a resend, the next one
        assert dedup.placed("r", "s", run1 | 2)  # an older one: the window judges it
        assert not dedup.placed("r", "s", run2 | 0)  # a new run: the bridge started again, maybe elsewhere
        assert dedup.placed("r", "s", 0)  # an older run: below the window whatever Kafka holds
        assert not dedup.placed("r", "other", run1 | 6) and not dedup.placed("q", "s", run1 | 6)


def test_a_gap_in_a_run_is_placed_only_where_streams_are_shared_among_gateways() -> None:
    """A plain subscription gets every record the robot sends to its hub: a gap means it was elsewhere meanwhile
    (its address led to another hub); in a share group the other gateways' records leave gaps all the time."""
    whole, shared = Dedup(window=8, whole=True), Dedup(window=8, whole=False)
    for dedup in (whole, shared):
        dedup.admit("r", "s", 10)
    assert not whole.placed("r", "s", 12) and shared.placed("r", "s", 12)
