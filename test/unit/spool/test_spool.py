"""The spool: ordered, bounded by priority, every drop counted, and it survives a SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm_bridge.spool import Spool, SpoolError
from swarm_bridge.spool.spool import FORMAT, RUN_EPOCH


def _spool(tmp_path: Path, **limits: int) -> Spool:
    return Spool(tmp_path / "spool.db", max_bytes=limits.pop("max_bytes", 1 << 20), **limits)


def test_drains_by_priority_then_age_keeping_stream_order(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    for i in range(3):
        spool.put("odometry", "fleet.telemetry.odometry", b"amr", f"odo{i}".encode(), priority=1)
        spool.put("task_status", "fleet.event.task_status", b"amr", f"st{i}".encode(), priority=5)
    taken = spool.take(10)
    assert [r.payload for r in taken] == [b"st0", b"st1", b"st2", b"odo0", b"odo1", b"odo2"]
    assert spool.take(10) == []  # handed out until acked or released
    assert [r.payload for r in spool.take(10, stream="odometry")] == []
    spool.release([r.id for r in taken if r.stream == "odometry"])
    assert [r.payload for r in spool.take(10)] == [b"odo0", b"odo1", b"odo2"]
    spool.ack([r.id for r in taken])
    assert spool.depth() == 0 and spool.bytes_used == 0


def test_full_spool_drops_oldest_lowest_priority_first(tmp_path: Path) -> None:
    spool = _spool(tmp_path, max_bytes=100)  # ten 10-byte records (7 payload + 3 key)
    for i in range(5):
        assert spool.put("odometry", "d", b"amr", f"low{i:04d}".encode()[:7], priority=1)
    for i in range(5):
        assert spool.put("task_status", "d", b"amr", f"hi{i:05d}".encode()[:7], priority=5)
    assert spool.put("task_status", "d", b"amr", b"hi_new!", priority=5)  # evicts the oldest low one
    assert not spool.put("odometry", "d", b"amr", b"low_new", priority=0)  # nothing below 0: dropped itself
    payloads = [r.payload for r in spool.take(20)]
    assert payloads[:6] == [b"hi00000", b"hi00001", b"hi00002", b"hi00003", b"hi00004", b"hi_new!"]
    assert payloads[6:] == [b"low0001", b"low0002", b"low0003", b"low0004"]
    assert spool.drops() == {("odometry", "spool full"): 2}


def test_record_limit_and_oversized_records(tmp_path: Path) -> None:
    spool = _spool(tmp_path, max_bytes=50, max_records=2)
    assert not spool.put("scan", "d", b"k", b"x" * 60, priority=9)  # larger than the whole spool
    for i in range(3):
        spool.put("imu", "d", b"k", bytes([i]), priority=1)
    assert [r.payload for r in spool.take(5)] == [b"\x01", b"\x02"]
    assert spool.drops() == {("scan", "spool full"): 1, ("imu", "spool full"): 1}


def test_drop_counts_and_records_survive_reopening(tmp_path: Path) -> None:
    spool = _spool(tmp_path, max_bytes=20)
    for _ in range(4):
        spool.put("imu", "d", b"k", b"123456789", priority=1)
    taken = spool.take(1)
    spool.close()
    again = _spool(tmp_path, max_bytes=20)
    assert again.depth() == 2 and again.bytes_used == 20
    assert again.take(5)[0].id == taken[0].id  # in flight at close: handed out again
    assert again.drops() == {("imu", "spool full"): 2}


def test_sigkilled_writer_loses_nothing_it_committed(tmp_path: Path) -> None:
    code = (
        "import os, signal, sys; from swarm_bridge.spool import Spool;"
        f"s = Spool({str(tmp_path / 'spool.db')!r}, max_bytes=1 << 24);"
        "[s.put('odometry', 'd', b'amr', i.to_bytes(4, 'big'), priority=1) for i in range(2000)];"
        "s.take(100); print('written', flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL and "written" in result.stdout
    spool = _spool(tmp_path, max_bytes=1 << 24)
    records = spool.take(5000)
    assert [int.from_bytes(r.payload, "big") for r in records] == list(range(2000))


def test_bad_limits_and_paths_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"s\.db: limits must be > 0"):
        Spool(tmp_path / "s.db", max_bytes=0)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SpoolError, match=r"spool .*file/s\.db: cannot open .* Fix: check the directory"):
        Spool(blocker / "s.db", max_bytes=10)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from(["a", "b", "c"]), st.integers(0, 3), st.integers(1, 40)),
        st.tuples(st.just("take"), st.integers(1, 5)),
        st.tuples(st.just("ack")),
        st.tuples(st.just("release")),
    ),
    max_size=60,
)


@dataclass
class _Modelled:
    id: int
    stream: str
    priority: int
    size: int
    taken: bool = False


@settings(max_examples=60, deadline=None)
@given(ops=operations)
def test_matches_a_plain_model(tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]]) -> None:
    """Against a list-based model: same contents, same take order, same drops, bytes never over the limit."""
    spool = Spool(tmp_path_factory.mktemp("model") / "spool.db", max_bytes=120)
    model: list[_Modelled] = []
    drops: dict[str, int] = {}
    next_id = 0  # the first order of an empty spool
    in_flight: list[tuple[int, int]] = []  # (row id, order) taken, not acked or released
    for op in ops:
        if op[0] == "put":
            _, stream, priority, size = op
            size += 1  # the key
            while sum(r.size for r in model) + size > 120:
                victims = sorted((r for r in model if not r.taken and r.priority <= priority),
                                 key=lambda r: (r.priority, r.id))
                if not victims:
                    break
                model.remove(victims[0])
                drops[victims[0].stream] = drops.get(victims[0].stream, 0) + 1
            fits = sum(r.size for r in model) + size <= 120
            assert spool.put(stream, "d", b"k", b"x" * (size - 1), priority=priority) is fits
            if fits:
                model.append(_Modelled(next_id, stream, priority, size))
            else:
                drops[stream] = drops.get(stream, 0) + 1
            next_id += 1
        elif op[0] == "take":
            expected = sorted((r for r in model if not r.taken), key=lambda r: (-r.priority, r.id))[:op[1]]
            got = spool.take(op[1])
            # a record's order counts every put, kept or not, like the model's ids (its row id does not)
            assert [r.order for r in got] == [r.id for r in expected]
            for r in expected:
                r.taken = True
            in_flight += [(r.id, r.order) for r in got]
        elif op[0] == "ack":
            spool.ack([row for row, _order in in_flight])
            acked = {order for _row, order in in_flight}
            model = [r for r in model if r.id not in acked]
            in_flight = []
        else:
            spool.release([row for row, _order in in_flight])
            for r in model:
                r.taken = False
            in_flight = []
        assert spool.bytes_used == sum(r.size for r in model) <= 120
        assert spool.depth() == len(model)
    assert spool.drops() == {(s, "spool full"): n for s, n in drops.items()}
    spool.close()


def test_explicit_order_puts_a_record_back_where_it_was(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.put("odometry", "d", b"k", b"r5", priority=1, order=5)
    spool.put("odometry", "d", b"k", b"r7", priority=1)  # no order given: after the highest so far
    spool.put("odometry", "d", b"k", b"r3", priority=1, order=3)  # an older record, put back
    assert [(r.order, r.payload) for r in spool.take(5)] == [(3, b"r3"), (5, b"r5"), (6, b"r7")]
    spool.close()
    assert _spool(tmp_path).next_order == 7


def test_runs_grow_across_reopening_even_when_the_clock_stands_still(tmp_path: Path) -> None:
    now = RUN_EPOCH + 1_000
    spool = _spool(tmp_path)
    assert [spool.start_run(now), spool.start_run(now)] == [1_000, 1_001]
    spool.close()
    assert _spool(tmp_path).start_run(now) == 1_002
    assert _spool(tmp_path).start_run(now + 5_000) == 6_000  # the clock ahead of the count: the clock


def test_a_lost_spool_starts_above_the_runs_it_had(tmp_path: Path) -> None:
    """A re-imaged robot's fresh spool: its first run is past the old spool's, by the clock, so its records'
    (robot, stream, seq) are not taken for ones already delivered."""
    old = _spool(tmp_path / "old")
    runs = [old.start_run(RUN_EPOCH + t) for t in (100, 100, 101)]
    fresh = _spool(tmp_path / "new")
    assert fresh.start_run(RUN_EPOCH + 160) > max(runs)  # a minute later: re-imaging takes longer


@pytest.mark.parametrize("now", [0.0, RUN_EPOCH - 1, RUN_EPOCH + (1 << 31)])
def test_a_clock_out_of_range_falls_back_to_counting(tmp_path: Path, now: float) -> None:
    """A robot booted without a clock (1970), or one far in the future: the run stays a valid 31-bit count."""
    spool = _spool(tmp_path)
    assert [spool.start_run(now), spool.start_run(now)] == [0, 1]


def test_a_spool_counted_by_the_older_version_continues_above_its_runs(tmp_path: Path) -> None:
    """Format 1 counted starts in meta 'runs' (runs 0, 1, ...): the next run is above them."""
    spool = _spool(tmp_path)
    spool.close()
    db = sqlite3.connect(tmp_path / "spool.db")
    db.execute("INSERT INTO meta (name, value) VALUES ('runs', 7)")  # seven starts by the older version: runs 0-6
    db.commit()
    db.close()
    assert _spool(tmp_path).start_run(0.0) == 7


def test_replace_file_keeps_the_old_content_when_writing_fails(tmp_path: Path) -> None:
    """The durable replace shared by the snapshot and the file registry: a write that fails half way leaves the
    old file as it was and no temporary file beside it."""
    from swarm_bridge.spool.files import replace_file

    target = tmp_path / "state.jsonl"
    replace_file(target, lambda out: out.write(b"old\n"))

    def half(out: Any) -> None:
        out.write(b"ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_file(target, half)
    assert target.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["state.jsonl"]
    replace_file(target, lambda out: out.write(b"new\n"))
    assert target.read_bytes() == b"new\n"


def test_mqtt_qos_and_retain_are_kept_across_reopening_and_a_newer_format_is_refused(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.put("state", "d", b"k", b"a", priority=1, qos=0, retain=True)
    spool.put("state", "d", b"k", b"b", priority=1, qos=2)
    spool.close()
    spool = _spool(tmp_path)
    assert [(r.payload, r.qos, r.retain) for r in spool.take(5)] == [(b"a", 0, True), (b"b", 2, None)]
    spool.close()
    db = sqlite3.connect(tmp_path / "spool.db")
    db.execute(f"PRAGMA user_version = {FORMAT + 1}")
    db.commit()
    db.close()
    with pytest.raises(SpoolError, match=r"spool format 2.*upgrade swarm_bridge"):
        _spool(tmp_path)
