"""Reading a robot bridge's sequence numbers in tests: seq = run << 32 | n, the run set by the clock at start."""

from __future__ import annotations

from collections.abc import Iterable

from swarm_bridge.codec.envelope import RUN_SHIFT, SEQ_MASK


def one_run(seqs: Iterable[int]) -> list[int]:
    """The n of every seq, in order, after checking they are all of one run (one start of the bridge)."""
    seqs = list(seqs)
    runs = sorted({seq >> RUN_SHIFT for seq in seqs})
    assert len(runs) <= 1, f"seqs of {len(runs)} runs ({runs[:4]}), expected one"
    return [seq & SEQ_MASK for seq in seqs]


def runs_in_order(seqs: Iterable[int]) -> list[int]:
    """The runs of `seqs` in the order they first appear."""
    return list(dict.fromkeys(seq >> RUN_SHIFT for seq in seqs))
