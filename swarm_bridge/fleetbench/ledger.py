"""Delivery ledger: per (robot, stream) seq gaps and duplicates, counted in O(1) memory per stream.

A stream's records reach Kafka in order (one key, one partition), so the ledger keeps the next seq it
expects; a jump counts the skipped seqs as missing (kept, in case they turn up late), a seq below it is a
late arrival (if it was missing) or a duplicate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from swarm_bridge.codec.envelope import RUN_SHIFT, SEQ_MASK

__all__ = ["Delivery", "SeqLedger", "percentile"]


@dataclass
class _Stream:
    next: int = 0  # the record number (seq & 0xffffffff) expected next
    missing: set[int] = field(default_factory=set)
    duplicates: int = 0
    received: int = 0


@dataclass(frozen=True)
class Delivery:
    """What arrived of what was sent: records sent, distinct arrived, lost, duplicated, and foreign ones."""

    sent: int
    delivered: int
    lost: int
    duplicates: int
    unexpected: int  # records of another run, or past what the robot said it sent


class SeqLedger:
    """Records of one run (seq = run << 32 | n, n from 0), counted per (robot_id, stream)."""

    def __init__(self, run: int) -> None:
        self.run = run
        self.streams: dict[tuple[str, str], _Stream] = {}
        self.foreign = 0  # records of another run

    def add(self, robot_id: str, stream: str, seq: int) -> None:
        """Count one record that arrived."""
        if seq >> RUN_SHIFT != self.run:
            self.foreign += 1
            return
        n = seq & SEQ_MASK
        state = self.streams.get((robot_id, stream))
        if state is None:
            state = self.streams[(robot_id, stream)] = _Stream()
        state.received += 1
        if n == state.next:
            state.next = n + 1
        elif n > state.next:
            state.missing.update(range(state.next, n))
            state.next = n + 1
        elif n in state.missing:
            state.missing.discard(n)
        else:
            state.duplicates += 1

    def delivery(self, sent: Mapping[tuple[str, str], int]) -> Delivery:
        """Compare with what each (robot, stream) sent: numbers 0..sent-1 are expected exactly once."""
        lost = duplicates = unexpected = delivered = 0
        for key in set(sent) | set(self.streams):
            count = sent.get(key, 0)
            state = self.streams.get(key, _Stream())
            beyond = max(0, state.next - count)  # numbers past the last one sent
            unexpected += beyond
            missing = len(state.missing) + max(0, count - state.next)
            lost += missing
            duplicates += state.duplicates
            delivered += count - missing
        return Delivery(sum(sent.values()), delivered, lost, duplicates, unexpected + self.foreign)

    def received(self) -> int:
        return sum(s.received for s in self.streams.values())


def percentile(values: Iterable[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; 0.0 for no values."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return float(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))])
