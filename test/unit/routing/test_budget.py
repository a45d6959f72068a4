"""The uplink budget, pure: the bucket's rate holds, control passes at once, a small record of a higher priority
leaves between a large record's chunks, the lower priorities give way first (superseded, too late, queue full),
every drop counted, a record once started is never dropped, a new rate applies at once."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm_bridge.routing.budget import QUEUE_FULL, SUPERSEDED, TOO_LATE, Budget, Parcel
from swarm_bridge.routing.errors import RouteError


def _parcel(stream: str, priority: int, sizes: list[int], at: float = 0.0) -> Parcel[str]:
    return Parcel(stream, priority, [f"{stream}:{i}" for i in range(len(sizes))], sizes, at)


def _run(budget: Budget[str], until: float, step: float = 0.01, start: float = 0.0) -> list[str]:
    out, now = [], start
    while now <= until:
        budget.expire(now)
        out += [part for _p, part in budget.release(now)]
        now += step
    return out


def test_the_rate_holds_and_a_later_small_record_of_higher_priority_passes_the_large_one() -> None:
    budget: Budget[str] = Budget(1000.0, 1000, max_wait_s=100)
    budget.offer(_parcel("camera", 0, [500] * 10), 0.0)  # 5000 bytes: 5 s at 1000 B/s
    early = _run(budget, 1.0)
    budget.offer(_parcel("status", 2, [100], at=1.0), 1.0)
    late = _run(budget, 6.1, start=1.01)
    assert 2 <= len(early) <= 4  # the burst (two chunks), then the rate
    assert late[0] == "status:0"  # before the camera's remaining chunks
    assert late[1:] == [f"camera:{i}" for i in range(len(early), 10)]
    assert budget.spent == 5100 and not budget.drops


def test_control_passes_at_once_and_puts_the_bucket_into_debt() -> None:
    budget: Budget[str] = Budget(1000.0, 1000, keep_priority=5)
    assert budget.keeps(5) and not budget.keeps(4)
    budget.spend(1500, 0.0)  # 500 bytes of debt
    budget.offer(_parcel("camera", 0, [100]), 0.0)
    assert _run(budget, 0.55) == [] and _run(budget, 0.7, start=0.56) == ["camera:0"]  # after the debt is paid


def test_a_waiting_record_is_superseded_by_its_streams_newer_one() -> None:
    budget: Budget[str] = Budget(1000.0, 1000)
    budget.spend(1000, 0.0)
    first, second = _parcel("camera", 0, [800]), _parcel("camera", 0, [800], at=0.1)
    assert budget.offer(first, 0.0) == []
    assert budget.offer(second, 0.1) == [first] and first.dropped == SUPERSEDED
    assert _run(budget, 1.0) == ["camera:0"] and budget.drops == {("camera", SUPERSEDED): 1}


def test_records_waiting_too_long_are_dropped_and_started_ones_never() -> None:
    budget: Budget[str] = Budget(100.0, 200, max_wait_s=1.0)
    budget.offer(_parcel("cloud", 0, [200] * 5), 0.0)
    budget.offer(_parcel("camera", 0, [200]), 0.0)
    out = _run(budget, 12.0)
    assert out == [f"cloud:{i}" for i in range(5)]  # started at once: finished, however long it took
    assert budget.drops == {("camera", TOO_LATE): 1}


def test_a_full_queue_drops_the_lowest_priority_oldest_never_a_higher_one() -> None:
    budget: Budget[str] = Budget(10.0, 10, queue_bytes=1000)
    low, mid = _parcel("a", 0, [600]), _parcel("b", 1, [300])
    budget.offer(low, 0.0)
    budget.offer(mid, 0.0)
    assert budget.offer(_parcel("c", 2, [600]), 0.0) == [low]
    assert budget.offer(_parcel("d", 0, [900]), 0.0)[0].stream == "d"  # lower than all waiting: itself
    assert budget.drops == {("a", QUEUE_FULL): 1, ("d", QUEUE_FULL): 1} and budget.queued == 900


def test_a_new_rate_applies_at_once_and_a_bad_one_is_refused() -> None:
    budget: Budget[str] = Budget(10.0, 1000, max_wait_s=100)
    budget.spend(1000, 0.0)
    budget.offer(_parcel("camera", 0, [1000]), 0.0)
    assert _run(budget, 1.0) == []
    budget.set_rate(100_000.0, now=1.0)
    assert _run(budget, 1.1, start=1.01) == ["camera:0"]
    with pytest.raises(RouteError, match="bytes_per_s"):
        budget.set_rate(0.0, now=2.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 3), st.lists(st.integers(1, 3000), min_size=1,
                                                                              max_size=5)), max_size=30))
def test_every_record_is_sent_whole_or_dropped_counted_and_the_rate_holds(
        offers: list[tuple[str, int, list[int]]]) -> None:
    budget: Budget[str] = Budget(2000.0, 4000, max_wait_s=1.0, queue_bytes=10_000)
    parcels, sent = [], []
    for index, (stream, priority, sizes) in enumerate(offers):
        parcel = _parcel(f"{stream}{index}", priority, sizes, at=index * 0.05)
        parcel.stream = stream
        parcels.append(parcel)
        budget.offer(parcel, index * 0.05)
        sent += [part for _p, part in budget.release(index * 0.05)]
    end = len(offers) * 0.05 + 60
    sent += _run(budget, end, step=0.1, start=len(offers) * 0.05)
    for parcel in parcels:
        mine = [part for part in sent if part in parcel.parts]
        assert mine == (parcel.parts if parcel.dropped is None else []), parcel
    assert sum(budget.drops.values()) == sum(p.dropped is not None for p in parcels)
    assert budget.spent <= 4000 + 2000 * end + 3000  # the bucket's depth, the rate, one part of debt


def _unmade(stream: str, priority: int, estimate: list[int], made: list[int] | None, at: float = 0.0,
            calls: list[str] | None = None) -> Parcel[str]:
    """A record waiting unmade: `estimate` its sizes until made; `made` the sizes it has once made (None: its maker
    cannot make it); `calls` records each making."""

    def make() -> tuple[list[str], list[int]] | None:
        if calls is not None:
            calls.append(stream)
        return None if made is None else ([f"{stream}:{i}" for i in range(len(made))], made)

    return Parcel(stream, priority, [], estimate, at, make=make)


def _run_making(budget: Budget[str], until: float, step: float = 0.01, start: float = 0.0) -> list[str]:
    """As the pacer does: release what may leave; the record to make next is made, then released."""
    out, now = [], start
    while now <= until:
        budget.expire(now)
        out += [part for _p, part in budget.release(now)]
        while (parcel := budget.to_make(now)) is not None:
            assert parcel.make is not None
            budget.made(parcel, parcel.make())
            out += [part for _p, part in budget.release(now)]
        now += step
    return out


def test_records_the_budget_drops_are_never_made_and_the_one_it_sends_is_made_once() -> None:
    budget: Budget[str] = Budget(1000.0, 1000, max_wait_s=100)
    budget.spend(1000, 0.0)  # no tokens for 1 s
    calls: list[str] = []
    images = [_unmade("camera", 0, [800], [600], at=i * 0.1, calls=calls) for i in range(5)]
    for index, image in enumerate(images):
        budget.offer(image, index * 0.1)
    assert budget.queued == 800  # the newest only, at its estimate
    out = _run_making(budget, 2.0, start=0.4)
    assert out == ["camera:0"] and calls == ["camera"]  # four superseded, never made; the newest made once
    assert images[-1].dropped is None and budget.drops == {("camera", SUPERSEDED): 4}
    assert budget.queued == 0 and budget.spent == 1600


def test_a_record_being_made_is_never_dropped_and_its_real_sizes_replace_the_estimate() -> None:
    budget: Budget[str] = Budget(1000.0, 1000, max_wait_s=0.5)
    cloud = _unmade("cloud", 0, [300, 700], [250, 250, 250])
    budget.offer(cloud, 0.0)
    assert budget.to_make(0.0) is cloud and budget.to_make(0.0) is None  # handed out once
    newer = _unmade("cloud", 0, [300, 700], [100], at=0.1)
    assert budget.offer(newer, 0.1) == [] and budget.expire(5.0) == [newer]  # the one being made stays
    budget.made(cloud, cloud.make() if cloud.make else None)
    assert budget.queued == 750
    assert [part for _p, part in budget.release(5.0)] == ["cloud:0", "cloud:1", "cloud:2"]


def test_a_record_its_maker_cannot_make_leaves_the_lanes_and_the_next_one_goes() -> None:
    budget: Budget[str] = Budget(1000.0, 1000)
    broken, fine = _unmade("a", 1, [100], None), _unmade("b", 0, [100], [100])
    budget.offer(broken, 0.0)
    budget.offer(fine, 0.0)
    assert _run_making(budget, 0.1) == ["b:0"]
    assert budget.queued == 0 and not budget.drops  # the maker counts why it could not make it


def test_an_unmade_record_waits_for_tokens_covering_its_estimated_first_part() -> None:
    budget: Budget[str] = Budget(1000.0, 1000)
    budget.spend(1000, 0.0)
    budget.offer(_unmade("camera", 0, [500, 1500], [400, 400, 400, 400, 400]), 0.0)
    assert budget.to_make(0.45) is None and budget.wait_s(0.45) == pytest.approx(0.05)
    assert budget.to_make(0.5) is not None


def test_bytes_given_back_return_to_the_bucket_up_to_its_depth() -> None:
    budget: Budget[str] = Budget(1000.0, 1000)
    budget.spend(1500, 0.0)
    budget.refund(1200, 0.0)
    assert budget.tokens(0.0) == 700 and budget.spent == 300
    budget.refund(5000, 0.0)
    assert budget.tokens(0.0) == 1000  # never above the depth


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 3), st.lists(st.integers(1, 3000), min_size=1,
                                                                              max_size=5), st.booleans()),
                max_size=30))
def test_unmade_records_are_made_at_most_once_and_only_those_that_leave(
        offers: list[tuple[str, int, list[int], bool]]) -> None:
    budget: Budget[str] = Budget(2000.0, 4000, max_wait_s=1.0, queue_bytes=10_000)
    parcels: list[tuple[Parcel[str], str, bool, int]] = []
    sent: list[str] = []
    made: list[str] = []
    for index, (stream, priority, sizes, lazy) in enumerate(offers):
        if lazy:
            parcel = _unmade(f"{stream}{index}", priority, [sizes[0], sum(sizes[1:])], sizes, at=index * 0.05,
                             calls=made)
            parcel.sizes = [s for s in parcel.sizes if s] or [1]
        else:
            parcel = _parcel(f"{stream}{index}", priority, sizes, at=index * 0.05)
        parcels.append((parcel, f"{stream}{index}", lazy, len(sizes)))
        parcel.stream = stream
        budget.offer(parcel, index * 0.05)
        sent += _run_making(budget, index * 0.05, start=index * 0.05)
    end = len(offers) * 0.05 + 60
    sent += _run_making(budget, end, step=0.1, start=len(offers) * 0.05)
    for parcel, name, lazy, count in parcels:
        mine = [part for part in sent if part.split(":")[0] == name]
        assert mine == ([] if parcel.dropped else [f"{name}:{i}" for i in range(count)]), parcel
        assert made.count(name) == (1 if lazy and not parcel.dropped else 0)  # dropped ones never made
    assert sum(budget.drops.values()) == sum(p.dropped is not None for p, *_ in parcels)
    assert budget.queued == 0
